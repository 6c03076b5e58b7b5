// synthetic.c: the course's random binary classification data.
#include "datasets/synthetic.h"
#include "core/rng.h"

#include <stdlib.h>

cg_dataset *cg_synthetic_binary(int64_t count, int64_t features, uint64_t seed) {
    cg_dataset *d = cg_xcalloc(1, sizeof *d);
    d->count = count;
    d->sample_ndim = 1;
    d->sample_shape[0] = features;
    d->sample_numel = features;
    d->num_classes = 2;
    d->dtype = CG_F32;
    d->x = cg_xmalloc((size_t)(count * features) * sizeof(float));
    d->labels = cg_xmalloc((size_t)count * sizeof(int32_t));

    cg_rng rng = cg_rng_new(seed, CG_STREAM_DATA);
    cg_rng_normal(&rng, d->x, count * features, 0.0f, 1.0f); // X = randn(count, features)
    float *noise = cg_xmalloc((size_t)count * sizeof(float));
    cg_rng_normal(&rng, noise, count, 0.0f, 1.0f); // y = randn(count) > 0
    for (int64_t i = 0; i < count; i++) d->labels[i] = noise[i] > 0.0f;
    free(noise);
    return d;
}
