// gemm.c: row-major single-precision matrix multiply on the CPU, on the engine's own loops below.
// Built with AVX-512, every product runs here: on the workloads' linear layers these loops beat
// OpenBLAS's best kernels (one Zen 5 core: the tutorial's fc1 forward 0.44 ms against 0.55 with
// OpenBLAS's AVX-512 "SkylakeX" kernels and 0.92 with its AVX2 ones, its backward 0.81 against
// 0.89 and 1.66; ResNet-18's classifier 1.7x faster forward, 3.3x for dW), and the results no
// longer depend on which kernel OpenBLAS picks for the CPU it finds (each row of C is also the
// same sums whatever the number of rows, where OpenBLAS's rows could round differently in a block
// of another height). Without AVX-512 the tiles are 6 x 16 in AVX2 registers (MR below), and
// large products through gemm_cpu go to OpenBLAS's sgemm (blas.c, loaded on first use); small
// ones stay here, where a BLAS call's overhead costs more than the arithmetic (a small MLP's 32 x 20 x 50).
#include "kernels/cpu/amp.h"
#include "kernels/cpu/bf16_gemm.h"
#include "kernels/cpu/cpu.h"
#include "kernels/cpu/threads.h"
#include "kernels/cpu/vec8.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "kernels/cpu/blas.h"
#ifdef __AVX512F__
#include <immintrin.h>

#include "kernels/cpu/transpose16.h"
#endif

// Without AVX-512: products with fewer multiply-adds than this use the loops below even when
// OpenBLAS is there. SimpleNN's largest (32 x 50 x 20 = 32 Ki) stays here, and OpenBLAS is never
// loaded for it; from 64 x 64 x 32 up OpenBLAS was as fast or faster on one core (measured with
// AVX-512 before its loops had their 12-row tiles: the tutorial CNN's first convolution,
// 32 x 3136 x 9: 20 us against 28 us; its weight gradient 32 x 9 x 3136: 22 against 55).
#define CG_SMALL_GEMM_WORK (64 * 64 * 32)

// The register tile: MR rows by NV x NR columns of C are summed in local variables over a block
// of K and added to C once per block. With AVX-512, 12 x 32 floats are 24 of the 32 registers:
// per step of k, two loads of B and 12 broadcasts of A feed 24 independent FMAs, enough to keep
// both FMA units busy (each FMA takes 4 cycles, so 8 must be in flight) with loads to spare.
// (8 x 32 ran at 50-57 % of the peak on the tutorial's shapes, 12 x 32 at 61-88 %; 14 x 32 left
// too few registers for the compiler.) Without AVX-512 a row of 16 floats is a pair of AVX2
// registers, and AVX2 has 16 of them: 8 x 32 sums would be 32 registers, so the compiler kept
// them on the stack and every FMA waited for a load and a store (with row16 below, one Zen 1
// core ran the tutorial's second convolution at 2 GFLOP/s, the CNN at a ninth of PyTorch's speed). There a panel's 32 columns are two tiles of 6 x 16
// (tile_full below): 12 registers of sums, 2 of B and a broadcast, the usual AVX2 shape.
#ifdef __AVX512F__
#define MR 12
#else
#define MR 6
#endif
#define NR 16
#define NV 2
_Static_assert(NV * NR == CG_GEMM_PANEL, "gemm_panels_b_cpu's callers lay B out in panels of CG_GEMM_PANEL columns");
// K is taken KC at a time: a tile's B (KC x 32 floats, 32 KB) then stays in the core's first-level
// cache while every A panel of the block passes over it, and the packed A block (M x KC) in the
// second. Each block's sums are added to C in block order, so the result does not depend on the
// number of threads.
#define KC CG_GEMM_KC

// Inside each block of K, M is taken MC rows at a time: the packed A block, MC x KC floats, then
// stays in the core's second-level cache (2 MB on this Xeon) while every column panel passes
// over it. Unblocked, the convolutions' backward products with thousands of rows (ResNet-18's
// last layer: 4608 x 512 x 196 for dW) packed A blocks of 3.6 to 4.7 MB, which came back from
// the third-level cache once per column panel. Each tile's sums are taken in the same order as
// unblocked: the results do not change.
// ... and only for products of at least this many rows: the copy costs about one cycle per
// float of B, 1/M of the product's time (the tutorial's first convolution, 32 rows of 9 steps,
// ran 10 % slower with its columns copied).
#define PACK_B_ROWS 256
// At most MC rows, split evenly (4608 rows are 5 blocks of 924, not 4 of 960 and one of 768);
// an M that fits (the forward products' 64 to 512 output channels) stays whole.
#define MC (80 * MR)

// A row of NR floats as one value (the GCC / Clang vector extension): one AVX-512 register, or
// two AVX2 ones. Arithmetic on it is elementwise; a float times a vector broadcasts the float.
typedef float row16 __attribute__((vector_size(NR * sizeof(float))));
// The tiles' sums are kept in vectors of one register: a row16 without AVX-512, which the compiler
// lowers as a 64-byte value in memory and moved through general registers piece by piece (the 6 x
// 16 tile at 5 GFLOP/s on a Zen 1 core), is two of these.
#ifdef __AVX512F__
#define VW 16
#else
#define VW 8
#endif
typedef float vreg __attribute__((vector_size(VW * sizeof(float))));
#define VPR (NR / VW) // vregs per row16

