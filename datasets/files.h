// files.h: small file helpers shared by the data set readers (idx.c, cifar.c, image_folder.c):
// paths, sizes, whole-file reads with a size limit, text files split into lines, and an image
// data set allocated without aborting. Internal to datasets/; a training program never needs it.
#ifndef CG_DATASET_FILES_H
#define CG_DATASET_FILES_H

#include "datasets/dataset.h"

// dir + "/" + name, as a new string (free it). No double slash when dir ends with one.
char *cg_path_join(const char *dir, const char *name);

// True when path names an existing regular file / directory (symbolic links followed).
bool cg_is_file(const char *path);
bool cg_is_dir(const char *path);

// *bytes = the size of the regular file at path. Errors (CG_ERR_IO): missing, not a regular file.
cg_status cg_file_size(const char *path, int64_t *bytes);

// Reads the whole file into a new buffer (free it) with a '\0' after the last byte, *len bytes
// without it. A file larger than max_bytes is an error (CG_ERR_FORMAT) before anything is read.
cg_status cg_file_read(const char *path, size_t max_bytes, char **data, size_t *len);

// Reads a text file of at most max_bytes and splits it into lines ("\n" or "\r\n"), trailing
// spaces and tabs removed, empty lines dropped: *count new strings in *lines (free them with
// cg_lines_free). Errors: cg_file_read's, or a '\0' byte in the file (CG_ERR_FORMAT).
cg_status cg_read_lines(const char *path, size_t max_bytes, char ***lines, int *count);
void cg_lines_free(char **lines, int count);

// A data set of count u8 images of shape (channels, height, width) with pixels and labels
// allocated (not cleared) and num_classes set, class_names NULL. NULL when host memory runs out,
// so that the caller returns CG_ERR_OOM instead of aborting. The caller has checked that
// count * channels * height * width fits in size_t.
cg_dataset *cg_dataset_new_images(int64_t count, int64_t channels, int64_t height, int64_t width, int num_classes);

// *product = a * b in unsigned 64-bit arithmetic; false (and *product untouched) on overflow.
bool cg_mul_u64(uint64_t a, uint64_t b, uint64_t *product);

#endif
