// cifar.h: CIFAR-10 and CIFAR-100, "binary version", from their extracted folders, into a
// cg_dataset of u8 images (3, 32, 32) and i32 labels with the class names of the meta files.
// Not the Python (pickle) or MATLAB versions; no download (tools/download_datasets.sh does that).
//
// The format (Alex Krizhevsky's page, https://www.cs.toronto.edu/~kriz/cifar.html): each file is
// a sequence of records with no header. CIFAR-10: 1 label byte (0..9) then 3072 pixel bytes;
// CIFAR-100: a coarse label byte (0..19), a fine label byte (0..99), then 3072 pixel bytes. The
// pixels are the 1024 red values, then the green, then the blue, each 32 x 32 row-major: already
// (C, H, W). Files of 10000 records, train.bin of CIFAR-100 has 50000.
#ifndef CG_CIFAR_H
#define CG_CIFAR_H

#include "datasets/dataset.h"

// CIFAR-10 from dir = the extracted cifar-10-batches-bin/ (or its parent, holding it): the
// training set (train = true) is data_batch_1.bin .. data_batch_5.bin in that order (50000
// images), the test set test_batch.bin (10000); class names are the lines of batches.meta.txt
// ("airplane" .. "truck"). *out: (N, 3, 32, 32) u8 NCHW, labels i32 in 0..9; free with
// cg_dataset_free.
// Errors (nothing allocated, *out NULL): CG_ERR_IO for a missing or unreadable file;
// CG_ERR_FORMAT naming the file for an empty file or one whose length is not a multiple of the
// record size (truncated: the byte offset where the last whole record ends), a label out of
// range (its byte offset and record), a meta file without exactly 10 names; CG_ERR_OOM.
cg_status cg_cifar10_load(const char *dir, bool train, cg_dataset **out);

// CIFAR-100 from dir = the extracted cifar-100-binary/ (or its parent): train.bin (50000) or
// test.bin (10000). coarse = false: the 100 fine labels, named by fine_label_names.txt; coarse =
// true: the 20 superclasses, named by coarse_label_names.txt. Both label bytes are range-checked.
// *out and errors as cg_cifar10_load's.
cg_status cg_cifar100_load(const char *dir, bool train, bool coarse, cg_dataset **out);

#endif
