// loader.h: batches of a cg_dataset on a device, as torch.utils.data.DataLoader: the order is
// shuffled at the start of every epoch (Philox stream CG_STREAM_SHUFFLE, so the CPU and the
// GPU see the same batches), and the last batch keeps what is left (1000 samples in batches of
// 32 give 31 batches of 32 and one of 8) unless drop_last is set.
// The data set is copied to the device once and each batch is gathered there by a kernel, so a
// step moves no data between host and device; batches land in tensors made once, at the same
// addresses every step (what CUDA Graph replay needs). Image data sets (u8 pixels) are
// normalised per channel on the way, and can be augmented (random crop with zero or reflection
// padding, horizontal flip, cutout; Philox stream CG_STREAM_AUGMENT).
// A data set of images too large for the device's memory streams instead (cg_loader_new_streaming):
// the pixels stay in host memory, and a background thread gathers each next batch (normalised
// and augmented, by the CPU kernel) into one of two pinned host buffers while the device trains
// on the current one; cg_loader_next copies it asynchronously into the same batch tensors. The
// batches are the same as the resident loader's. A streaming loader's cg_loader_next must not be
// captured into a CUDA Graph (the copy reads a host buffer); cnn captures only the step.
#ifndef CG_LOADER_H
#define CG_LOADER_H

#include "core/rng.h"
#include "core/tensor.h"
#include "core/dist/dist.h"
#include "datasets/dataset.h"
#include "datasets/shard.h"

typedef struct {
    cg_tensor *x;       // (B, sample_shape...) f32 on the loader's device
    cg_tensor *labels;  // (B,) i32, for cross-entropy
    cg_tensor *targets; // (B,) f32 0/1 copies of the labels, for binary cross-entropy (f32 data sets)
    int64_t size;       // B: batch_size, or fewer for the last batch
} cg_batch;

struct cg_prefetch;

// The flip of the training augmentation: none; each image with probability 1/2 (torchvision's
// RandomHorizontalFlip); or airbench's alternating flip: a random half of the images (each with
// probability 1/2, drawn once) flipped in the 1st, 3rd, ... epochs, the other half in the 2nd,
// 4th, ..., so that each image is seen both ways in any two epochs in a row. The epochs are counted
// by cg_loader_start_epoch (epochs_started).
typedef enum { CG_FLIP_OFF = 0, CG_FLIP_RANDOM, CG_FLIP_ALTERNATE } cg_flip_mode;

// The training augmentation of u8 images, applied on the device as each batch is gathered
// (bench/torch_train.py's definitions, in this order): a crop of the image padded by crop_padding
// pixels on each side (0: none), at a random offset in [0, 2 crop_padding] each way, the padding
// zeros or (reflect) the image mirrored about its edge (airbench's "translate"); the flip; then a
// cutout x cutout square set to 0 after normalisation (the channel mean), centred on a random
// pixel and clipped at the borders (DeVries and Taylor 2017; 0: none).
typedef struct {
    int crop_padding;
    bool reflect;
    cg_flip_mode flip;
    int cutout;
} cg_augmentation;

