// catalog.h: the data sets the examples read by name (--dataset), in one table: where each is by
// default, its per-channel normalisation (mean and standard deviation of pixel / 255, the figures
// torchvision's examples use), whether training augments it by default, and how to load a split.
// The shapes and class names come from the files themselves (cg_dataset). Every example uses it.
#ifndef CG_CATALOG_H
#define CG_CATALOG_H

#include "datasets/dataset.h"

typedef struct {
    const char *name;        // as --dataset takes it
    const char *default_dir; // where it is when --data is not given (NULL: --data is required)
    float mean[3], std[3];   // per channel (one for grey images)
    bool augment;            // random crop and flip by default when training
} cg_dataset_info;

// The entry of that name, or NULL.
const cg_dataset_info *cg_dataset_info_find(const char *name);
// The names, comma-separated, for usage text and error messages.
const char *cg_dataset_info_names(void);
// The training or test split of the data set in dir (folder: dir/train and dir/val).
// *from_cache (may be NULL) tells whether a decode cache was used. Errors as the loaders'.
cg_status cg_dataset_info_load(const cg_dataset_info *d, const char *dir, bool train, bool *from_cache,
                               cg_dataset **out);

#endif