// A buffer of at least `floats` floats for this thread, kept between calls (0: packed B, 1: packed A).
static float *buffer(int which, int64_t floats) {
    static _Thread_local cg_thread_buffer buffers[2];
    return cg_thread_floats_aligned(&buffers[which], floats);
}

// B is copied column panel by column panel: panel j (columns 32 j .. 32 j + 31, or 16 at the end
// when N rounds up to an odd number of vectors) holds its K rows of `width` floats one after the
// other, zeros in the padding past N. Every tile is then a full MR x NR tile with constant loop
// bounds (that is what lets the compiler keep it in registers), and a panel's block of KC rows is
// one contiguous run of 32 KB, spread over every set of the first-level cache. Rows of a copy laid
// out as B is, ldb floats apart, fell into a few of the cache's sets when ldb is a power of two
// (the weight gradients' 64 to 512 output channels: 512 floats are 2 KB, every row in the same 2
// of its 64 sets) and evicted each other before the next tile read them again.
// The copy costs K x N floats against M x N x K multiply-adds.
// B stored (N, K) (trans_b) is transposed TK rows of the copy at a time: each row of B gives TK
// contiguous floats, one to each of TK rows of the panel, whose lines stay in the first-level
// cache until they are full. Row by row of the copy, every float read came from another row of
// B, K floats apart: a cache line and often a page per float (the convolutions' weight
// gradients transpose dy, K = a group's 784 to 50176 positions).
#define TK 16
// Column panel j0 (its first column) of pack_b's copy.
static void pack_b_panel(float *packed, bool trans_b, const float *B, int64_t N, int64_t K, int64_t ldb, int64_t j0) {
    int64_t width = ldb - j0 < NV * NR ? ldb - j0 : NV * NR, n = N - j0 < width ? N - j0 : width;
    float *panel = packed + j0 * K;
#ifdef __AVX512F__
    // B stored (N, K): 16 rows of B by 16 steps of k in 16 registers, transposed there (rows past
    // N as zeros) and stored as 16 rows of the panel. One float at a time, the transposition of
    // the tutorial's first linear layer's weights (128 x 3,136) took a fifth of its forward.
    if (trans_b) {
        for (int64_t k0 = 0; k0 < K; k0 += 16) {
            int64_t steps = K - k0 < 16 ? K - k0 : 16;
            __mmask16 in = (__mmask16)((1u << steps) - 1);
            for (int64_t jj = 0; jj < width; jj += 16) {
                __m512 r[16];
                for (int i = 0; i < 16; i++)
                    r[i] = jj + i < n ? _mm512_maskz_loadu_ps(in, B + (j0 + jj + i) * K + k0) : _mm512_setzero_ps();
                cg_transpose16(r);
                for (int i = 0; i < steps; i++) _mm512_storeu_ps(panel + (k0 + i) * width + jj, r[i]);
            }
        }
        return;
    }
#endif
    if (trans_b)
        for (int64_t k0 = 0; k0 < K; k0 += TK) {
            int64_t k1 = k0 + TK < K ? k0 + TK : K;
            for (int64_t j = 0; j < n; j++)
                for (int64_t k = k0; k < k1; k++) panel[k * width + j] = B[(j0 + j) * K + k];
        }
    else if (n == NV * NR) // a whole panel: a copy of constant size, two vector moves per row
        for (int64_t k = 0; k < K; k++) memcpy(panel + k * width, B + k * N + j0, NV * NR * sizeof(float));
    else
        for (int64_t k = 0; k < K; k++) memcpy(panel + k * width, B + k * N + j0, (size_t)n * sizeof(float));
    if (n < width)
        for (int64_t k = 0; k < K; k++)
            for (int64_t j = n; j < width; j++) panel[k * width + j] = 0.0f;
}

static const float *pack_b(bool trans_b, const float *B, int64_t N, int64_t K, int64_t ldb) {
    float *packed = buffer(0, K * ldb);
    for (int64_t j0 = 0; j0 < ldb; j0 += NV * NR) pack_b_panel(packed, trans_b, B, N, K, ldb, j0);
    return packed;
}
#undef TK

