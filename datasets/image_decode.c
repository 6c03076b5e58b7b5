// image_decode.c: the one place that compiles stb_image (image_decode.h). Debian's libstb-dev
// also ships a prebuilt libstb, but that one has every decoder (GIF, PSD, HDR, PIC, PNM, TGA,
// BMP) and the default 2^24-pixel side limit; compiled here, only the JPEG and PNG decoders exist
// and STBI_MAX_DIMENSIONS is ours. STB_IMAGE_STATIC keeps every stbi_ symbol private to this file.
#include "datasets/image_decode.h"
#include "datasets/jpeg_check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_JPEG
#define STBI_ONLY_PNG
#define STBI_NO_STDIO       // files are read by the caller, which names them in errors
#define STBI_NO_LINEAR
#define STBI_NO_HDR
#define STBI_MAX_DIMENSIONS CG_IMAGE_MAX_SIDE
// stb_image is third-party code: its unused static helpers and GCC's uninitialised-use guesses
// inside it are not ours to fix. (GCC reports unused static functions at the end of the file,
// so that one stays off for the whole file.)
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic push
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#pragma GCC diagnostic ignored "-Wsign-compare"
#include <stb/stb_image.h>
#pragma GCC diagnostic pop

static bool is_jpeg(const uint8_t *d, size_t n) { return n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF; }

static bool is_png(const uint8_t *d, size_t n) {
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
    return n >= 8 && memcmp(d, sig, 8) == 0;
}

// A name for a file that is neither JPEG nor PNG, from its first bytes, or NULL.
static const char *other_format(const uint8_t *d, size_t n) {
    if (n >= 4 && memcmp(d, "GIF8", 4) == 0) return "GIF";
    if (n >= 2 && d[0] == 'B' && d[1] == 'M') return "BMP";
    if (n >= 12 && memcmp(d, "RIFF", 4) == 0 && memcmp(d + 8, "WEBP", 4) == 0) return "WebP";
    if (n >= 4 && (memcmp(d, "II*\0", 4) == 0 || memcmp(d, "MM\0*", 4) == 0)) return "TIFF";
    if (n >= 4 && memcmp(d, "8BPS", 4) == 0) return "Photoshop PSD";
    if (n >= 2 && d[0] == 'P' && d[1] >= '1' && d[1] <= '7') return "PNM (PBM/PGM/PPM)";
    if (n >= 12 && memcmp(d + 4, "ftyp", 4) == 0) return "HEIF/AVIF";
    if (n >= 2 && d[0] == 0xFF && d[1] == 0x0A) return "JPEG XL";
    if (n >= 4 && memcmp(d, "\x76\x2F\x31\x01", 4) == 0) return "OpenEXR";
    return NULL;
}

// A JPEG's entropy-coded data stuffs every 0xFF with 0x00 (ITU-T T.81, B.1.1.5), so the last
// FF DA (start of scan) is the last scan's, and a whole file has FF D9 (end of image) after it.
// stb_image decodes a truncated scan without complaint (as grey), which this check catches.
static bool jpeg_has_end(const uint8_t *d, size_t n) {
    size_t last_sos = 0;
    for (size_t i = n; i >= 2; i--)
        if (d[i - 2] == 0xFF && d[i - 1] == 0xDA) {
            last_sos = i;
            break;
        }
    for (size_t i = last_sos; i + 1 < n; i++)
        if (d[i] == 0xFF && d[i + 1] == 0xD9) return true;
    return false;
}

static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

