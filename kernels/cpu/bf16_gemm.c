// bf16_gemm.c: the packed bf16 matrix product (bf16_gemm.h) on AMX tiles or with AVX512-BF16,
// fp32 sums. The packing is plain C; the two kernels are compiled for their instructions with
// target attributes, whatever the build's -march, and run only where cpu_features.c found them.
// No threads here (the callers share out blocks), no rounding of the result (the callers do).
#include "kernels/cpu/bf16_gemm.h"
#include "kernels/cpu/bf16_vec.h"
#include "kernels/cpu/threads.h"

#include "core/common.h"

#ifdef CG_CPU_MATRIX_KERNELS
#include <immintrin.h>
#include <stdlib.h>
#endif

// ---- packing ----------------------------------------------------------------------------------

void cg_bf16_pack_a(uint16_t *Ap, const uint16_t *A, int64_t rs, int64_t ks, int64_t M, int64_t K) {
    const int64_t MB = (M + 15) / 16, KC = (K + 31) / 32;
    for (int64_t mb = 0; mb < MB; mb++)
        for (int64_t kc = 0; kc < KC; kc++) {
            uint16_t *block = Ap + (mb * KC + kc) * CG_BF16_BLOCK;
            int64_t k0 = kc * 32, kn = K - k0 < 32 ? K - k0 : 32;
            for (int64_t i = 0; i < 16; i++) {
                int64_t row = mb * 16 + i;
                uint16_t *dst = block + i * 32;
                if (row >= M) {
                    memset(dst, 0, 32 * sizeof *dst);
                    continue;
                }
                const uint16_t *src = A + row * rs + k0 * ks;
                if (ks == 1 && kn == 32)
                    memcpy(dst, src, 32 * sizeof *dst); // a constant size: one 64-byte move, not a call
                else if (ks == 1)
                    memcpy(dst, src, (size_t)kn * sizeof *dst);
                else
                    for (int64_t k = 0; k < kn; k++) dst[k] = src[k * ks];
                for (int64_t k = kn; k < 32; k++) dst[k] = 0;
            }
        }
}

#ifdef CG_CPU_MATRIX_KERNELS
// The packing loops in AVX-512 for the whole blocks (the edges below in plain C). They run only
// where a bf16 path was found, which cpu_features.c grants only with AVX-512 F, BW and VL.
#define PACK_TARGET __attribute__((target("avx512f,avx512bw")))

// One block row from two source rows of 16 values each: (b0[c], b1[c]) for c = 0 .. 15.
static inline __attribute__((always_inline)) PACK_TARGET void interleave_rows(uint16_t *dst, const uint16_t *b0,
                                                                             const uint16_t *b1) {
    const __m512i order = _mm512_set_epi16(47, 15, 46, 14, 45, 13, 44, 12, 43, 11, 42, 10, 41, 9, 40, 8, 39, 7, 38,
                                           6, 37, 5, 36, 4, 35, 3, 34, 2, 33, 1, 32, 0);
    __m512i lo = _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)b0));
    __m512i hi = _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)b1));
    _mm512_storeu_si512(dst, _mm512_permutex2var_epi16(lo, order, hi));
}

