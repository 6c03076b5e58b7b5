// int8_packed.c: the int8 GEMM behind the CPU's quantised layers, with packed weights and the
// output stage (core/qkernels.h) fused. With AVX-512 VNNI (-march=native on a CPU that has it)
// a register tile of 6 rows x 64 columns: per step of 4 k, each row's 4 bytes are broadcast to
// all 16 lanes and one vpdpbusd per 16 columns adds the four products u8 x s8 into each int32
// lane (the weights' packed layout puts those 4 k of 16 columns in one 64-byte load), 24
// accumulators in registers and no horizontal sums at the end. Without VNNI, plain loops. Where the
// CPU has AMX-INT8, whole blocks of 16 rows go to int8_amx.c's tiles first (cpu_features.h).
// Intrinsics are used here because GCC does not find this broadcast form by itself.
#include "kernels/cpu/int8_packed.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "kernels/cpu/cpu_features.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__)
#include <immintrin.h>
#define CG_INT8_VNNI 1
#endif

#define MR 6  // rows of the register tile
#define NV 4  // vectors of 16 columns in the register tile

void cg_int8_pack(cg_int8_packed *p, const int8_t *w, const cg_qoutput *out, int64_t Nout, int64_t Kp) {
    CG_CHECK(Kp % 4 == 0 && Kp > 0 && Kp <= CG_QK_MAX_K && Nout > 0, "int8 weights (%lld, %lld): Kp must be a "
             "positive multiple of 4 up to %d", (long long)Nout, (long long)Kp, CG_QK_MAX_K);
    p->Nout = Nout;
    p->Kp = Kp;
    p->Np = (Nout + 15) / 16 * 16;
    // Rows of zeros up to a multiple of 64 k: the AMX tiles (int8_amx.c) read whole 64-k chunks.
    p->b = cg_xcalloc((size_t)((Kp + 63) / 64 * 64 * p->Np), 1);
    p->offset_u = cg_xcalloc((size_t)p->Np, sizeof(int32_t));
    p->multiplier = cg_xcalloc((size_t)p->Np, sizeof(float));
    p->amx = cg_cpu_int8() == CG_INT8_AMX; // on the calling thread, before the layer shares out rows
    for (int64_t j = 0; j < Nout; j++) {
        int32_t sum = 0;
        for (int64_t k = 0; k < Kp; k++) {
            int8_t v = w[j * Kp + k];
            p->b[(k / 4) * p->Np * 4 + j * 4 + k % 4] = v;
            sum += v;
        }
        p->offset_u[j] = out->offset[j] - 128 * sum;
        p->multiplier[j] = out->multiplier[j];
    }
}

void cg_int8_packed_free(cg_int8_packed *p) {
    free(p->b);
    free(p->offset_u);
    free(p->multiplier);
    memset(p, 0, sizeof *p);
}

#ifdef CG_INT8_VNNI

// The output stage for 16 sums of columns j .. j + 15 of row `row`; columns past Nout are not
// stored. Same operations as stage_one, 16 lanes at a time (cvtps2dq rounds to nearest even).
static inline __attribute__((always_inline)) void stage_16(void *y, int64_t ldy, int64_t row, int64_t j, __m512i acc,
                                                           const cg_int8_packed *p, const cg_qoutput *out) {
    int64_t valid = p->Nout - j;
    __mmask16 mask = valid >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << valid) - 1);
    __m512i a = _mm512_add_epi32(acc, _mm512_loadu_si512(p->offset_u + j));
    __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(a), _mm512_loadu_ps(p->multiplier + j));
    if (out->to_float) {
        if (out->relu) v = _mm512_max_ps(v, _mm512_setzero_ps());
        _mm512_mask_storeu_ps((float *)y + row * ldy + j, mask, v);
        return;
    }
    v = _mm512_min_ps(_mm512_max_ps(v, _mm512_set1_ps(-32768.0f)), _mm512_set1_ps(32767.0f));
    __m512i q = _mm512_add_epi32(_mm512_cvtps_epi32(v), _mm512_set1_epi32(out->zero_point));
    q = _mm512_max_epi32(q, _mm512_set1_epi32(out->relu ? out->zero_point : -128));
    q = _mm512_min_epi32(q, _mm512_set1_epi32(127));
    _mm512_mask_cvtepi32_storeu_epi8((int8_t *)y + row * ldy + j, mask, q);
}