// A whole panel of MR rows of A (rows rs floats apart, read from a) to panel[k * MR + r]: 16 steps
// of k at a time, a row's 16 values loaded from each of the MR rows (four registers of zeros make
// them 16), the 16 x 16 block transposed in registers, and each step's MR values stored side by
// side: 16 steps of a panel are 16 x MR consecutive floats. Row by row, the stores went 48 bytes
// apart, and packing a convolution's weights (ResNet-18's layer4: 512 x 4608) cost 3 to 4 cycles a
// float, 14 % of its forward; with a gather of the MR values per step, 3.3 cycles a float on the
// Zen 5 (11.8 % of CIFAR layer4.0's forward, 512 x 2304 weights, batch 32), whose gathers are
// slow. The last steps (kc not a multiple of 16) with masked loads and stores. The same values in
// the same places. False where AVX-512 is missing: the caller's loop then.
static bool transpose_rows(float *panel, const float *a, int64_t rs, int64_t kc) {
#if defined(__AVX512F__) && MR == 12
    const __mmask16 rows = 0x0fff; // the MR lanes in use
    for (int64_t k = 0; k < kc; k += 16) {
        int64_t steps = kc - k < 16 ? kc - k : 16;
        __mmask16 in = (__mmask16)((1u << steps) - 1);
        __m512 r[16];
        for (int i = 0; i < MR; i++) r[i] = _mm512_maskz_loadu_ps(in, a + i * rs + k);
        for (int i = MR; i < 16; i++) r[i] = _mm512_setzero_ps();
        cg_transpose16(r); // r[j]: step k + j, row i in lane i
        for (int64_t j = 0; j < steps; j++) _mm512_mask_storeu_ps(panel + (k + j) * MR, rows, r[j]);
    }
    return true;
#else
    (void)panel, (void)a, (void)rs, (void)kc;
    return false;
#endif
}

// Rows k0 .. k0+kc-1 of op(A) (M x K, strides rs, ks) as panels of MR rows, each kc x MR floats
// with the MR values of a step of k side by side: the microkernel's broadcasts then read one
// stream. Rows past M are zeros.
// op(A) = A^T (ks != 1): the MR values of a step of k are contiguous in A, and a row of A (one k)
// holds that step for every panel. Taken TA steps at a time, each panel's part of the TA rows is
// copied before the next panel's: the TA rows' lines stay in the first-level cache while every
// panel takes its values. Panel after panel over all kc steps, each panel read one line from
// each of kc rows ks floats apart (a convolution's W^T: ks = C*R*S, 18 KB for ResNet-18's
// layer4, rows that fall into two of the cache's 64 sets), and the next panel found them evicted:
// packing a part of layer4's W^T took 15 % of its dx. The same values in the same places.
#define TA 16
static void pack_a_transposed(float *packed, const float *A, int64_t rs, int64_t ks, int64_t M, int64_t k0,
                              int64_t kc) {
    for (int64_t t0 = 0; t0 < kc; t0 += TA) {
        int64_t t1 = t0 + TA < kc ? t0 + TA : kc;
        for (int64_t i0 = 0; i0 < M; i0 += MR) {
            float *panel = packed + i0 * kc;
            int64_t mr = M - i0 < MR ? M - i0 : MR;
            if (mr == MR && rs == 1) // a copy of constant size (vector moves)
                for (int64_t k = t0; k < t1; k++) memcpy(panel + k * MR, A + (k0 + k) * ks + i0, MR * sizeof(float));
            else
                for (int64_t k = t0; k < t1; k++)
                    for (int64_t r = 0; r < MR; r++)
                        panel[k * MR + r] = r < mr ? A[(k0 + k) * ks + (i0 + r) * rs] : 0.0f; // zeros past M
        }
    }
}
#undef TA

static void pack_a(float *packed, const float *A, int64_t rs, int64_t ks, int64_t M, int64_t k0, int64_t kc) {
    if (ks != 1) {
        pack_a_transposed(packed, A, rs, ks, M, k0, kc);
        return;
    }
    for (int64_t i0 = 0; i0 < M; i0 += MR) {
        float *panel = packed + i0 * kc;
        int64_t mr = M - i0 < MR ? M - i0 : MR;
        if (mr == MR && transpose_rows(panel, A + i0 * rs + k0, rs, kc)) {
        } else { // rows of A contiguous: MR rows read side by side
            for (int64_t r = 0; r < mr; r++) {
                const float *row = A + (i0 + r) * rs + k0;
                for (int64_t k = 0; k < kc; k++) panel[k * MR + r] = row[k];
            }
        }
        for (int64_t r = mr; r < MR; r++)
            for (int64_t k = 0; k < kc; k++) panel[k * MR + r] = 0.0f;
    }
}