// A 16 x 16 block of 32-bit words transposed: dst row r (16 words, 64 bytes) = word r of each of
// the 16 source rows (`ld` uint16 apart). Four rounds of shuffles, as in any 16 x 16 transpose.
static PACK_TARGET void transpose_words(uint16_t *dst, const uint16_t *src, int64_t ld) {
    __m512i r[16], t[16];
    for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_si512(src + i * ld);
    for (int i = 0; i < 16; i += 2) { // within 128-bit lanes: words of rows i, i+1 interleaved
        t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
    }
    for (int g = 0; g < 16; g += 4) { // r[g + j], lane L: column 4L + j of rows g .. g+3
        r[g] = _mm512_unpacklo_epi64(t[g], t[g + 2]);
        r[g + 1] = _mm512_unpackhi_epi64(t[g], t[g + 2]);
        r[g + 2] = _mm512_unpacklo_epi64(t[g + 1], t[g + 3]);
        r[g + 3] = _mm512_unpackhi_epi64(t[g + 1], t[g + 3]);
    }
    for (int j = 0; j < 4; j++) { // gather the four lanes L of column 4L + j
        __m512i v = _mm512_shuffle_i32x4(r[j], r[4 + j], 0x88), w = _mm512_shuffle_i32x4(r[j], r[4 + j], 0xdd);
        __m512i v2 = _mm512_shuffle_i32x4(r[8 + j], r[12 + j], 0x88);
        __m512i w2 = _mm512_shuffle_i32x4(r[8 + j], r[12 + j], 0xdd);
        _mm512_storeu_si512(dst + j * 32, _mm512_shuffle_i32x4(v, v2, 0x88));
        _mm512_storeu_si512(dst + (8 + j) * 32, _mm512_shuffle_i32x4(v, v2, 0xdd));
        _mm512_storeu_si512(dst + (4 + j) * 32, _mm512_shuffle_i32x4(w, w2, 0x88));
        _mm512_storeu_si512(dst + (12 + j) * 32, _mm512_shuffle_i32x4(w, w2, 0xdd));
    }
}
#endif

// B row-major (ns == 1): pairs of rows k, k+1 interleaved, 16 columns per block row. The whole
// rows are read in order, each pair once. `whole(dst, b0, b1)` writes a whole block row.
static inline __attribute__((always_inline)) void pack_b_rows_with(uint16_t *Bp, const uint16_t *B, int64_t ldb,
                                                                   int64_t K, int64_t N,
                                                                   void (*whole)(uint16_t *, const uint16_t *,
                                                                                 const uint16_t *)) {
    const int64_t NB = (N + 15) / 16, KC = (K + 31) / 32, pairs = KC * 16;
    for (int64_t kp = 0; kp < pairs; kp++) {
        int64_t k = 2 * kp;
        const uint16_t *b0 = B + k * ldb, *b1 = b0 + ldb;
        bool have0 = k < K, have1 = k + 1 < K;
        for (int64_t nb = 0; nb < NB; nb++) {
            uint16_t *dst = Bp + (nb * KC + kp / 16) * CG_BF16_BLOCK + (kp % 16) * 32;
            int64_t n0 = nb * 16;
            if (have1 && n0 + 16 <= N) { // the common whole case
                whole(dst, b0 + n0, b1 + n0);
                continue;
            }
            if (!have0) {
                memset(dst, 0, 32 * sizeof *dst);
                continue;
            }
            for (int c = 0; c < 16; c++) {
                bool in = n0 + c < N;
                dst[2 * c] = in ? b0[n0 + c] : 0;
                dst[2 * c + 1] = have1 && in ? b1[n0 + c] : 0;
            }
        }
    }
}

#ifdef CG_CPU_MATRIX_KERNELS
static PACK_TARGET void pack_b_rows(uint16_t *Bp, const uint16_t *B, int64_t ldb, int64_t K, int64_t N) {
    pack_b_rows_with(Bp, B, ldb, K, N, interleave_rows);
}
#else
static void interleave_plain(uint16_t *dst, const uint16_t *b0, const uint16_t *b1) {
    for (int c = 0; c < 16; c++) {
        dst[2 * c] = b0[c];
        dst[2 * c + 1] = b1[c];
    }
}

static void pack_b_rows(uint16_t *Bp, const uint16_t *B, int64_t ldb, int64_t K, int64_t N) {
    pack_b_rows_with(Bp, B, ldb, K, N, interleave_plain);
}
#endif