// Walks a PNG's chunks (PNG specification, 5.3: length, type, data, CRC-32 of type and data) and
// checks each one: the length inside the file, four letters of type, the CRC (zlib's crc32: a
// corrupt file is caught here, where stb_image, which reads no CRC, would decode it to garbage),
// IHDR first, at least one IDAT with data, IEND. *empty_idat says whether a zero-length IDAT
// chunk is present: stb_image 2.27 does pointer arithmetic on a NULL buffer for one (undefined
// behaviour), so cg_image_decode_rgb hands it a copy without them. NULL when fine, else a
// reason (offset in *at).
static const char *png_bad_chunk(const uint8_t *d, size_t n, size_t *at, bool *empty_idat) {
    size_t pos = 8;
    bool data_seen = false;
    *empty_idat = false;
    for (int index = 0;; index++) {
        *at = pos;
        if (pos == n) return "the file ends without an IEND chunk";
        if (n - pos < 12) return "a chunk is cut short by the end of the file";
        uint32_t len = be32(d + pos);
        const uint8_t *type = d + pos + 4;
        if (len > 0x7FFFFFFFu) return "a chunk length is above 2^31 - 1";
        if ((uint64_t)len > (uint64_t)(n - pos - 12)) return "a chunk's length runs past the end of the file";
        for (int k = 0; k < 4; k++)
            if (!((type[k] >= 'A' && type[k] <= 'Z') || (type[k] >= 'a' && type[k] <= 'z')))
                return "a chunk type is not four letters";
        uint32_t crc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), type, (uInt)len + 4);
        if (crc != be32(d + pos + 8 + len)) return "a chunk fails its CRC-32 check (corrupt data)";
        bool ihdr = memcmp(type, "IHDR", 4) == 0;
        if ((index == 0) != ihdr) return index == 0 ? "the first chunk is not IHDR" : "a second IHDR chunk";
        if (memcmp(type, "IDAT", 4) == 0) {
            if (len == 0) *empty_idat = true;
            else data_seen = true;
        }
        pos += 12 + (size_t)len;
        if (memcmp(type, "IEND", 4) == 0) return data_seen ? NULL : "no IDAT chunk holds image data";
    }
}

// A copy of the PNG d[0..n) without its zero-length IDAT chunks (checked by png_bad_chunk first);
// *out_len its length. Free it.
static uint8_t *png_without_empty_idat(const uint8_t *d, size_t n, size_t *out_len) {
    uint8_t *copy = cg_xmalloc(n);
    memcpy(copy, d, 8);
    size_t pos = 8, len = 8;
    while (pos + 12 <= n) {
        size_t chunk = 12 + (size_t)be32(d + pos);
        bool skip = chunk == 12 && memcmp(d + pos + 4, "IDAT", 4) == 0;
        if (!skip) {
            memcpy(copy + len, d + pos, chunk);
            len += chunk;
        }
        bool end = memcmp(d + pos + 4, "IEND", 4) == 0;
        pos += chunk;
        if (end) break;
    }
    *out_len = len;
    return copy;
}