// C[r][0 .. nv NR) (rows r < mr, columns c < nc) = (first ? 0 : C) + alpha * sum over the kc steps
// of a(r, k) * b[k][..], where a(r, k) is ap[k * MR + r] (packed) or ap[r * rs + k] (A read in
// place, rows contiguous). Only the first `rows` rows are summed (MR, or for the last panel of an
// M that is not a multiple of MR 8 or 4 with AVX-512, 4 or 2 with AVX2: the tutorial's 64 output
// channels are 5 panels of 12 and one of 4, which would otherwise cost a whole panel of FMAs on
// zeros). rows, nv and packed are constants at each call site, so that the compiler keeps the sums
// in registers; rows of whole vectors are written straight from them.
// split (packed only): the tile starts 8 rows into a panel of MR, and its rows from MR - 8 on are
// the first rows of the next panel, (kc - 1) MR floats further on than they would be in this one.
// The loops over the tile's rows and vectors are unrolled early (CG_UNROLL, vec8.h): the sums are
// then variables, not an array stored after the loop over k, read back for C and zeroed at each
// call (the Winograd products of the tutorial's second convolution, 32 steps, on a Zen 1 core:
// 31 -> 34 GFLOP/s).
static inline __attribute__((always_inline)) void micro_kernel(int64_t kc, const float *ap, int64_t rs,
                                                               const float *b, int64_t ldb, float *C, int64_t ldc,
                                                               int mr, int nc, float alpha, bool first, const int nv,
                                                               const bool packed, const int rows, const bool split) {
    const float *arow[MR]; // unpacked: row r of A at arow[r][k] (rows past mr repeat the last)
    CG_UNROLL for (int r = 0; r < rows; r++) arow[r] = ap + (r < mr ? r : mr - 1) * rs;
    const int nw = nv * VPR; // vregs per row of the tile
    vreg acc[MR][NV * VPR];
    CG_UNROLL for (int r = 0; r < rows; r++)
        CG_UNROLL for (int v = 0; v < nw; v++) acc[r][v] = (vreg){0};
    for (int64_t k = 0; k < kc; k++) {
        vreg brow[NV * VPR];
        CG_UNROLL for (int v = 0; v < nw; v++) memcpy(&brow[v], b + k * ldb + v * VW, sizeof brow[v]); // unaligned loads
        CG_UNROLL for (int r = 0; r < rows; r++) {
            float a = packed ? ap[k * MR + r + (split && r >= MR - 8 ? (kc - 1) * MR : 0)] : arow[r][k];
            CG_UNROLL for (int v = 0; v < nw; v++) acc[r][v] += a * brow[v];
        }
    }
    if (nc == nv * NR) {
        CG_UNROLL for (int r = 0; r < rows; r++) {
            if (r >= mr) break;
            CG_UNROLL for (int v = 0; v < nw; v++) {
                vreg c;
                if (first)
                    c = alpha * acc[r][v];
                else {
                    memcpy(&c, C + r * ldc + v * VW, sizeof c);
                    c += alpha * acc[r][v];
                }
                memcpy(C + r * ldc + v * VW, &c, sizeof c);
            }
        }
        return;
    }
    // A partial tile through a copy of the sums: acc itself, read at run-time indices (or copied
    // by memcpy), would be an array in memory again, for every tile.
    vreg tile[MR][NV * VPR];
    CG_UNROLL for (int r = 0; r < rows; r++)
        CG_UNROLL for (int v = 0; v < nw; v++) tile[r][v] = acc[r][v];
    for (int r = 0; r < mr; r++)
        for (int c = 0; c < nc; c++) C[r * ldc + c] = (first ? 0.0f : C[r * ldc + c]) + alpha * tile[r][c / VW][c % VW];
}

// Each tile shape in a function of its own, rows and nv its constants, A packed or read in
// place: inlined together into one function, the loops' sums competed for the same registers
// and the compiler kept some of them on the stack (the 4-row tile ran at half the speed).
#define TILE_FUNCTION(NAME, ROWS, NVEC)                                                                       \
    static __attribute__((noinline)) void NAME(int64_t i0, int64_t j0, int64_t N, int64_t kc, float alpha,    \
                                               const float *ap, int64_t rs, const float *b, int64_t ldb,     \
                                               float *C, bool first, int mr, int nc) {                        \
        float *c = C + i0 * N + j0;                                                                           \
        if (rs > 0)                                                                                           \
            micro_kernel(kc, ap + i0 * rs, rs, b, ldb, c, N, mr, nc, alpha, first, NVEC, false, ROWS, false); \
        else                                                                                                  \
            micro_kernel(kc, ap + i0 * kc, 0, b, ldb, c, N, mr, nc, alpha, first, NVEC, true, ROWS, false);  \
    }
TILE_FUNCTION(tile_1_vector, MR, 1)    // the last column panel when ldb is an odd number of vectors
#ifdef __AVX512F__
TILE_FUNCTION(tile_full, MR, NV)       // 12 x 32
TILE_FUNCTION(tile_8_rows, 8, NV)      // the last row panel when M % MR is 5 to 8
TILE_FUNCTION(tile_4_rows, 4, NV)      // ... 1 to 4

// Rows i0 .. i0+mr-1 (mr <= 8) of C from packed A, i0 8 rows into a panel of MR (see gemm_panel):
// rows 8 .. MR-1 of that panel, then the first rows of the next one.
static __attribute__((noinline)) void tile_8_split(int64_t i0, int64_t j0, int64_t N, int64_t kc, float alpha,
                                                   const float *ap, const float *b, int64_t ldb, float *C, bool first,
                                                   int mr, int nc) {
    micro_kernel(kc, ap + (i0 - 8) * kc + 8, 0, b, ldb, C + i0 * N + j0, N, mr, nc, alpha, first, NV, true, 8, true);
}
#else
TILE_FUNCTION(tile_4_rows, 4, 1) // AVX2: the last row panel when M % MR is 3 or 4
TILE_FUNCTION(tile_2_rows, 2, 1) // ... 1 or 2