// B transposed (ks == 1, column n of B contiguous): each pair (k, k+1) of a column is one 32-bit
// word; a block is a 16 x 16 transpose of words. Block by block, so that its 16 source rows and
// the 1 KiB it writes stay in the L1 cache. `whole` transposes a whole block, or is NULL.
static inline __attribute__((always_inline)) void pack_b_cols_with(uint16_t *Bp, const uint16_t *B, int64_t ldb,
                                                                   int64_t K, int64_t N,
                                                                   void (*whole)(uint16_t *, const uint16_t *,
                                                                                 int64_t)) {
    const int64_t NB = (N + 15) / 16, KC = (K + 31) / 32;
    for (int64_t nb = 0; nb < NB; nb++)
        for (int64_t kc = 0; kc < KC; kc++) {
            uint16_t *block = Bp + (nb * KC + kc) * CG_BF16_BLOCK;
            int64_t n0 = nb * 16, k0 = kc * 32;
            if (whole && n0 + 16 <= N && k0 + 32 <= K) {
                whole(block, B + n0 * ldb + k0, ldb);
                continue;
            }
            for (int r = 0; r < 16; r++)
                for (int c = 0; c < 16; c++) {
                    int64_t n = n0 + c, k = k0 + 2 * r;
                    const uint16_t *col = B + n * ldb;
                    block[r * 32 + 2 * c] = n < N && k < K ? col[k] : 0;
                    block[r * 32 + 2 * c + 1] = n < N && k + 1 < K ? col[k + 1] : 0;
                }
        }
}

#ifdef CG_CPU_MATRIX_KERNELS
static PACK_TARGET void pack_b_cols(uint16_t *Bp, const uint16_t *B, int64_t ldb, int64_t K, int64_t N) {
    pack_b_cols_with(Bp, B, ldb, K, N, transpose_words);
}
#else
static void pack_b_cols(uint16_t *Bp, const uint16_t *B, int64_t ldb, int64_t K, int64_t N) {
    pack_b_cols_with(Bp, B, ldb, K, N, NULL);
}
#endif

void cg_bf16_pack_b(uint16_t *Bp, const uint16_t *B, int64_t ks, int64_t ns, int64_t K, int64_t N) {
    if (ns == 1) {
        pack_b_rows(Bp, B, ks, K, N);
        return;
    }
    if (ks == 1) {
        pack_b_cols(Bp, B, ns, K, N);
        return;
    }
    const int64_t NB = (N + 15) / 16, KC = (K + 31) / 32;
    for (int64_t nb = 0; nb < NB; nb++)
        for (int64_t kc = 0; kc < KC; kc++)
            for (int r = 0; r < 16; r++)
                for (int c = 0; c < 16; c++)
                    for (int e = 0; e < 2; e++) {
                        int64_t k = kc * 32 + 2 * r + e, n = nb * 16 + c;
                        Bp[(nb * KC + kc) * CG_BF16_BLOCK + r * 32 + 2 * c + e] =
                            k < K && n < N ? B[k * ks + n * ns] : 0;
                    }
}

#ifdef CG_CPU_MATRIX_KERNELS

// ---- AVX512-BF16 --------------------------------------------------------------------------------
// vdpbf16ps acc, a, b: for each of the 16 fp32 lanes, acc += a.lo * b.lo + a.hi * b.hi, a and b
// holding a bf16 pair per lane. b is one row of a packed B block (16 columns, one k pair each);
// a is row i's pair (k, k+1) broadcast to every lane. A register tile of 8 rows x 2 blocks of
// 16 columns: 16 accumulators, 2 B rows and a broadcast, of the 32 zmm registers.

#define AVX_MR 8


