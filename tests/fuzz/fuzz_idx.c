// fuzz_idx.c: the IDX reader (datasets/idx.c), plain and gzip. Input: a 2-byte length, the labels
// file, then the images file (fuzz_common.h's parts). Errors are fine; crashes, sanitizer reports
// and leaks are not.
#include "tests/fuzz/fuzz_common.h"
#include "datasets/idx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *labels;
    size_t labels_len = fuzz_take(&data, &size, &labels);
    fuzz_write("labels-idx1-ubyte", labels, labels_len);
    fuzz_write("images-idx3-ubyte", data, size);
    cg_dataset *d = NULL;
    char images_path[512], labels_path[512];
    snprintf(images_path, sizeof images_path, "%s", fuzz_path("images-idx3-ubyte"));
    snprintf(labels_path, sizeof labels_path, "%s", fuzz_path("labels-idx1-ubyte"));
    cg_status s = cg_idx_load_files(images_path, labels_path, CG_IDX_FASHION_MNIST, &d);
    if (s.code == CG_OK) cg_dataset_free(d);
    return 0;
}
