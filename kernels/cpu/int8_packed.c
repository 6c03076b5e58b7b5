// int8_packed.c: the int8 GEMM behind the CPU's quantised layers, with packed weights and the
// output stage (core/qkernels.h) fused. Three forms of the same integers, chosen when compiling:
// - AVX-512 VNNI (-march=native on a CPU that has it): a register tile of 6 rows x 64 columns;
//   per step of 4 k, each row's 4 bytes are broadcast to all 16 lanes and one vpdpbusd per 16
//   columns adds the four products u8 x s8 into each int32 lane (the weights' packed layout puts
//   those 4 k of 16 columns in one 64-byte load), 24 accumulators in registers and no horizontal
//   sums at the end.
// - AVX2 without VNNI (AMD Zen 1 to 3, Intel Haswell to Skylake): vpmaddwd on 16-bit numbers,
//   a tile of 6 rows x 16 columns (below, "AVX2").
// - Anything else: plain loops GCC vectorises as it can.
// Where the CPU has AMX-INT8, whole blocks of 16 rows go to int8_amx.c's tiles first
// (cpu_features.h). Intrinsics are used because GCC does not find these broadcast forms by itself.
#include "kernels/cpu/int8_packed.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "kernels/cpu/cpu_features.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__)
#include <immintrin.h>
#define CG_INT8_VNNI 1
#define MR 6  // rows of the register tile
#define NV 4  // vectors of 16 columns in the register tile
#elif defined(CG_INT8_AVX2) // int8_packed.h
#include <immintrin.h>
#define MR 6  // rows of the register tile
#define NV 2  // vectors of 8 columns in the register tile: 16 columns, as Np is a multiple of 16
#endif

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
    p->b16 = NULL;
#ifdef CG_INT8_AVX2
    // The same weights as 16-bit numbers in panels of 16 columns, pairs of k: (Np / 16, Kp / 2, 16, 2).
    // One 32-byte load = 2 k of 8 columns, vpmaddwd's operand layout (AVX2 section below), and a
    // tile's weights one contiguous stream, 64 bytes a step of k (in the (Kp / 4, Np, 4) layout
    // they would be Np 4 bytes apart: with Np = 2048 every step in another page, and in the same
    // few sets of the caches). Columns past Nout stay 0.
    p->b16 = cg_xcalloc((size_t)(Kp * p->Np), sizeof(int16_t));
    for (int64_t j = 0; j < Nout; j++)
        for (int64_t k = 0; k < Kp; k++)
            p->b16[(j / 16) * Kp * 16 + (k / 2) * 32 + (j % 16) * 2 + k % 2] = w[j * Kp + k];
#endif
}

void cg_int8_packed_free(cg_int8_packed *p) {
    free(p->b);
    free(p->b16);
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

#elif defined(CG_INT8_AVX2)

// AVX2 has no byte dot product. vpmaddubsw (_mm256_maddubs_epi16) multiplies u8 by s8 but adds
// each pair into a SATURATED int16: 255 x 127 x 2 does not fit, and the sums would differ from the
// other paths'. vpmaddwd (_mm256_madd_epi16) multiplies 16-bit numbers and adds each pair into an
// int32 lane, exactly: |255 x 128 x 2| < 2^31. So both sides go to 16 bits, the weights once in
// cg_int8_pack (b16, pairs of k of 8 columns per 32-byte load), each tile's rows of activations
// once per row block (a16 below), and a step of 2 k is: per row, its 2 numbers broadcast to all
// 8 lanes (one 32-bit broadcast), one vpmaddwd per 8 columns, one vpaddd into the sums. Half the
// multiply-adds per instruction of an 8-bit dot product, the same integers.

// The output stage for 8 sums of columns j .. j + 7 of row `row` (stage_16's operations, 8 lanes);
// columns past Nout are not stored. offset_u and multiplier hold Np (a multiple of 16) numbers.
static inline __attribute__((always_inline)) void stage_8(void *y, int64_t ldy, int64_t row, int64_t j, __m256i acc,
                                                          const cg_int8_packed *p, const cg_qoutput *out) {
    int64_t valid = p->Nout - j;
    __m256i a = _mm256_add_epi32(acc, _mm256_loadu_si256((const __m256i *)(p->offset_u + j)));
    __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(a), _mm256_loadu_ps(p->multiplier + j));
    if (out->to_float) {
        if (out->relu) v = _mm256_max_ps(v, _mm256_setzero_ps());
        float *dst = (float *)y + row * ldy + j, lanes[8];
        if (valid >= 8) {
            _mm256_storeu_ps(dst, v);
        } else {
            _mm256_storeu_ps(lanes, v);
            memcpy(dst, lanes, (size_t)valid * sizeof(float));
        }
        return;
    }
    v = _mm256_min_ps(_mm256_max_ps(v, _mm256_set1_ps(-32768.0f)), _mm256_set1_ps(32767.0f));
    __m256i q = _mm256_add_epi32(_mm256_cvtps_epi32(v), _mm256_set1_epi32(out->zero_point));
    q = _mm256_max_epi32(q, _mm256_set1_epi32(out->relu ? out->zero_point : -128));
    q = _mm256_min_epi32(q, _mm256_set1_epi32(127));
    // 8 int32 already in [-128, 127] to 8 bytes: the saturating packs change no value.
    __m128i w16 = _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
    __m128i w8 = _mm_packs_epi16(w16, w16);
    int8_t *dst = (int8_t *)y + row * ldy + j;
    if (valid >= 8) {
        _mm_storel_epi64((__m128i *)dst, w8);
    } else {
        int8_t lanes[16];
        _mm_storeu_si128((__m128i *)lanes, w8);
        memcpy(dst, lanes, (size_t)valid);
    }
}

