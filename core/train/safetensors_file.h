// safetensors_file.h: reading a safetensors file and checking every rule of the format before
// anything is copied (private to core/train: checkpoint.c's loading, metadata and resume use it).
// Format: https://github.com/huggingface/safetensors (8-byte little-endian header length, a JSON
// header of {name: {dtype, shape, data_offsets}} and "__metadata__", then the data section).
#ifndef CG_SAFETENSORS_FILE_H
#define CG_SAFETENSORS_FILE_H

#include "core/tensor.h"

#include <cjson/cJSON.h>
#include <stdio.h>

#define METADATA_KEY "__metadata__"

// One tensor of the header, checked against the data section's size.
typedef struct {
    const char *name;  // points into the cJSON tree
    const char *dtype; // "F32", ...
    int ndim;          // any rank is valid in a file; only the first CG_MAX_DIMS dims are kept
    int64_t shape[CG_MAX_DIMS];
    int64_t begin, end; // bytes, from the start of the data section
    bool used;          // copied into a parameter
} st_entry;

// A checked safetensors file, open for reading its data.
typedef struct {
    const char *path;
    FILE *f;
    cJSON *root;
    const cJSON *metadata; // the "__metadata__" object, or NULL
    st_entry *entries;     // sorted by name
    int count;
    int64_t data_start; // 8 + header length
    int64_t data_size;  // bytes from data_start to the end of the file
} st_file;

// Bytes per element of a safetensors dtype name, or 0 when it is not one with a whole number of bytes.
int st_dtype_bytes(const char *name);
// Opens and checks path (header, dtypes, shapes, offsets that tile the data section, metadata
// strings); a foreign format (PyTorch's pickle or zip .pt) is named. Errors: CG_ERR_IO, CG_ERR_FORMAT
// naming the file and what was wrong. st_close releases it (also after an error).
cg_status st_open(st_file *sf, const char *path);
void st_close(st_file *sf);
// The entry of that name, or NULL.
st_entry *st_find(const st_file *sf, const char *name);
// bytes at offset of the file into out; `what` names the tensor in the error.
cg_status read_at(const st_file *sf, int64_t offset, void *out, size_t bytes, const char *what);
// "(2, 3) F32" for messages.
const char *entry_shape_str(const st_entry *e, char *buf, size_t size);

#endif
