// fuzz_cifar.c: the CIFAR-10 / CIFAR-100 binary readers (datasets/cifar.c). Input: one byte (mod
// 3: CIFAR-10, CIFAR-100 fine, CIFAR-100 coarse), a 2-byte length and the class names file, then
// the test records file.
#include "tests/fuzz/fuzz_common.h"
#include "datasets/cifar.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int mode = data[0] % 3;
    data++, size--;
    const uint8_t *meta;
    size_t meta_len = fuzz_take(&data, &size, &meta);
    const char *folder = mode == 0 ? "cifar-10-batches-bin" : "cifar-100-binary";
    fuzz_mkdir(folder);
    char name[128];
    const char *meta_name = mode == 0 ? "batches.meta.txt" : mode == 1 ? "fine_label_names.txt" : "coarse_label_names.txt";
    snprintf(name, sizeof name, "%s/%s", folder, meta_name);
    fuzz_write(name, meta, meta_len);
    snprintf(name, sizeof name, "%s/%s", folder, mode == 0 ? "test_batch.bin" : "test.bin");
    fuzz_write(name, data, size);
    char dir[512];
    snprintf(dir, sizeof dir, "%s", fuzz_path(folder));
    cg_dataset *d = NULL;
    cg_status s = mode == 0 ? cg_cifar10_load(dir, false, &d) : cg_cifar100_load(dir, false, mode == 2, &d);
    if (s.code == CG_OK) cg_dataset_free(d);
    return 0;
}