// AVX2: 16 columns of a row panel, in a tile of as many rows as it has, or the next size up. The
// last panel of 32 rows (Winograd's products for dx in the tutorial's second convolution) has 2
// rows: as a 6-row tile its FMAs on zeros were a ninth of the product's. The 2-row tile's 4 sums
// wait on each other (an FMA's result comes 5 cycles later), but a step costs 5 cycles, not 12:
// that product (32 x 112 x 64) ran at 31.9 GFLOP/s on a Zen 1 core, now 36.0.
static void tile_16(int64_t i0, int64_t j0, int64_t N, int64_t kc, float alpha, const float *ap, int64_t rs,
                    const float *b, int64_t ldb, float *C, bool first, int mr, int nc) {
    if (mr > 4)
        tile_1_vector(i0, j0, N, kc, alpha, ap, rs, b, ldb, C, first, mr, nc);
    else if (mr > 2)
        tile_4_rows(i0, j0, N, kc, alpha, ap, rs, b, ldb, C, first, mr, nc);
    else
        tile_2_rows(i0, j0, N, kc, alpha, ap, rs, b, ldb, C, first, mr, nc);
}

// AVX2: the panel's 32 columns as two tiles of 6 x 16 (see MR), B's second half NR floats on in
// each row of the panel. Each element of C gets the same sums in the same order in any tile.
static void tile_full(int64_t i0, int64_t j0, int64_t N, int64_t kc, float alpha, const float *ap, int64_t rs,
                      const float *b, int64_t ldb, float *C, bool first, int mr, int nc) {
    tile_16(i0, j0, N, kc, alpha, ap, rs, b, ldb, C, first, mr, nc < NR ? nc : NR);
    if (nc > NR) tile_16(i0, j0 + NR, N, kc, alpha, ap, rs, b + NR, ldb, C, first, mr, nc - NR);
}
#endif

// The tiles of column panel j0 (NV x NR columns, or NR at the end when N rounds up to an odd
// number of vectors: not `full`) for every row panel of MR rows, over K steps k0 .. k0+kc-1: b is
// the panel's row k0, rows ldb floats apart; ap holds those steps of A, packed, or is A + k0 read
// in place (rows rs floats apart) when rs > 0.
static void gemm_panel(int64_t j0, int64_t M, int64_t N, int64_t kc, float alpha, const float *ap, int64_t rs,
                       const float *b, int64_t ldb, bool full, float *C, bool first) {
    int nc = (int)(N - j0 < NV * NR ? N - j0 : NV * NR);
    for (int64_t i0 = 0; i0 < M; i0 += MR) {
        int mr = (int)(M - i0 < MR ? M - i0 : MR);
        if (!full) {
#ifdef __AVX512F__
            tile_1_vector(i0, j0, N, kc, alpha, ap, rs, b, ldb, C, first, mr, nc);
#else
            tile_16(i0, j0, N, kc, alpha, ap, rs, b, ldb, C, first, mr, nc);
#endif
            continue;
        }
#ifdef __AVX512F__
        // A last panel of 1 to 4 rows (64 output channels: 5 panels of 12 and one of 4) and the
        // whole panel before it go as two tiles of 8 rows and of 5 to 8: the 4-row tile's 8 sums
        // took 2 loads of B and 4 of A per 8 FMAs, and ran at half the speed of the others (a
        // product of 64 rows, 288 steps and 784 columns: 107 -> 110 GFLOP/s on one Zen 4 core).
        // Each element of C gets the same sums, taken in the same order, whatever its tile.
        if (M - i0 > MR && M - i0 <= MR + 4) {
            tile_8_rows(i0, j0, N, kc, alpha, ap, rs, b, ldb, C, first, 8, nc);
            if (rs > 0) // A read in place: any 8 rows are a tile
                tile_8_rows(i0 + 8, j0, N, kc, alpha, ap, rs, b, ldb, C, first, (int)(M - i0 - 8), nc);
            else
                tile_8_split(i0 + 8, j0, N, kc, alpha, ap, b, ldb, C, first, (int)(M - i0 - 8), nc);
            break;
        }
        if (mr > 8)
            tile_full(i0, j0, N, kc, alpha, ap, rs, b, ldb, C, first, mr, nc);
        else if (mr > 4)
            tile_8_rows(i0, j0, N, kc, alpha, ap, rs, b, ldb, C, first, mr, nc);
        else
            tile_4_rows(i0, j0, N, kc, alpha, ap, rs, b, ldb, C, first, mr, nc);
#else
        tile_full(i0, j0, N, kc, alpha, ap, rs, b, ldb, C, first, mr, nc);
#endif
    }
}