// The sums of one register tile: rows a16[0 .. mr) (Kp 16-bit numbers each) times the 16 columns
// of a packed panel b (Kp / 2 steps of 32 numbers), into acc. mr is a constant at each call site.
static inline __attribute__((always_inline)) void tile_sums(__m256i acc[MR][NV], const int16_t *a16,
                                                            const int16_t *b, int64_t Kp, const int mr) {
#pragma GCC unroll 6
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 2
        for (int v = 0; v < NV; v++) acc[i][v] = _mm256_setzero_si256();
    for (int64_t k = 0; k < Kp; k += 2) {
        __m256i bv[NV];
#pragma GCC unroll 2
        for (int v = 0; v < NV; v++) bv[v] = _mm256_loadu_si256((const __m256i *)(b + v * 16));
        b += 32;
#pragma GCC unroll 6
        for (int i = 0; i < mr; i++) {
            int32_t two; // row i's numbers k and k + 1, side by side
            memcpy(&two, a16 + i * Kp + k, 4);
            __m256i av = _mm256_set1_epi32(two);
#pragma GCC unroll 2
            for (int v = 0; v < NV; v++) acc[i][v] = _mm256_add_epi32(acc[i][v], _mm256_madd_epi16(av, bv[v]));
        }
    }
}

// The full tile's sums in a function of their own, into a local array, for the reason given at
// the VNNI tile_sums_full: the 12 sums, 2 weight vectors and a broadcast then fit the 16 registers.
static __attribute__((noinline)) void tile_sums_full(__m256i acc[MR][NV], const int16_t *a16, const int16_t *b,
                                                     int64_t Kp) {
    __m256i s[MR][NV];
    tile_sums(s, a16, b, Kp, MR);
    memcpy(acc, s, sizeof s);
}

// The sums of a tile of mr rows (1 .. MR), each size with its own constant so that the sums stay
// in registers: the raw product for int8_winograd.c and the tiles of cg_int8_gemm_rows_loops.
static void tile_sums_any(__m256i acc[MR][NV], const int16_t *a16, const int16_t *panel, int64_t K2, int mr) {
    switch (mr) {
    case 6: tile_sums_full(acc, a16, panel, K2); break;
    case 5: tile_sums(acc, a16, panel, K2, 5); break;
    case 4: tile_sums(acc, a16, panel, K2, 4); break;
    case 3: tile_sums(acc, a16, panel, K2, 3); break;
    case 2: tile_sums(acc, a16, panel, K2, 2); break;
    default: tile_sums(acc, a16, panel, K2, 1); break;
    }
}

// Raw sums for int8_winograd.c: c (rows, Np) i32, row stride ldc = a16 (rows, K2) i16 times the
// panels b16 (Np / 16, K2 / 2, 16, 2), K2 even; the same register tiles, no output stage.
void cg_int8_gemm_i16(int32_t *c, int64_t ldc, const int16_t *a16, int64_t rows, int64_t K2, const int16_t *b16,
                      int64_t Np) {
    __m256i acc[MR][NV];
    for (int64_t i0 = 0; i0 < rows; i0 += MR) {
        int mr = rows - i0 < MR ? (int)(rows - i0) : MR;
        for (int64_t j0 = 0; j0 < Np; j0 += 16) {
            tile_sums_any(acc, a16 + i0 * K2, b16 + j0 * K2, K2, mr);
            for (int i = 0; i < mr; i++)
                for (int v = 0; v < NV; v++)
                    _mm256_storeu_si256((__m256i *)(c + (i0 + i) * ldc + j0 + 8 * v), acc[i][v]);
        }
    }
}

