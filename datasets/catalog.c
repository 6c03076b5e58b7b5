// catalog.c: the table of data sets the examples know by name (datasets/catalog.h).
#include "datasets/catalog.h"
#include "datasets/cifar.h"
#include "datasets/idx.h"
#include "datasets/image_folder.h"

#include <stdio.h>
#include <string.h>

static const cg_dataset_info catalog[] = {
    {"fashion-mnist", "/usr/share/datasets/fashion-mnist", {0.2860f}, {0.3530f}, false},
    {"mnist", "data/mnist", {0.1307f}, {0.3081f}, false},
    {"cifar10", "data/cifar-10-batches-bin", {0.4914f, 0.4822f, 0.4465f}, {0.2470f, 0.2435f, 0.2616f}, true},
    {"cifar100", "data/cifar-100-binary", {0.5071f, 0.4865f, 0.4409f}, {0.2673f, 0.2564f, 0.2762f}, true},
    {"tinyimagenet", "data/tiny-imagenet-200", {0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f}, true},
    {"folder", NULL, {0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f}, true},
};
#define CATALOG_SIZE (sizeof catalog / sizeof catalog[0])

const cg_dataset_info *cg_dataset_info_find(const char *name) {
    for (size_t i = 0; i < CATALOG_SIZE; i++)
        if (strcmp(catalog[i].name, name) == 0) return &catalog[i];
    return NULL;
}

const char *cg_dataset_info_names(void) {
    static char names[256];
    if (names[0] == '\0')
        for (size_t i = 0; i < CATALOG_SIZE; i++)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "", catalog[i].name);
    return names;
}

cg_status cg_dataset_info_load(const cg_dataset_info *d, const char *dir, bool train, bool *from_cache,
                               cg_dataset **out) {
    bool cached = false;
    if (from_cache == NULL) from_cache = &cached;
    *from_cache = false;
    if (strcmp(d->name, "fashion-mnist") == 0) return cg_idx_load(dir, train, CG_IDX_FASHION_MNIST, out);
    if (strcmp(d->name, "mnist") == 0) return cg_idx_load(dir, train, CG_IDX_MNIST, out);
    if (strcmp(d->name, "cifar10") == 0) return cg_cifar10_load(dir, train, out);
    if (strcmp(d->name, "cifar100") == 0) return cg_cifar100_load(dir, train, false, out);
    if (strcmp(d->name, "tinyimagenet") == 0) return cg_tinyimagenet_load(dir, train, true, from_cache, out);
    char path[4096]; // folder: DIR/train and DIR/val in the ImageFolder layout
    snprintf(path, sizeof path, "%s/%s", dir, train ? "train" : "val");
    return cg_image_folder_load(path, true, from_cache, out);
}
