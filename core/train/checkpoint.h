// checkpoint.h: save a model's parameter block to a safetensors file and load it back, by name,
// so that PyTorch reads it with safetensors.torch.load_file and model.load_state_dict.
// Parameters (and other blocks: cg_checkpoint_save_blocks); the optimizer's state, the loss scale
// and the rest of a training run are saved around these functions by core/train/train_state.h.
//
// The format (https://github.com/huggingface/safetensors, README "Format"):
//   bytes 0..7    N, the header's length, an unsigned 64-bit little-endian integer
//   bytes 8..8+N  the header, UTF-8 JSON: one object whose keys are tensor names, each
//                 {"dtype": "F32", "shape": [50, 20], "data_offsets": [BEGIN, END]}, and an
//                 optional "__metadata__" object of string -> string; it may end in spaces
//   the rest      the data section: each tensor's bytes, row-major, little-endian, at
//                 [BEGIN, END) counted from the start of the data section
// Tensors are contiguous and do not overlap; together they cover the data section exactly.
#ifndef CG_CHECKPOINT_H
#define CG_CHECKPOINT_H

#include "core/params.h"

// The largest header accepted on load, in bytes (the limit of the reference implementation).
#define CG_CHECKPOINT_MAX_HEADER 100000000

// Write every parameter of p to path as safetensors, atomically: the file is written to a
// temporary file in the same directory ("PATH.tmp.PID.XXXXXX", made new: core/safe_file.h),
// flushed, fsync'ed, renamed over path (a link at path is replaced, never followed), and the
// directory is fsync'ed. Temporary files of path that ended runs left behind are removed first.
// On any error the temporary file is removed and a file already at path is left as it was.
// Parameters on a GPU are copied to the host first.
// Each parameter is written as "dtype": "F32" under its name ("fc1.weight"), in block order; the
// header is padded with spaces so that the data section starts on an 8-byte boundary.
// metadata: n_metadata key/value pairs as 2 * n_metadata strings (key, value, key, value, ...),
// stored in "__metadata__", e.g. {"format", "pt", "epoch", "5"}; NULL when n_metadata is 0.
// Errors: CG_ERR_ARG for a NULL, empty or repeated metadata key, a NULL value, or a parameter
// named "__metadata__"; CG_ERR_IO with the path and the system's reason when the temporary file
// cannot be created, written, synced or renamed.
cg_status cg_checkpoint_save(const cg_params *p, const char *path, const char *const *metadata,
                             int n_metadata);

// The same for the tensors of n_blocks blocks (e.g. {params, buffers}, or a training state's
// tensors: core/train/train_state.h), one file, block after block; two tensors of the same name
// are a CG_ERR_ARG.
cg_status cg_checkpoint_save_blocks(cg_params *const *blocks, int n_blocks, const char *path,
                                    const char *const *metadata, int n_metadata);

// Whether a checkpoint could be written at path, so that a program can refuse a bad --save
// before training rather than after: a temporary file is created beside path and removed (and
// stale ones of ended runs with it). Errors: CG_ERR_ARG for an empty path, one ending in '/', or
// an existing directory; CG_ERR_IO with the system's reason when the directory is missing or
// not writable.
cg_status cg_checkpoint_check_writable(const char *path);

// Read path and copy its tensors into p's parameters, matched by name: every parameter of p must
// be in the file as F32 with the same shape, and every tensor of the file must be a parameter of
// p. Every rule of the format is checked first (see checkpoint.c), and nothing is copied unless
// the whole file is good: on error p is unchanged. No size read from the file is allocated before
// it has been checked against the file's length.
// Errors (a one-line message naming the file, the tensor and what was wrong):
// CG_ERR_IO when the file cannot be opened or read; CG_ERR_FORMAT for a file that breaks the
// format (too short, header length past the end of the file, invalid JSON, a header that is not
// an object, an entry without dtype / shape / data_offsets or with values of the wrong type,
// an unknown dtype, offsets outside the data section, tensors that overlap or leave a gap, a byte
// size that does not match shape x dtype, a name given twice) or that does not fit the model (a
// parameter missing, another dtype than F32, another shape, a tensor that is not a parameter), or
// whose weights hold NaN or an infinity (a diverged run's), naming the tensor and the index; a
// file of another format people take for safetensors (PyTorch's torch.save zip or pickle, NumPy,
// HDF5) is named as such.
cg_status cg_checkpoint_load(cg_params *p, const char *path);

// As cg_checkpoint_load, for the tensors of n_blocks blocks together (e.g. {params, buffers}):
// every tensor of every block must be in the file, and every tensor of the file in a block.
// All or nothing: on error no block is changed.
cg_status cg_checkpoint_load_blocks(cg_params *const *blocks, int n_blocks, const char *path);

// As cg_checkpoint_load, but tensors in the file that are not parameters of p are skipped (as
// PyTorch's load_state_dict(strict=False) does for unexpected keys). Every parameter of p must
// still be present with its shape; the whole file is still checked.
cg_status cg_checkpoint_load_allow_extra(cg_params *p, const char *path);

// Copy the "__metadata__" value of key in path's header into value (size bytes, terminated).
// The whole header is checked as cg_checkpoint_load does; the tensors are not read.
// Errors: CG_ERR_IO, CG_ERR_FORMAT as cg_checkpoint_load; CG_ERR_ARG when key is not in the
// metadata or its value does not fit in size bytes.
cg_status cg_checkpoint_read_metadata(const char *path, const char *key, char *value, size_t size);

// Every "__metadata__" pair of path's header, in file order: *pairs gets 2 * *count strings (key,
// value, key, value, ...), each malloc'ed; free them with cg_checkpoint_free_metadata. The whole
// header is checked as cg_checkpoint_load does; the tensors are not read. A file without metadata
// gives *count = 0. Errors: CG_ERR_IO, CG_ERR_FORMAT as cg_checkpoint_load.
cg_status cg_checkpoint_read_all_metadata(const char *path, char ***pairs, int *count);
void cg_checkpoint_free_metadata(char **pairs, int count);

#endif