// The output stage of sums already in memory: int8_winograd.c's tiles (int8_amx.c's too, in a build
// with AVX-512).
void cg_int8_stage_block(void *y, int64_t ldy, int64_t row0, int64_t j0, const int32_t *acc, int64_t ldacc,
                         int64_t rows, int64_t ncols, const cg_int8_packed *p, const cg_qoutput *out) {
    for (int64_t i = 0; i < rows; i++)
        for (int64_t v = 0; v < ncols && j0 + v < p->Nout; v += 8)
            stage_8(y, ldy, row0 + i, j0 + v, _mm256_loadu_si256((const __m256i *)(acc + i * ldacc + v)), p, out);
}

void cg_int8_gemm_rows_loops(void *y, int64_t ldy, const uint8_t *a, int64_t rows, const cg_int8_packed *p,
                             const cg_qoutput *out) {
    const int64_t Kp = p->Kp;
    // Columns per pass over the rows: their 16-bit weights (nc Kp 2 bytes) stay in a 256 KiB
    // share of the L2 cache while every row tile goes by, instead of coming from the L3 cache
    // or memory once per tile of rows when the weights are larger (N = K = 2048: 8 MiB).
    int64_t nc = (256 << 10) / (Kp * 2) / 16 * 16;
    nc = nc < 16 ? 16 : nc;
    int16_t *a16 = cg_xmalloc((size_t)(MR * Kp) * sizeof(int16_t)); // a tile's rows, 16 bits each
    for (int64_t jc = 0; jc < p->Nout; jc += nc) {
        int64_t jc_end = jc + nc < p->Nout ? jc + nc : p->Nout;
        for (int64_t i0 = 0; i0 < rows; i0 += MR) {
            int mr = rows - i0 < MR ? (int)(rows - i0) : MR;
            for (int64_t t = 0; t < mr * Kp; t++) a16[t] = a[i0 * Kp + t]; // read by every column tile
            for (int64_t j0 = jc; j0 < jc_end; j0 += 16) { // a tile's sums, then its output stage
                __m256i acc[MR][NV];
                tile_sums_any(acc, a16, p->b16 + j0 * Kp, Kp, mr); // panel j0 / 16: Kp 16 numbers each
                for (int i = 0; i < mr; i++)
                    for (int v = 0; v < NV && j0 + 8 * v < p->Nout; v++)
                        stage_8(y, ldy, i0 + i, j0 + 8 * v, acc[i][v], p, out);
            }
        }
    }
    free(a16);
}

#else // neither VNNI nor AVX2: the same integers from plain loops over the packed layout

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

// Row by row: the sums of all Np columns side by side, each step of 4 k adding the 4 products
// of every column (the packed layout's order), a loop over columns the compiler can vectorise.
void cg_int8_gemm_rows_loops(void *y, int64_t ldy, const uint8_t *a, int64_t rows, const cg_int8_packed *p,
                             const cg_qoutput *out) {
    const int64_t Kp = p->Kp, Np = p->Np;
    int32_t *s = cg_xmalloc((size_t)Np * sizeof(int32_t));
    for (int64_t i = 0; i < rows; i++) {
        memset(s, 0, (size_t)Np * sizeof(int32_t));
        for (int64_t k = 0; k < Kp; k += 4) {
            const uint8_t *x = a + i * Kp + k;
            const int32_t x0 = x[0], x1 = x[1], x2 = x[2], x3 = x[3];
            const int8_t *b = p->b + (k / 4) * Np * 4;
            for (int64_t j = 0; j < Np; j++)
                s[j] += x0 * b[j * 4] + x1 * b[j * 4 + 1] + x2 * b[j * 4 + 2] + x3 * b[j * 4 + 3];
        }
        for (int64_t j = 0; j < p->Nout; j++) stage_one(y, i * ldy + j, s[j] + p->offset_u[j], p->multiplier[j], out);
    }
    free(s);
}

#endif
