// fuzz_image.c: the image decode path (datasets/image_decode.c and jpeg_check.c: our JPEG and PNG structure checks,
// then stb_image). Input: the bytes of one image file. Images above 2^20 pixels are probed but not
// decoded, to keep each run fast.
#include "tests/fuzz/fuzz_common.h"
#include "datasets/image_decode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    int w = 0, h = 0;
    cg_status s = cg_image_probe("input", data, size, &w, &h);
    if (s.code != CG_OK || (int64_t)w * h > (1 << 20)) return 0;
    uint8_t *rgb = malloc((size_t)3 * (size_t)w * (size_t)h);
    cg_image_decode_rgb("input", data, size, w, h, rgb);
    free(rgb);
    return 0;
}
