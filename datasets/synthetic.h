// synthetic.h: the course's random data (chapter 2): X = randn(1000, 20) and
// y = (randn(1000) > 0), labels that do not depend on X. Drawn from the engine's Philox
// generator (stream CG_STREAM_DATA), so the same seed gives the same data on every machine;
// not numpy's numbers, so not the course's exact values.
#ifndef CG_SYNTHETIC_H
#define CG_SYNTHETIC_H

#include "datasets/dataset.h"

// count samples of `features` standard-normal floats; labels 0/1 from a second normal draw.
// Free with cg_dataset_free.
cg_dataset *cg_synthetic_binary(int64_t count, int64_t features, uint64_t seed);

#endif
