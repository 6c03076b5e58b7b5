// dist.h: data-parallel training over several processes, as PyTorch's DistributedDataParallel:
// one process per GPU (or N processes on CPUs) started by an MPI launcher (mpirun -np N program
// --distributed ...; or, on one machine with GPUs and no MPI, tools/launch_local.sh N program
// --distributed ...: the ranks meet through a file holding NCCL's id), the same weights on every rank (broadcast from rank 0), each rank training on
// its own shard of every batch (datasets/shard.h), and the gradients averaged over the ranks before
// each optimizer step, bucket by bucket while the backward pass is still running. MPI starts and
// connects the processes and reduces host (CPU) buffers; NCCL reduces GPU buffers. Both are plugins
// (core/dist/dist_backend.h) loaded only here, so a run that is not distributed never loads them.
// Batch norm: each rank normalises with its own batch's statistics (DDP's default), or, after
// cg_dist_sync_batch_norm, with those of every rank's batch together (SyncBatchNorm).
// Not here: model parallelism, elastic membership (a rank that fails ends the job).
//
// Every function takes the NULL of a run that is not distributed and then does nothing (rank 0 of 1),
// so a training loop calls them unconditionally. A training program:
//   cg_dist_start("cnn", "cuda", &dev, &dist);       // after parsing --device
//   ... build the model, load weights ...
//   cg_dist_prepare(dist, params, tape);             // broadcast weights, buckets, the tape's hook
//   cg_loader_shard(loader, dist, CG_SHARD_PAD);     // datasets/shard.h
//   each step: forward; zero_grad; backward; cg_dist_sync_gradients(dist, amp); optimizer step
//   each epoch: cg_dist_mean(dist, samples, &loss, &accuracy);
//   cg_dist_finish(dist);
// Environment: CGRAD_DIST_TIMEOUT (seconds a collective waits before the job is stopped, default
// 300), CGRAD_DIST_BUCKET_MB (gradient bucket size, default 1), CGRAD_MPI_PLUGIN and
// CGRAD_NCCL_PLUGIN (the plugins' paths), CGRAD_DIST_FAULT=RANK:STEP:kill|hang (tests: that rank
// dies or stops answering at its STEP-th gradient sync, from 1); without MPI, tools/launch_local.sh
// sets CGRAD_DIST_RANK, CGRAD_DIST_WORLD and CGRAD_DIST_ID_FILE (CGRAD_DIST_LOCAL_RANK: the rank).
#ifndef CG_DIST_H
#define CG_DIST_H

#include "core/train/amp.h"
#include "core/common.h"
#include "core/device.h"
#include "core/params.h"
#include "core/tape.h"

typedef struct cg_dist cg_dist;

// Whether this build has the MPI plugin (CMake found MPI: CGRAD_DIST=AUTO or ON), and the NCCL
// plugin (CMake found NCCL with the CUDA backend).
bool cg_dist_has_mpi(void);
bool cg_dist_has_nccl(void);

// Join the distributed run this process was started in. program names the messages ("cnn: rank 1:
// ..."). device is the parsed --device and device_text what was given: a plain "cuda" becomes
// cuda:LOCAL_RANK (modulo the GPU count), "cuda:N" stays. Checks that every rank runs the same
// build (a hash of the executable and plugins, all-gathered) on the same kind of device. On ranks
// other than 0, stdout goes to /dev/null: rank 0 alone prints (and should alone write files).
// Errors (returned, nothing started): no launcher in the environment (OMPI_COMM_WORLD_SIZE,
// PMIX_RANK, PMI_RANK and CGRAD_DIST_WORLD unset), an MPI launcher and a build without MPI, a GPU
// run in a build without NCCL, CGRAD_DIST_WORLD on the CPU, a plugin that does not load, a bad
// CGRAD_DIST_* value; different builds or devices across ranks (every
// rank returns it, rank 0 alone prints it: the others' stderr is closed).
cg_status cg_dist_start(const char *program, const char *device_text, cg_device *device, cg_dist **out);
// This rank (0 when d is NULL) and the number of ranks (1 when d is NULL).
int cg_dist_rank(const cg_dist *d);
int cg_dist_world(const cg_dist *d);
// "rank R: " once a distributed run started, "" otherwise: for the start of error messages.
const char *cg_dist_tag(void);

// Make a model data-parallel: every rank must build the same parameters (names, shapes: checked,
// CG_ERR_ARG naming the first rank that differs), then rank 0's values are copied to every rank
// (call it after loading weights, before cg_amp_new copies them to 16 bits). The gradient block is
// cut into buckets (contiguous ranges, last parameters first, CGRAD_DIST_BUCKET_MB each), and the
// tape's backward hook starts each bucket's all-reduce as soon as its last gradient is written.
cg_status cg_dist_prepare(cg_dist *d, cg_params *params, cg_tape *tape);
// Synchronised batch norm (cnn --sync-bn), as torch.nn.SyncBatchNorm: from now on every
// batch_norm2d in training on this tape takes its mean and variance over the batches of every
// rank together (an all-reduce of the per-channel sums, sums of squares and counts), updates the
// running statistics with them (the same on every rank), and its backward all-reduces the
// per-channel sums of dy and dy xhat, so that the input gradient is that of one process with the
// whole batch. Two all-reduces per BatchNorm2d and step: NCCL on GPUs (on the communication
// stream, after the gradient buckets started before it), MPI on CPUs (blocking). Evaluation
// (running statistics) is unchanged. Every rank must call it, on its training tape.
void cg_dist_sync_batch_norm(cg_dist *d, cg_tape *tape);
// After the backward pass (cg_amp_backward), before the optimizer step: every gradient becomes the
// average over the ranks. fp32: starts the buckets not started yet and waits for all of them.
// Mixed precision (amp in fp16/bf16; amp may be NULL): the 16-bit gradients reach the f32 block
// only after the backward, so the whole block is reduced here, and amp's inf/NaN flag is the
// maximum over the ranks, so that every rank skips the same steps. On a GPU nothing waits on the
// host (the step stays one CUDA Graph); on the CPU this waits, within CGRAD_DIST_TIMEOUT.
void cg_dist_sync_gradients(cg_dist *d, const cg_amp *amp);
// Means over every rank from this rank's: *a and *b are this rank's means over its `samples`
// samples; they become the means over all ranks' samples (weighted by samples). Blocking.
void cg_dist_mean(cg_dist *d, int64_t samples, double *a, double *b);
// Every rank must pass the same value (e.g. the data set's size): CG_ERR_ARG naming `what` and
// the first rank that differs otherwise.
cg_status cg_dist_agree(cg_dist *d, const char *what, int64_t value);
// Average n floats of the run's device in place over every rank, and wait (bench/allreduce.c).
void cg_dist_allreduce(cg_dist *d, float *buf, int64_t n);
// The MPI library's and (on GPUs) NCCL's versions, for the run's first line.
void cg_dist_describe(const cg_dist *d, char *out, size_t size);
// End the run: checks that every rank ends with the same weights (a warning naming the ranks
// otherwise), closes NCCL and MPI, frees d. A program that exits without calling it (an error on
// one rank) stops every rank at exit (MPI_Abort).
void cg_dist_finish(cg_dist *d);

#endif