// Column panel j of the block k0 .. k0+kc-1: its rows of B, packed (pack_b: `width` floats apart)
// or read in place (N apart), then gemm_panel.
static void column_panel(int64_t j, bool packed, const float *bp, int64_t k0, int64_t K, int64_t N, int64_t ldb,
                         int64_t mc, int64_t kc, float alpha, const float *a, int64_t rs, float *c, bool first) {
    int64_t j0 = j * NV * NR, width = ldb - j0 < NV * NR ? ldb - j0 : NV * NR;
    const float *b = packed ? bp + j0 * K + k0 * width : bp + k0 * N + j0;
    gemm_panel(j0, mc, N, kc, alpha, a, rs, b, packed ? width : N, width == NV * NR, c, first);
}

// Matrix-vector products (N == 1 or M == 1) gain nothing from tiles, which would pad the
// single row or column to a whole tile. Every layout of a vector is contiguous.
// sum of a[k] * b[k], NR products at a time in a vector (a plain loop would be summed in order,
// one product at a time, since float addition is not associative).
static float dot(const float *a, const float *b, int64_t n) {
    row16 acc = {0};
    int64_t k = 0;
    for (; k + NR <= n; k += NR) {
        row16 va, vb;
        memcpy(&va, a + k, sizeof va);
        memcpy(&vb, b + k, sizeof vb);
        acc += va * vb;
    }
    float sum = 0.0f;
    for (int c = 0; c < NR; c++) sum += acc[c];
    for (; k < n; k++) sum += a[k] * b[k];
    return sum;
}

// C(M,1) += alpha * op(A) b: one dot product per row (rows of A contiguous unless trans_a).
static void gemv_column(bool trans_a, int64_t M, int64_t K, float alpha, const float *A, const float *b, float *C) {
    if (!trans_a) {
        for (int64_t i = 0; i < M; i++) C[i] += alpha * dot(A + i * K, b, K);
    } else {
        for (int64_t k = 0; k < K; k++)
            for (int64_t i = 0; i < M; i++) C[i] += alpha * b[k] * A[k * M + i];
    }
}

// C(1,N) += alpha * a op(B): rows of B scaled and added (B stored (K,N)), or dot products
// with the rows of B (stored (N,K)).
static void gemv_row(bool trans_b, int64_t N, int64_t K, float alpha, const float *a, const float *B, float *C) {
    if (!trans_b) {
        for (int64_t k = 0; k < K; k++)
            for (int64_t j = 0; j < N; j++) C[j] += alpha * a[k] * B[k * N + j];
    } else {
        for (int64_t j = 0; j < N; j++) C[j] += alpha * dot(a, B + j * K, K);
    }
}

// C(M,N) += alpha * op(A) op(B) (= when overwrite), K taken KC at a time: the block's rows of A
// packed (pack_a), then every tile of C. For large products threads share out the column panels
// of each block (OpenMP only then: see elementwise.c); every tile's sums are taken in the same
// order on any number of threads. B is read in place when its rows are already whole tiles (not
// transposed, N a multiple of NR), packed otherwise.
static void gemm_tiled(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                       const float *pre, const float *B, bool b_panels, float *C, bool overwrite) {
    int64_t ldb = (N + NR - 1) / NR * NR, rs = trans_a ? 1 : K, ks = trans_a ? M : 1;
    int64_t padded_m = (M + MR - 1) / MR * MR, panels = (N + NV * NR - 1) / (NV * NR);
    // B is copied (pack_b) when its rows are not whole vectors, and when they are a multiple of
    // 64 floats apart: the rows of a tile's B then fall into a quarter or less of the first-level
    // cache's 64 sets (64 floats are 4 lines: every 16th set; 512 floats, every 32nd) and evict
    // each other before the next row panel reads them again. The weight gradients' B is the
    // transposed dy, K = 64 to 512 output channels wide: ResNet-18's layer4 ran 10 % slower
    // with it read in place.
    bool packed = b_panels || trans_b || N % NR != 0 || (N % 64 == 0 && M >= PACK_B_ROWS);
    const float *bp = b_panels ? B : packed ? pack_b(trans_b, B, N, K, ldb) : B; // (b_panels: given as pack_b's copy)
    bool threads = M * N * K >= 64 * CG_OMP_MIN_WORK && panels > 1;
    // A is packed when its rows are not contiguous, or when it is read by many column panels;
    // otherwise (the convolutions' weight gradient: A the columns, N the few output channels) the
    // copy would cost more than reading MR rows side by side.
    bool in_place = !trans_a && panels <= 4 && pre == NULL;
    int64_t row_panels = padded_m / MR, m_blocks = (padded_m + MC - 1) / MC;
    int64_t mc_max = (row_panels + m_blocks - 1) / m_blocks * MR; // rows per block
    float *ap = in_place || pre ? NULL : buffer(1, mc_max * (K < KC ? K : KC));
    for (int64_t k0 = 0; k0 < K; k0 += KC) {
        int64_t kc = K - k0 < KC ? K - k0 : KC;
        bool first = overwrite && k0 == 0;
        for (int64_t m0 = 0; m0 < M; m0 += mc_max) { // rows m0 .. m0+mc-1 of op(A) and of C
            int64_t mc = M - m0 < mc_max ? M - m0 : mc_max;
            const float *a = in_place ? A + m0 * rs + k0 : pre ? pre + padded_m * k0 + m0 * kc : ap;
            float *c = C + m0 * N;
            if (ap) pack_a(ap, A + m0 * rs, rs, ks, mc, k0, kc);
            if (!threads) {
                for (int64_t j = 0; j < panels; j++)
                    column_panel(j, packed, bp, k0, K, N, ldb, mc, kc, alpha, a, in_place ? K : 0, c, first);
                continue;
            }
#pragma omp parallel for
            for (int64_t j = 0; j < panels; j++)
                column_panel(j, packed, bp, k0, K, N, ldb, mc, kc, alpha, a, in_place ? K : 0, c, first);
        }
    }
}

