// fuzz_tinyimagenet.c: TinyImageNet-200's text files (datasets/image_folder.c): wnids.txt,
// words.txt and val/val_annotations.txt. Input: one byte (odd: the training split, even: the
// validation split), then three parts (2-byte length each, fuzz_common.h): wnids.txt, words.txt,
// val_annotations.txt. The tree holds one real 2 x 2 PNG at val/images/val_0.png and at
// train/n0/images/a.png so that good lines reach the decoder. No cache is written.
#include "tests/fuzz/fuzz_common.h"
#include "datasets/image_folder.h"

#include <zlib.h>

// A 2 x 2 grey PNG: IHDR, one IDAT, IEND (crc32 from zlib).
static size_t tiny_png(uint8_t *out) {
    static const uint8_t raw[6] = {0, 10, 20, 0, 30, 40};
    uint8_t z[64];
    uLongf zlen = sizeof z;
    compress(z, &zlen, raw, sizeof raw);
    const uint8_t ihdr[13] = {0, 0, 0, 2, 0, 0, 0, 2, 8, 0, 0, 0, 0};
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
    size_t n = 0;
    memcpy(out, sig, 8);
    n = 8;
    const char *types[3] = {"IHDR", "IDAT", "IEND"};
    const uint8_t *bodies[3] = {ihdr, z, NULL};
    uint32_t lens[3] = {13, (uint32_t)zlen, 0};
    for (int c = 0; c < 3; c++) {
        uint32_t len = lens[c];
        out[n] = (uint8_t)(len >> 24), out[n + 1] = (uint8_t)(len >> 16), out[n + 2] = (uint8_t)(len >> 8);
        out[n + 3] = (uint8_t)len;
        memcpy(out + n + 4, types[c], 4);
        if (len) memcpy(out + n + 8, bodies[c], len);
        uint32_t crc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), out + n + 4, len + 4);
        out[n + 8 + len] = (uint8_t)(crc >> 24), out[n + 9 + len] = (uint8_t)(crc >> 16);
        out[n + 10 + len] = (uint8_t)(crc >> 8), out[n + 11 + len] = (uint8_t)crc;
        n += 12 + len;
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static bool tree = false;
    if (!tree) {
        uint8_t png[256];
        size_t n = tiny_png(png);
        fuzz_mkdir("tiny");
        fuzz_mkdir("tiny/val");
        fuzz_mkdir("tiny/val/images");
        fuzz_write("tiny/val/images/val_0.png", png, n);
        fuzz_mkdir("tiny/train");
        fuzz_mkdir("tiny/train/n0");
        fuzz_mkdir("tiny/train/n0/images");
        fuzz_write("tiny/train/n0/images/a.png", png, n);
        tree = true;
    }
    if (size < 1) return 0;
    bool train = data[0] & 1;
    data++, size--;
    const uint8_t *part;
    size_t len = fuzz_take(&data, &size, &part);
    fuzz_write("tiny/wnids.txt", part, len);
    len = fuzz_take(&data, &size, &part);
    fuzz_write("tiny/words.txt", part, len);
    len = fuzz_take(&data, &size, &part);
    fuzz_write("tiny/val/val_annotations.txt", part, len);
    char root[512];
    snprintf(root, sizeof root, "%s", fuzz_path("tiny"));
    cg_dataset *d = NULL;
    cg_status s = cg_tinyimagenet_load(root, train, false, NULL, &d);
    if (s.code == CG_OK) cg_dataset_free(d);
    return 0;
}
