// half_scratch.c: what the CPU's 16-bit kernels share (kernels/cpu/amp.h): widening 16-bit
// arrays to f32 scratch buffers and rounding f32 results back (core/half.h, round to nearest
// even). The kernels themselves are in amp.c (and gemm.c for the products).
#include "core/half.h"
#include "kernels/cpu/amp.h"
#include "kernels/cpu/bf16_gemm.h"
#include "kernels/cpu/cpu.h"
#include "kernels/cpu/threads.h"

#include <stdlib.h>
#include <string.h>

// ---- widening and rounding --------------------------------------------------------------------
// Large arrays are converted in blocks over the OpenMP threads; the f32 copies come from a few
// scratch buffers kept between calls (a fresh allocation of megabytes each call would spend
// more time in page faults than in the conversion). The host calls kernels one at a time, so
// one set of buffers serves every kernel.

// fp16 through the compiler's _Float16 where it has one (GCC 12 on x86-64: with F16C, one
// instruction per 8 values): the same IEEE rounding to nearest even as core/half.c's bit-by-bit
// version, which tests/test_half.c checks against _Float16 on every pattern, several times
// faster. Without _Float16, core/half.c.
#if defined(__FLT16_MAX__)
static void f16_to_f32(float *dst, const uint16_t *src, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        _Float16 h;
        memcpy(&h, &src[i], 2);
        dst[i] = (float)h;
    }
}
static void f32_to_f16(uint16_t *dst, const float *src, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        _Float16 h = (_Float16)src[i];
        memcpy(&dst[i], &h, 2);
    }
}
#else
#define f16_to_f32 cg_f16_to_f32_array
#define f32_to_f16 cg_f32_to_f16_array
#endif

static void widen_serial(float *dst, const void *src, cg_dtype t, int64_t n) {
    if (t == CG_F16)
        f16_to_f32(dst, (const uint16_t *)src, n);
    else if (t == CG_BF16) // bf16_gemm.h's inline form, which the compiler vectorises (core/half.c's is a call per value)
        for (int64_t i = 0; i < n; i++) dst[i] = cg_bf16_widen(((const uint16_t *)src)[i]);
    else if (t == CG_F32)
        memcpy(dst, src, (size_t)n * sizeof(float));
    else
        CG_CHECK(0, "cast: dtype %s is not f32, f16 or bf16", cg_dtype_name(t));
}

void half_widen_into_cpu(float *dst, const void *src, cg_dtype t, int64_t n) {
    size_t size = cg_dtype_size(t);
    if (n < CG_OMP_MIN_WORK) {
        widen_serial(dst, src, t, n);
        return;
    }
#pragma omp parallel for
    for (int64_t b = 0; b < n; b += CG_OMP_MIN_WORK / 4)
        widen_serial(dst + b, (const char *)src + (size_t)b * size, t, b + CG_OMP_MIN_WORK / 4 < n ? CG_OMP_MIN_WORK / 4 : n - b);
}

static void narrow_serial(void *dst, cg_dtype t, const float *src, int64_t n) {
    if (t == CG_F16)
        f32_to_f16((uint16_t *)dst, src, n);
    else if (t == CG_BF16) // the branch-free rounding of bf16_gemm.h, vectorised (the same bits: test_bf16_cpu)
        for (int64_t i = 0; i < n; i++) ((uint16_t *)dst)[i] = cg_bf16_round(src[i]);
    else if (t == CG_F32)
        memcpy(dst, src, (size_t)n * sizeof(float));
    else
        CG_CHECK(0, "cast: dtype %s is not f32, f16 or bf16", cg_dtype_name(t));
}

static void narrow(void *dst, cg_dtype t, const float *src, int64_t n) {
    size_t size = cg_dtype_size(t);
    if (n < CG_OMP_MIN_WORK) {
        narrow_serial(dst, t, src, n);
        return;
    }
    // Pieces taken dynamically, as adam_step_cpu's (cpu.h: CG_DYNAMIC_PIECE).
#pragma omp parallel for schedule(dynamic)
    for (int64_t b = 0; b < n; b += CG_DYNAMIC_PIECE)
        narrow_serial((char *)dst + (size_t)b * size, t, src + b, b + CG_DYNAMIC_PIECE < n ? CG_DYNAMIC_PIECE : n - b);
}

// Scratch buffer `slot` (0 .. SLOTS-1) with room for n floats; its contents are undefined.
#define SLOTS 16
// From a 64-byte boundary (threads.h: cg_thread_buffer says why).
float *half_scratch_cpu(int slot, int64_t n) {
    static cg_thread_buffer buffers[SLOTS];
    return cg_thread_floats_aligned(&buffers[slot], n > 0 ? n : 1);
}

// An f32 copy of n values of x in scratch buffer `slot` (NULL when x is NULL).
float *half_widen_cpu(int slot, const void *x, cg_dtype t, int64_t n) {
    if (x == NULL) return NULL;
    float *w = half_scratch_cpu(slot, n > 0 ? n : 1);
    half_widen_into_cpu(w, x, t, n);
    return w;
}

// Round an f32 result into its 16-bit home (nothing when home is NULL).
void half_store_cpu(void *home, cg_dtype t, const float *result, int64_t n) {
    if (home) narrow(home, t, result, n);
}