// B's pair rows: row r of block (nb, kc) at b + nb * b_block + (16 kc + r) * b_row (packed
// blocks: b_row = 32, b_block = KC * CG_BF16_BLOCK; cg_bf16_gemm_pair_rows: b_row = 2 ldb, b_block = 32).
static inline __attribute__((always_inline)) VEC_BF16_TARGET void avx_tile(float *C, int64_t ldc, const uint16_t *a,
                                                                      const uint16_t *b0, const uint16_t *b1,
                                                                      int64_t KC, const int nv, int64_t b_row) {
    __m512 acc[AVX_MR][2];
    for (int i = 0; i < AVX_MR; i++)
        for (int v = 0; v < nv; v++) acc[i][v] = _mm512_setzero_ps();
    for (int64_t kc = 0; kc < KC; kc++) {
        const uint16_t *ak = a + kc * CG_BF16_BLOCK;
        const uint16_t *bk0 = b0 + kc * 16 * b_row, *bk1 = b1 + kc * 16 * b_row;
        for (int r = 0; r < 16; r++) {
            __m512bh bv0 = (__m512bh)_mm512_loadu_si512(bk0 + r * b_row);
            __m512bh bv1 = nv > 1 ? (__m512bh)_mm512_loadu_si512(bk1 + r * b_row) : bv0;
            for (int i = 0; i < AVX_MR; i++) {
                int32_t pair;
                memcpy(&pair, ak + i * 32 + 2 * r, sizeof pair);
                __m512bh av = (__m512bh)_mm512_set1_epi32(pair);
                acc[i][0] = _mm512_dpbf16_ps(acc[i][0], av, bv0);
                if (nv > 1) acc[i][1] = _mm512_dpbf16_ps(acc[i][1], av, bv1);
            }
        }
    }
    for (int i = 0; i < AVX_MR; i++)
        for (int v = 0; v < nv; v++) _mm512_storeu_ps(C + i * ldc + 16 * v, acc[i][v]);
}

// A last block of B with at most 8 columns (N = 196, an image of 14 x 14 positions, ends with 4):
// its products on 8 lanes (ymm registers) rather than 16, for `rows` (8 or 16) rows of one A
// block. Zen 4 runs a 256-bit vdpbf16ps at twice the rate of a 512-bit one, given enough
// independent sums: 16 rows run 8 lanes at 0.6 of the cost of 16, 8 rows at 0.75. Lanes 0 .. 7
// of the 16-lane product give the same sums. Columns 8 .. 15 of the block are not stored.
static inline __attribute__((always_inline)) VEC_BF16_TARGET void avx_tile_8_columns(float *C, int64_t ldc,
                                                                                const uint16_t *a, const uint16_t *b,
                                                                                int64_t KC, const int rows,
                                                                                int64_t b_row) {
    __m256 acc[16];
    for (int i = 0; i < rows; i++) acc[i] = _mm256_setzero_ps();
    for (int64_t kc = 0; kc < KC; kc++) {
        const uint16_t *ak = a + kc * CG_BF16_BLOCK, *bk = b + kc * 16 * b_row;
        for (int r = 0; r < 16; r++) {
            __m256bh bv = (__m256bh)_mm256_loadu_si256((const __m256i *)(bk + r * b_row)); // the first 8 columns
            for (int i = 0; i < rows; i++) {
                int32_t pair;
                memcpy(&pair, ak + i * 32 + 2 * r, sizeof pair);
                acc[i] = _mm256_dpbf16_ps(acc[i], (__m256bh)_mm256_set1_epi32(pair), bv);
            }
        }
    }
    for (int i = 0; i < rows; i++) _mm256_storeu_ps(C + i * ldc, acc[i]);
}

// 8 rows x 3 blocks of 16 columns: 24 accumulators, 3 B rows and a broadcast, a broadcast for 3
// vdpbf16ps instead of 2 (bench_cpu_peak, AMD EPYC: Winograd's products on the tutorial's second
// layer 254 -> 275 GFLOP/s forward, ResNet-18's layer2 308 -> 354). Each sum in the same order as
// avx_tile's: the same bits.
static inline __attribute__((always_inline)) VEC_BF16_TARGET void avx_tile3(float *C, int64_t ldc, const uint16_t *a,
                                                                       const uint16_t *b, int64_t KC, int64_t b_row,
                                                                       int64_t b_block) {
    __m512 acc[AVX_MR][3];
    for (int i = 0; i < AVX_MR; i++)
        for (int v = 0; v < 3; v++) acc[i][v] = _mm512_setzero_ps();
    for (int64_t kc = 0; kc < KC; kc++) {
        const uint16_t *ak = a + kc * CG_BF16_BLOCK, *bk = b + kc * 16 * b_row;
        for (int r = 0; r < 16; r++) {
            __m512bh bv[3];
            for (int v = 0; v < 3; v++) bv[v] = (__m512bh)_mm512_loadu_si512(bk + v * b_block + r * b_row);
            for (int i = 0; i < AVX_MR; i++) {
                int32_t pair;
                memcpy(&pair, ak + i * 32 + 2 * r, sizeof pair);
                __m512bh av = (__m512bh)_mm512_set1_epi32(pair);
                for (int v = 0; v < 3; v++) acc[i][v] = _mm512_dpbf16_ps(acc[i][v], av, bv[v]);
            }
        }
    }
    for (int i = 0; i < AVX_MR; i++)
        for (int v = 0; v < 3; v++) _mm512_storeu_ps(C + i * ldc + 16 * v, acc[i][v]);
}