// A large product of few column panels (N of 128 or less: 4 panels), whose threads would each
// get one or two panels per block of K, a parallel region per block, after B's copy on one
// thread: rows in pieces instead, one per thread, each piece a product of its own on that thread,
// which packs B for itself. The tutorial's first linear layer forward (128 x 128 x 3,136: 4
// panels, 13 blocks of K) ran 0.44 ms on one Zen 5 core and 0.39 on two; in pieces, 0.27-0.29. (B
// packed once, its panels shared out between the threads, then read by both pieces: 0.39 again,
// each thread reading the panels the other had just written.) Each row of C is the same sums in
// any piece (its tile's rows do not change its sums): the same bits on any number of threads.
// Rows of op(A) are rows of A only when A is not transposed.
static bool row_pieces(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                       const float *B, float beta, float *C) {
    int threads = cg_get_num_threads();
#ifdef _OPENMP
    if (omp_in_parallel()) return false; // a product inside a parallel loop (a convolution's group): one thread
#endif
    int64_t panels = (N + NV * NR - 1) / (NV * NR);
    if (threads < 2 || trans_a || panels > 4 || M < 2 * MR * threads || M * N * K < 64 * CG_OMP_MIN_WORK) return false;
    int64_t tiles = (M + MR - 1) / MR;
#pragma omp parallel for schedule(static)
    for (int p = 0; p < threads; p++) {
        int64_t lo = tiles * p / threads * MR, hi = p == threads - 1 ? M : tiles * (p + 1) / threads * MR;
        if (hi > lo)
            gemm_tiled(false, trans_b, hi - lo, N, K, alpha, A + lo * K, NULL, B, false, C + lo * N, beta == 0.0f);
    }
    return true;
}

bool gemm_cpu_uses_openblas(void) {
#ifdef __AVX512F__
    return false;
#else
    return cg_blas_core() != NULL;
#endif
}

void gemm_cpu(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
              const float *B, float beta, float *C) {
#ifndef __AVX512F__
    if (M * N * K >= CG_SMALL_GEMM_WORK && cg_blas_sgemm(trans_a, trans_b, M, N, K, alpha, A, B, beta, C)) return;
#endif
    gemm_engine_cpu(trans_a, trans_b, M, N, K, alpha, A, B, beta, C);
}

void gemm_engine_cpu(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                     const float *B, float beta, float *C) {
    bool vector = N == 1 || M == 1;
    if (beta == 0.0f && vector)
        memset(C, 0, (size_t)(M * N) * sizeof(float)); // not C *= 0: C may hold NaN garbage
    else if (beta != 0.0f && beta != 1.0f)
        for (int64_t i = 0; i < M * N; i++) C[i] *= beta;
    if (N == 1)
        gemv_column(trans_a, M, K, alpha, A, B, C);
    else if (M == 1)
        gemv_row(trans_b, N, K, alpha, A, B, C);
    else if (!row_pieces(trans_a, trans_b, M, N, K, alpha, A, B, beta, C))
        gemm_tiled(trans_a, trans_b, M, N, K, alpha, A, NULL, B, false, C, beta == 0.0f); // beta 0: tiles overwrite C
}

// B handed over in pack_b's layout (N a multiple of CG_GEMM_PANEL: whole panels), written there
// by its producer: conv.c's weight gradient transposes dy straight into the panels, and its dx
// copies dy's rows into them, where the GEMM copied B again (dx: dy's rows to a block, then the
// block to panels, 7 % of ResNet-18 layer1's dx; now 5 %, one copy from memory). packed_a: op(A)
// packed by gemm_pack_a_cpu, or NULL.
void gemm_panels_b_cpu(bool trans_a, const float *A, const float *packed_a, int64_t M, int64_t N, int64_t K,
                       float alpha, const float *panels, float beta, float *C) {
    CG_CHECK(M > 1 && N > 1 && N % NR == 0 && (beta == 0.0f || beta == 1.0f),
             "gemm_panels_b_cpu: M %lld, N %lld, beta %g: needs M, N > 1, N a multiple of %d, beta 0 or 1",
             (long long)M, (long long)N, (double)beta, NR);
    gemm_tiled(trans_a, false, M, N, K, alpha, A, packed_a, panels, true, C, beta == 0.0f);
}