typedef struct {
    const cg_dataset *data;
    cg_device device;
    int64_t batch_size;
    bool shuffle, drop_last;
    int64_t count;         // samples an epoch visits: the data set's, or this rank's share of them
    int shard_rank, shard_world, shard_mode; // distributed training: datasets/shard.h (0, 1: none)
    cg_rng rng;
    int32_t *order;        // this epoch's sample order (host)
    int64_t position;      // next index into order
    float *x_device;       // f32 data sets: the samples on the device (the host array on the CPU)
    uint8_t *pixels_device; // u8 data sets: the pixels on the device (the host array on the CPU)
    float *mean_device, *inv_std_device; // per-channel normalisation of u8 images (C floats each)
    int crop_padding;      // augmentation: random crop of the image padded by this many pixels
    bool flip;             // augmentation: some left-right flip (aug.flip is which)
    cg_augmentation aug;   // the whole augmentation
    uint8_t *flip_base;    // CG_FLIP_ALTERNATE: per sample, flipped in even epochs (1) or odd ones (0)
    int64_t epochs_started; // cg_loader_start_epoch calls so far (the alternating flip's parity)
    cg_rng augment_rng;
    int32_t *augment_host, *augment_device; // (batch_size, CG_AUGMENT_FIELDS): dy, dx, flip, cy, cx
    uint32_t *augment_words; // (batch_size, 5): the random words they are made from
    int32_t *labels_device;
    int32_t *order_device; // this epoch's order on the device
    cg_tensor *x_full, *labels_full, *targets_full; // full-batch tensors on the device
    cg_tensor *x_tail, *labels_tail, *targets_tail; // headers over the same data, last-batch shape
    float mean_host[4], inv_std_host[4]; // the normalisation, for the host-side gather of streaming
    struct cg_prefetch *prefetch;        // streaming: the thread and its two buffers; NULL otherwise
} cg_loader;

// A loader over d (which must outlive it). seed keys the shuffle stream.
cg_loader *cg_loader_new(const cg_dataset *d, int64_t batch_size, bool shuffle, bool drop_last, uint64_t seed,
                         cg_device device);
// As cg_loader_new for a data set of u8 images, streaming (above) instead of copying the data set
// to the device. On the CPU it makes no difference but a thread (the data is in host memory
// either way); tests use it there. Errors: f32 data sets cannot stream.
cg_loader *cg_loader_new_streaming(const cg_dataset *d, int64_t batch_size, bool shuffle, bool drop_last,
                                   uint64_t seed, cg_device device);
// Whether a data set of `bytes` would not fit comfortably on device d: more than half of the
// memory free there now (false on the CPU). cnn streams such data sets.
bool cg_loader_should_stream(cg_device d, size_t bytes);
void cg_loader_free(cg_loader *l);
// Per-channel normalisation of u8 images: x = (pixel / 255 - mean[c]) / std[c], C values each
// (the default is mean 0, std 1: pixels scaled to [0, 1]).
void cg_loader_set_normalization(cg_loader *l, const float *mean, const float *std);
// Training augmentation of u8 images: a random crop of the image padded with `crop_padding` zero
// pixels on each side (0: none) and, if flip, a left-right mirror with probability 1/2.
void cg_loader_set_augmentation(cg_loader *l, int crop_padding, bool flip);
// The whole augmentation (cg_augmentation above). Errors (CG_CHECK): crop_padding or cutout < 0,
// reflect with crop_padding not smaller than the image's height and width.
void cg_loader_set_augmentation_full(cg_loader *l, const cg_augmentation *a);
// Batches per epoch.
int64_t cg_loader_num_batches(const cg_loader *l);
// The next cg_loader_start_epoch starts epoch `epoch` (1-based): what the alternating flip's
// parity counts, for a run resumed at that epoch (the loader counts its epochs otherwise).
void cg_loader_set_epoch(cg_loader *l, int64_t epoch);
// Start an epoch: draws a new order when shuffling and copies it to the device.
void cg_loader_start_epoch(cg_loader *l);
// The next batch of this epoch into *out (gathered on the device, asynchronously); false when
// the epoch is over. The tensors stay valid until the next call.
bool cg_loader_next(cg_loader *l, cg_batch *out);

// ---- a rank's share of every epoch (data-parallel training, datasets/shard.h) ----
// Make l visit this rank's share of every epoch (d NULL: the whole data set, as before). Checks that
// every rank has a data set of the same size (CG_ERR_ARG naming the rank otherwise). Call before
// the first epoch; cg_loader_num_batches then counts this rank's batches.
cg_status cg_loader_shard(cg_loader *l, cg_dist *d, cg_shard_mode mode);
// The same without the check, for a known rank and world size (tests).
void cg_loader_set_shard(cg_loader *l, int rank, int world, cg_shard_mode mode);

#endif