static inline __attribute__((always_inline)) VEC_BF16_TARGET void gemm_avx512_with(float *C, int64_t ldc,
                                                                              const uint16_t *Ap, const uint16_t *Bp,
                                                                              int64_t M, int64_t N, int64_t K,
                                                                              int64_t b_row, int64_t b_block) {
    const int64_t MB = (M + 15) / 16, NB = (N + 15) / 16, KC = (K + 31) / 32, triples = N / 48;
    for (int64_t t = 0; t < triples; t++) { // whole blocks of 48 columns first, 3 at a time
        for (int64_t mb = 0; mb < MB; mb++)
            for (int half = 0; half < 2; half++) {
                if (mb * 16 + half * 8 >= M) break; // rows of padding only
                avx_tile3(C + (mb * 16 + half * AVX_MR) * ldc + t * 48, ldc,
                          Ap + mb * KC * CG_BF16_BLOCK + half * AVX_MR * 32, Bp + 3 * t * b_block, KC, b_row, b_block);
            }
        for (int64_t row = (M + 7) / 8 * 8; row < MB * 16; row++) memset(C + row * ldc + t * 48, 0, 48 * sizeof(float));
    }
    for (int64_t nb = 3 * triples; nb < NB; nb += 2) {
        const uint16_t *b0 = Bp + nb * b_block, *b1 = b0 + b_block;
        if (nb + 1 == NB && N - nb * 16 <= 8) // a last block of at most 8 columns
            for (int64_t mb = 0; mb < MB; mb++) {
                const uint16_t *a = Ap + mb * KC * CG_BF16_BLOCK;
                float *c = C + mb * 16 * ldc + nb * 16;
                if (mb * 16 + 8 < M)
                    avx_tile_8_columns(c, ldc, a, b0, KC, 16, b_row);
                else
                    avx_tile_8_columns(c, ldc, a, b0, KC, 8, b_row); // rows 8 .. 15: padding only
            }
        else
            for (int64_t mb = 0; mb < MB; mb++)
                for (int half = 0; half < 2; half++) {
                    if (mb * 16 + half * 8 >= M) break; // rows of padding only
                    const uint16_t *a = Ap + mb * KC * CG_BF16_BLOCK + half * AVX_MR * 32;
                    float *c = C + (mb * 16 + half * AVX_MR) * ldc + nb * 16;
                    if (nb + 1 < NB)
                        avx_tile(c, ldc, a, b0, b1, KC, 2, b_row);
                    else
                        avx_tile(c, ldc, a, b0, b1, KC, 1, b_row);
                }
        // Rows of padding the tiles above skipped: stored as zeros, as the AMX kernel does.
        for (int64_t row = (M + 7) / 8 * 8; row < MB * 16; row++)
            memset(C + row * ldc + nb * 16, 0, (size_t)(nb + 1 < NB ? 32 : 16) * sizeof(float));
    }
}

static VEC_BF16_TARGET void gemm_avx512(float *C, int64_t ldc, const uint16_t *Ap, const uint16_t *Bp, int64_t M,
                                    int64_t N, int64_t K) {
    gemm_avx512_with(C, ldc, Ap, Bp, M, N, K, 32, (K + 31) / 32 * CG_BF16_BLOCK);
}

