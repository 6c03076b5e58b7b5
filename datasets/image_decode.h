// image_decode.h: JPEG and PNG files held in memory decoded to 8-bit RGB (3, H, W), through
// stb_image (Debian's libstb-dev), compiled here with only its JPEG and PNG decoders and a
// dimension limit. Any other format is refused by its first bytes; nothing is resized.
#ifndef CG_IMAGE_DECODE_H
#define CG_IMAGE_DECODE_H

#include "core/common.h"

// Largest width or height accepted (STBI_MAX_DIMENSIONS): a bigger header is refused before any
// pixel memory is allocated.
enum { CG_IMAGE_MAX_SIDE = 8192 };

// Reads the header of the image in data[0..len) (the bytes of the file `path`, named in
// messages): *width and *height in pixels, from the PNG's IHDR chunk or stb_image's JPEG header
// parser. Nothing is decoded. Errors (CG_ERR_FORMAT, naming path): not a JPEG (FF D8 FF) or PNG
// (89 'PNG' 0D 0A 1A 0A) file, with the type it looks like (GIF, BMP, WebP, TIFF...) or its
// first bytes; a JPEG with no end-of-image marker after its last scan (truncated); a JPEG whose
// marker segments are cut short or inconsistent, or whose scans use a Huffman or quantisation
// table the file never defines (stb_image would read its tables uninitialised), or a marker
// stb_image does not read; a JPEG (baseline or progressive) whose scan data does not decode block
// by block to its end (a code not in its Huffman table, a
// block past 64 coefficients, data that stops early or goes on after the last block, restart
// markers out of order: stb_image would decode it to garbage without a word); a PNG chunk that
// is cut short or fails its CRC-32, a PNG without IHDR first, image data or IEND; a corrupt
// header, with stb_image's reason; a side of 0 or above CG_IMAGE_MAX_SIDE.
cg_status cg_image_probe(const char *path, const uint8_t *data, size_t len, int *width, int *height);

// Decodes the image (grayscale and palette images expanded to RGB, alpha dropped, 16-bit PNG
// samples reduced to 8 bits) into dst: (3, height, width) u8, channel planes R, G, B, rows
// top to bottom. width and height are what cg_image_probe gave. Zero-length IDAT chunks (legal,
// but undefined behaviour inside stb_image 2.27) are dropped from a copy before decoding. Errors (CG_ERR_FORMAT, naming
// path): corrupt data, with stb_image's reason; a size other than width x height.
cg_status cg_image_decode_rgb(const char *path, const uint8_t *data, size_t len, int width, int height,
                              uint8_t *dst);

#endif