// op(A) packed whole, block of K after block of K, each as pack_a lays it out (panel i0 of the
// block at k0 at padded_m * k0 + i0 * kc), for products that share one A: a convolution's
// weights, the same for every group of images and every block of rows. Packed in each call, they
// cost 7 to 20 % of ResNet-18's forward (layer4's 512 x 4608 weights for each group of 4 images
// of 7 x 7 positions, layer1's for each block of 6 rows).
int64_t gemm_packed_a_floats(int64_t M, int64_t K) {
    return (M + MR - 1) / MR * MR * K;
}

// The blocks of K are shared out among the threads when the copy is large: the caller packs before
// its threads start on the groups of images, and ResNet-18's layer4 weights (512 x 4608, 9.4 MB,
// from memory) on one thread left the other waiting for a fifth of the forward.
void gemm_pack_a_cpu(float *packed, bool trans_a, int64_t M, int64_t K, const float *A) {
    int64_t padded_m = (M + MR - 1) / MR * MR, rs = trans_a ? 1 : K, ks = trans_a ? M : 1, blocks = (K + KC - 1) / KC;
#pragma omp parallel for if (M * K >= 4 * CG_OMP_MIN_WORK && blocks > 1)
    for (int64_t b = 0; b < blocks; b++) {
        int64_t k0 = b * KC;
        pack_a(packed + padded_m * k0, A, rs, ks, M, k0, K - k0 < KC ? K - k0 : KC);
    }
}

// Rows m0 .. m1-1 of op(A) (M x K) packed as gemm_pack_a_cpu packs a matrix of m1 - m0 rows, by the
// calling thread alone: a part of a convolution's weights that one thread packs for itself and
// multiplies while the copy is still in its cache (conv_dx.c). pack_a reads row i of op(A) at
// A + i rs, so the part starts at A + m0 rs and keeps the whole matrix's strides.
void gemm_pack_a_rows_cpu(float *packed, bool trans_a, int64_t M, int64_t K, const float *A, int64_t m0, int64_t m1) {
    int64_t rows = m1 - m0, padded = (rows + MR - 1) / MR * MR, rs = trans_a ? 1 : K, ks = trans_a ? M : 1;
    for (int64_t k0 = 0; k0 < K; k0 += KC)
        pack_a(packed + padded * k0, A + m0 * rs, rs, ks, rows, k0, K - k0 < KC ? K - k0 : KC);
}

void gemm_prepacked_cpu(bool trans_a, const float *A, const float *packed_a, bool trans_b, int64_t M, int64_t N,
                        int64_t K, float alpha, const float *B, float beta, float *C) {
    if (N == 1 || M == 1 || (beta != 0.0f && beta != 1.0f)) { // the vector products do not read the copy
        gemm_engine_cpu(trans_a, trans_b, M, N, K, alpha, A, B, beta, C);
        return;
    }
    gemm_tiled(trans_a, trans_b, M, N, K, alpha, A, packed_a, B, false, C, beta == 0.0f);
}

static void linear_forward_cpu(float *y, const float *x, const float *w, const float *bias, int64_t M, int64_t N,
                               int64_t K) {
    gemm_cpu(false, true, M, N, K, 1.0f, x, w, 0.0f, y); // y = x W^T
    if (bias) add_bias_forward_cpu(y, y, bias, M, N);
}

void gemm_h_cpu(cg_dtype dtype, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                const void *A, const void *B, float beta, void *C) {
    if (dtype == CG_BF16 && cg_bf16_gemm_hw(trans_a, trans_b, M, N, K, alpha, A, B, beta, C)) return; // bf16_ops.c
    float *a = half_widen_cpu(0, A, dtype, M * K), *b = half_widen_cpu(1, B, dtype, K * N);
    float *c = beta != 0.0f ? half_widen_cpu(2, C, dtype, M * N) : half_scratch_cpu(2, M * N);
    gemm_cpu(trans_a, trans_b, M, N, K, alpha, a, b, beta, c);
    half_store_cpu(C, dtype, c, M * N);
}

static void linear_forward_h_cpu(cg_dtype dtype, void *y, const void *x, const void *w, const void *bias, int64_t M,
                                 int64_t N, int64_t K) {
    if (dtype == CG_BF16 && cg_bf16_linear_forward_hw(y, x, w, bias, M, N, K)) return; // bf16_ops.c
    float *xf = half_widen_cpu(0, x, dtype, M * K), *wf = half_widen_cpu(1, w, dtype, N * K), *bf = half_widen_cpu(2, bias, dtype, N);
    float *yf = half_scratch_cpu(3, M * N);
    linear_forward_cpu(yf, xf, wf, bf, M, N, K);
    half_store_cpu(y, dtype, yf, M * N);
}


// This file's rows of the CPU kernel table (kernels/cpu/table.c).
void gemm_register_cpu(cg_kernels *k) {
    k->gemm = gemm_cpu;
    k->linear_forward = linear_forward_cpu;
    k->gemm_h = gemm_h_cpu;
    k->linear_forward_h = linear_forward_h_cpu;
}