static VEC_BF16_TARGET void gemm_avx512_pair_rows(float *C, int64_t ldc, const uint16_t *Ap, const uint16_t *B,
                                              int64_t ldb, int64_t M, int64_t N, int64_t K) {
    gemm_avx512_with(C, ldc, Ap, B, M, N, K, 2 * ldb, 32);
}

// ---- AMX-BF16 -----------------------------------------------------------------------------------
// Eight tile registers of 16 rows x 64 bytes. tdpbf16ps C, A, B: C (16 x 16 fp32) += A (16 x 32
// bf16) B (32 x 16 bf16, as 16 rows of pairs), exactly the packed blocks. Four C tiles make a
// 32 x 32 block of C: per step of 32 k, two A and two B tiles are loaded for four products.
// Tiles: 0-3 C, 4-5 A, 6-7 B.

#define AMX_TARGET __attribute__((target("amx-tile,amx-bf16")))

// The tile configuration of ldtilecfg (Intel SDM vol. 1, 3.2.1 of the AMX chapter): palette 1,
// then the bytes per row and the rows of each of the 16 (8 used) tiles.
typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} amx_config;

static AMX_TARGET void amx_begin(void) {
    amx_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) {
        cfg.colsb[t] = 64;
        cfg.rows[t] = 16;
    }
    _tile_loadconfig(&cfg);
}

