// dataset.c: freeing a data set.
#include "datasets/dataset.h"

#include <stdlib.h>

void cg_dataset_free(cg_dataset *d) {
    if (d == NULL) return;
    free(d->x);
    free(d->pixels);
    free(d->labels);
    if (d->class_names)
        for (int i = 0; i < d->num_classes; i++) free(d->class_names[i]);
    free(d->class_names);
    free(d);
}