// The sums of one register tile: rows a[0 .. mr) times packed columns b (16 nv of them), over
// all Kp, into acc. mr and nv are constants at each call site, so the loops unroll and the sums
// stay in registers.
static inline __attribute__((always_inline)) void tile_sums(__m512i acc[MR][NV], const uint8_t *a, const int8_t *b,
                                                            int64_t Kp, int64_t Np, const int mr, const int nv) {
#pragma GCC unroll 6
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) acc[i][v] = _mm512_setzero_si512();
    for (int64_t k = 0; k < Kp; k += 4) {
        __m512i bv[NV];
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) bv[v] = _mm512_loadu_si512(b + v * 64);
        b += Np * 4;
#pragma GCC unroll 6
        for (int i = 0; i < mr; i++) {
            int32_t four; // 4 bytes of row i: k .. k + 3
            memcpy(&four, a + i * Kp + k, 4);
            __m512i av = _mm512_set1_epi32(four);
#pragma GCC unroll 4
            for (int v = 0; v < nv; v++) acc[i][v] = _mm512_dpbusd_epi32(acc[i][v], av, bv[v]);
        }
    }
}

// The full tile's sums (MR x NV, nearly every tile of a layer) in a function of their own. Inlined
// with the output stage, GCC kept 12 of the 24 sums on the stack, loading and storing them at
// every step of k (the output stage's constants, hoisted out of the loop, took the registers):
// the conv 32 -> 64 layer of bench_int8_gemm ran at 217 G multiply-adds/s, 41 % of a Zen 5 core's
// vpdpbusd peak (two a cycle). The sums go to a local array, copied out once at the end: summed
// through the acc pointer, every vpdpbusd was followed by a store (a vector type may alias
// anything, so GCC kept acc in memory, as objdump of that version shows).
static __attribute__((noinline)) void tile_sums_full(__m512i acc[MR][NV], const uint8_t *a, const int8_t *b,
                                                     int64_t Kp, int64_t Np) {
    __m512i s[MR][NV];
    tile_sums(s, a, b, Kp, Np, MR, NV);
    memcpy(acc, s, sizeof s);
}

// One register tile through the output stage: rows a[0 .. mr) times packed columns j0 .. j0 + 16 nv.
static inline __attribute__((always_inline)) void tile(void *y, int64_t ldy, int64_t row0, const uint8_t *a,
                                                       const cg_int8_packed *p, int64_t j0, const cg_qoutput *out,
                                                       const int mr, const int nv) {
    __m512i acc[MR][NV];
    if (mr == MR && nv == NV)
        tile_sums_full(acc, a, p->b + j0 * 4, p->Kp, p->Np);
    else
        tile_sums(acc, a, p->b + j0 * 4, p->Kp, p->Np, mr, nv);
#pragma GCC unroll 6
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) stage_16(y, ldy, row0 + i, j0 + 16 * v, acc[i][v], p, out);
}

// tile with constant mr (1 .. MR) and nv (1 .. NV).
#define TILE_NV(mr_)                                                                                    \
    switch (nv) {                                                                                       \
    case 1: tile(y, ldy, row0, a, p, j0, out, mr_, 1); break;                                           \
    case 2: tile(y, ldy, row0, a, p, j0, out, mr_, 2); break;                                           \
    case 3: tile(y, ldy, row0, a, p, j0, out, mr_, 3); break;                                           \
    default: tile(y, ldy, row0, a, p, j0, out, mr_, 4); break;                                          \
    }