// 32 x 32 of C from A blocks a0, a1 and B blocks b0, b1 (KC blocks each, 1 KiB apart).
static AMX_TARGET void amx_2x2(float *C, int64_t ldc, const uint16_t *a0, const uint16_t *a1, const uint16_t *b0,
                               const uint16_t *b1, int64_t KC) {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (int64_t kc = 0; kc < KC; kc++) {
        int64_t o = kc * CG_BF16_BLOCK;
        _tile_loadd(4, a0 + o, 64);
        _tile_loadd(6, b0 + o, 64);
        _tile_dpbf16ps(0, 4, 6);
        _tile_loadd(7, b1 + o, 64);
        _tile_dpbf16ps(1, 4, 7);
        _tile_loadd(5, a1 + o, 64);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
    int64_t stride = ldc * (int64_t)sizeof(float);
    _tile_stored(0, C, stride);
    _tile_stored(1, C + 16, stride);
    _tile_stored(2, C + 16 * ldc, stride);
    _tile_stored(3, C + 16 * ldc + 16, stride);
}

// 16 x 32 (one A block, two B blocks).
static AMX_TARGET void amx_1x2(float *C, int64_t ldc, const uint16_t *a0, const uint16_t *b0, const uint16_t *b1,
                               int64_t KC) {
    _tile_zero(0);
    _tile_zero(1);
    for (int64_t kc = 0; kc < KC; kc++) {
        int64_t o = kc * CG_BF16_BLOCK;
        _tile_loadd(4, a0 + o, 64);
        _tile_loadd(6, b0 + o, 64);
        _tile_loadd(7, b1 + o, 64);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
    }
    int64_t stride = ldc * (int64_t)sizeof(float);
    _tile_stored(0, C, stride);
    _tile_stored(1, C + 16, stride);
}

// 32 x 16 (two A blocks, one B block).
static AMX_TARGET void amx_2x1(float *C, int64_t ldc, const uint16_t *a0, const uint16_t *a1, const uint16_t *b0,
                               int64_t KC) {
    _tile_zero(0);
    _tile_zero(2);
    for (int64_t kc = 0; kc < KC; kc++) {
        int64_t o = kc * CG_BF16_BLOCK;
        _tile_loadd(6, b0 + o, 64);
        _tile_loadd(4, a0 + o, 64);
        _tile_loadd(5, a1 + o, 64);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(2, 5, 6);
    }
    int64_t stride = ldc * (int64_t)sizeof(float);
    _tile_stored(0, C, stride);
    _tile_stored(2, C + 16 * ldc, stride);
}

// 16 x 16.
static AMX_TARGET void amx_1x1(float *C, int64_t ldc, const uint16_t *a0, const uint16_t *b0, int64_t KC) {
    _tile_zero(0);
    for (int64_t kc = 0; kc < KC; kc++) {
        int64_t o = kc * CG_BF16_BLOCK;
        _tile_loadd(4, a0 + o, 64);
        _tile_loadd(6, b0 + o, 64);
        _tile_dpbf16ps(0, 4, 6);
    }
    _tile_stored(0, C, ldc * (int64_t)sizeof(float));
}

// Column blocks outer, so that a pair of B blocks (2 KC KiB) stays in the L1 cache while every
// row block of A goes by; A (the weights, in a convolution) is the smaller operand.
static AMX_TARGET void gemm_amx(float *C, int64_t ldc, const uint16_t *Ap, const uint16_t *Bp, int64_t M, int64_t N,
                                int64_t K) {
    const int64_t MB = (M + 15) / 16, NB = (N + 15) / 16, KC = (K + 31) / 32, step = KC * CG_BF16_BLOCK;
    amx_begin();
    for (int64_t nb = 0; nb < NB; nb += 2) {
        const uint16_t *b0 = Bp + nb * step, *b1 = b0 + step;
        bool two_n = nb + 1 < NB;
        for (int64_t mb = 0; mb < MB; mb += 2) {
            const uint16_t *a0 = Ap + mb * step, *a1 = a0 + step;
            float *c = C + mb * 16 * ldc + nb * 16;
            bool two_m = mb + 1 < MB;
            if (two_m && two_n)
                amx_2x2(c, ldc, a0, a1, b0, b1, KC);
            else if (two_n)
                amx_1x2(c, ldc, a0, b0, b1, KC);
            else if (two_m)
                amx_2x1(c, ldc, a0, a1, b0, KC);
            else
                amx_1x1(c, ldc, a0, b0, KC);
        }
    }
    _tile_release(); // the tile state is large: give it back between products
}

void cg_bf16_gemm_packed(float *C, int64_t ldc, const uint16_t *Ap, const uint16_t *Bp, int64_t M, int64_t N,
                         int64_t K, cg_cpu_bf16_path path) {
    if (M <= 0 || N <= 0) return;
    if (path == CG_BF16_AMX)
        gemm_amx(C, ldc, Ap, Bp, M, N, K);
    else
        gemm_avx512(C, ldc, Ap, Bp, M, N, K);
}

void cg_bf16_gemm_pair_rows(float *C, int64_t ldc, const uint16_t *Ap, const uint16_t *B, int64_t ldb, int64_t M,
                            int64_t N, int64_t K) {
    if (M > 0 && N > 0) gemm_avx512_pair_rows(C, ldc, Ap, B, ldb, M, N, K);
}

#else // a compiler or CPU family without these instructions: never called (cpu_features.c finds none)

void cg_bf16_gemm_pair_rows(float *C, int64_t ldc, const uint16_t *Ap, const uint16_t *B, int64_t ldb, int64_t M,
                            int64_t N, int64_t K) {
    CG_CHECK(0, "bf16 GEMM on AVX512-BF16: not built into this cgrad");
}

void cg_bf16_gemm_packed(float *C, int64_t ldc, const uint16_t *Ap, const uint16_t *Bp, int64_t M, int64_t N,
                         int64_t K, cg_cpu_bf16_path path) {
    CG_CHECK(0, "bf16 GEMM on %s: not built into this cgrad", cg_cpu_bf16_name(path));
}

#endif

// Per-thread scratch buffers, kept between calls (as conv.c's): slot `which`, at least `bytes`,
// from a 64-byte boundary (threads.h: cg_thread_buffer; the buffers of malloc cost the tutorial's
// second convolution a quarter of its speed).
#define SLOTS 8
void *cg_bf16_scratch(int which, int64_t bytes) {
    static _Thread_local cg_thread_buffer buffers[SLOTS];
    return cg_thread_buffer_get(&buffers[which], bytes);
}
