// idx.h: MNIST and Fashion-MNIST in the IDX format, gzip-compressed (.gz, through zlib) or plain,
// into a cg_dataset of u8 images (1, rows, cols) and i32 labels 0..9 with their class names.
// It reads only the unsigned-byte IDX files of these data sets (3-dim images, 1-dim labels);
// it does not download them (tools/download_datasets.sh does) nor scale the pixels (the loader does).
//
// The format (Yann LeCun's MNIST page, http://yann.lecun.com/exdb/mnist/): a 4-byte magic number
// 0x00 0x00 TYPE NDIM (TYPE 0x08 = unsigned byte), then NDIM big-endian 32-bit sizes, then the
// data, row-major. Images: magic 0x00000803, sizes (count, rows, cols), count*rows*cols pixels,
// 0 = background. Labels: magic 0x00000801, size (count), count bytes.
#ifndef CG_IDX_H
#define CG_IDX_H

#include "datasets/dataset.h"

// Which class names the data set gets: MNIST's digits "0".."9", or Fashion-MNIST's
// "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
// "Ankle boot" (Zalando's order, github.com/zalandoresearch/fashion-mnist).
typedef enum { CG_IDX_MNIST, CG_IDX_FASHION_MNIST } cg_idx_names;

// Loads the training set (train = true: train-images-idx3-ubyte, train-labels-idx1-ubyte) or the
// test set (t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte) from dir; each file may be NAME.gz or
// NAME (also NAME with its first '-' as '.', "train-images.idx3-ubyte", as some mirrors spell it).
// *out: count images (1, rows, cols) u8 NCHW, labels i32 in 0..9, 10 class names; free it with
// cg_dataset_free. Fashion-MNIST and MNIST: 60000 / 10000 images of 28 x 28.
// Errors (nothing allocated, *out NULL): CG_ERR_IO for a missing or unreadable file;
// CG_ERR_FORMAT with the file, what was expected and what was found (and the byte offset) for a
// wrong magic number, a zero or overflowing size, a file whose length is not exactly what the
// header promises (truncated or with bytes after the data; for .gz, the decompressed stream),
// corrupt gzip data, a label above 9, image and label files of different counts; CG_ERR_OOM.
cg_status cg_idx_load(const char *dir, bool train, cg_idx_names names, cg_dataset **out);

// The same from two paths: an images file (magic 0x00000803) and a labels file (0x00000801),
// .gz or plain (told apart by the gzip magic bytes 1f 8b, not the name).
cg_status cg_idx_load_files(const char *images_path, const char *labels_path, cg_idx_names names,
                            cg_dataset **out);

#endif