static void tile_any(void *y, int64_t ldy, int64_t row0, const uint8_t *a, const cg_int8_packed *p, int64_t j0,
                     const cg_qoutput *out, int mr, int nv) {
    switch (mr) {
    case 1: TILE_NV(1); break;
    case 2: TILE_NV(2); break;
    case 3: TILE_NV(3); break;
    case 4: TILE_NV(4); break;
    case 5: TILE_NV(5); break;
    default: TILE_NV(6); break;
    }
}

// The sums of rows row0 .. row0 + rows - 1, columns j0 .. j0 + ncols - 1 (ncols a multiple of 16)
// through the output stage (int8_packed.h; int8_amx.c calls it on its tiles' sums).
void cg_int8_stage_block(void *y, int64_t ldy, int64_t row0, int64_t j0, const int32_t *acc, int64_t ldacc,
                         int64_t rows, int64_t ncols, const cg_int8_packed *p, const cg_qoutput *out) {
    for (int64_t i = 0; i < rows; i++)
        for (int64_t v = 0; v < ncols && j0 + v < p->Nout; v += 16)
            stage_16(y, ldy, row0 + i, j0 + v, _mm512_loadu_si512(acc + i * ldacc + v), p, out);
}

void cg_int8_gemm_rows_loops(void *y, int64_t ldy, const uint8_t *a, int64_t rows, const cg_int8_packed *p,
                       const cg_qoutput *out) {
    for (int64_t i0 = 0; i0 < rows; i0 += MR) {
        int mr = rows - i0 < MR ? (int)(rows - i0) : MR;
        for (int64_t j0 = 0; j0 < p->Nout; j0 += 16 * NV) {
            int64_t left = (p->Np - j0) / 16;
            int nv = left < NV ? (int)left : NV;
            tile_any(y, ldy, i0, a + i0 * p->Kp, p, j0, out, mr, nv);
        }
    }
}

#else // no VNNI: the same integers from plain loops over the packed layout

// The output stage for one int32 sum (already including offset_u), as core/qkernels.h defines it.
static inline void stage_one(void *y, int64_t index, int32_t a, float multiplier, const cg_qoutput *out) {
    float v = (float)a * multiplier;
    if (out->to_float) {
        ((float *)y)[index] = out->relu && v < 0.0f ? 0.0f : v;
        return;
    }
    v = v < -32768.0f ? -32768.0f : v > 32767.0f ? 32767.0f : v;
    int32_t q = (int32_t)rintf(v) + out->zero_point;
    int32_t lo = out->relu ? out->zero_point : -128;
    q = q < lo ? lo : q > 127 ? 127 : q;
    ((int8_t *)y)[index] = (int8_t)q;
}


void cg_int8_stage_block(void *y, int64_t ldy, int64_t row0, int64_t j0, const int32_t *acc, int64_t ldacc,
                         int64_t rows, int64_t ncols, const cg_int8_packed *p, const cg_qoutput *out) {
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = j0; j < j0 + ncols && j < p->Nout; j++)
            stage_one(y, (row0 + i) * ldy + j, acc[i * ldacc + j - j0] + p->offset_u[j], p->multiplier[j], out);
}

void cg_int8_gemm_rows_loops(void *y, int64_t ldy, const uint8_t *a, int64_t rows, const cg_int8_packed *p,
                       const cg_qoutput *out) {
    const int64_t Kp = p->Kp, Np = p->Np;
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < p->Nout; j++) {
            int32_t s = 0;
            for (int64_t k = 0; k < Kp; k++) s += (int32_t)a[i * Kp + k] * p->b[(k / 4) * Np * 4 + j * 4 + k % 4];
            stage_one(y, i * ldy + j, s + p->offset_u[j], p->multiplier[j], out);
        }
}

#endif
