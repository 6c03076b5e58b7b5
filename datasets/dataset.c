// dataset.c: freeing a data set.
#include "dataset.h"

#include <stdlib.h>

void cg_dataset_free(cg_dataset *d) {
    if (d == NULL) return;
    free(d->x);
    free(d->labels);
    free(d);
}