cg_status cg_image_probe(const char *path, const uint8_t *data, size_t len, int *width, int *height) {
    bool jpeg = is_jpeg(data, len), png = is_png(data, len);
    if (!jpeg && !png) {
        const char *other = other_format(data, len);
        if (other != NULL)
            return cg_error(CG_ERR_FORMAT, "%s: unsupported image type: a %s file; cgrad decodes JPEG and PNG only",
                            path, other);
        if (len < 4)
            return cg_error(CG_ERR_FORMAT, "%s: %zu bytes: too short for a JPEG or PNG image", path, len);
        return cg_error(CG_ERR_FORMAT, "%s: not a JPEG (FF D8 FF) or PNG (89 50 4E 47) file: it starts with bytes "
                        "%02X %02X %02X %02X; cgrad decodes JPEG and PNG only", path, data[0], data[1], data[2],
                        data[3]);
    }
    if (len > (size_t)0x7FFFFFFF) return cg_error(CG_ERR_FORMAT, "%s: %zu bytes: too large for an image file", path, len);
    uint32_t w = 0, h = 0;
    if (png) {
        // The PNG specification puts the IHDR chunk first: length 13 at byte 8, "IHDR" at 12,
        // then the width and height, big-endian, at bytes 16 and 20.
        if (len < 33 || be32(data + 8) != 13 || memcmp(data + 12, "IHDR", 4) != 0)
            return cg_error(CG_ERR_FORMAT, "%s: corrupt PNG: expected the IHDR chunk at byte offset 8", path);
        w = be32(data + 16);
        h = be32(data + 20);
    } else {
        if (!jpeg_has_end(data, len))
            return cg_error(CG_ERR_FORMAT, "%s: truncated JPEG: no end-of-image marker (FF D9) after the last scan; "
                            "the file ends at byte offset %zu", path, len);
        size_t at = 0;
        const char *bad = jpeg_bad_segment(data, len, CG_IMAGE_MAX_SIDE, &at);
        if (bad != NULL) return cg_error(CG_ERR_FORMAT, "%s: corrupt JPEG: %s (at byte offset %zu)", path, bad, at);
        int iw = 0, ih = 0, comp = 0;
        if (!stbi_info_from_memory(data, (int)len, &iw, &ih, &comp)) {
            // stbi_info only says "unknown image type" once every decoder has refused the file; a
            // decode attempt (which fails in the same header, before allocating) gives the reason.
            uint8_t *pixels = stbi_load_from_memory(data, (int)len, &iw, &ih, &comp, 3);
            const char *reason = pixels ? "its header cannot be read" : stbi_failure_reason();
            stbi_image_free(pixels);
            return cg_error(CG_ERR_FORMAT, "%s: corrupt JPEG: stb_image: %s", path, reason);
        }
        w = (uint32_t)iw;
        h = (uint32_t)ih;
    }
    if (w < 1 || h < 1)
        return cg_error(CG_ERR_FORMAT, "%s: header says %u x %u pixels: an empty image", path, w, h);
    if (w > CG_IMAGE_MAX_SIDE || h > CG_IMAGE_MAX_SIDE)
        return cg_error(CG_ERR_FORMAT, "%s: header says %u x %u pixels: too large, cgrad accepts at most %d per side",
                        path, w, h, CG_IMAGE_MAX_SIDE);
    if (png) { // after the size: a header edited by hand fails its CRC too, the size says more
        size_t at = 0;
        bool empty_idat = false;
        const char *bad = png_bad_chunk(data, len, &at, &empty_idat);
        if (bad != NULL) return cg_error(CG_ERR_FORMAT, "%s: corrupt PNG: %s (chunk at byte offset %zu)", path, bad, at);
    }
    *width = (int)w;
    *height = (int)h;
    return cg_ok();
}

cg_status cg_image_decode_rgb(const char *path, const uint8_t *data, size_t len, int width, int height,
                              uint8_t *dst) {
    int w = 0, h = 0, comp = 0;
    const char *kind = is_png(data, len) ? "PNG" : "JPEG";
    uint8_t *stripped = NULL;
    if (is_png(data, len)) {
        size_t at = 0;
        bool empty_idat = false;
        const char *bad = png_bad_chunk(data, len, &at, &empty_idat);
        if (bad != NULL) return cg_error(CG_ERR_FORMAT, "%s: corrupt PNG: %s (chunk at byte offset %zu)", path, bad, at);
        if (empty_idat) {
            stripped = png_without_empty_idat(data, len, &len);
            data = stripped;
        }
    }
    uint8_t *rgb = stbi_load_from_memory(data, (int)len, &w, &h, &comp, 3); // req_comp 3: always RGB
    free(stripped);
    if (rgb == NULL)
        return cg_error(CG_ERR_FORMAT, "%s: corrupt %s: stb_image: %s", path, kind, stbi_failure_reason());
    if (w != width || h != height) {
        stbi_image_free(rgb);
        return cg_error(CG_ERR_FORMAT, "%s: decoded to %d x %d pixels, its header said %d x %d", path, w, h, width,
                        height);
    }
    // Interleaved RGB (H, W, 3) to planes (3, H, W).
    const size_t plane = (size_t)w * (size_t)h;
    for (size_t p = 0; p < plane; p++) {
        dst[p] = rgb[3 * p];
        dst[plane + p] = rgb[3 * p + 1];
        dst[2 * plane + p] = rgb[3 * p + 2];
    }
    stbi_image_free(rgb);
    return cg_ok();
}
