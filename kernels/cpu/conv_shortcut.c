// conv_shortcut.c: the backward of ResNet's downsampling shortcut, a 1 x 1 convolution of stride 2
// without padding, on planes of even sides (H = 2P, W = 2Q) with Q dividing 16 and whole vectors of
// channels (CIFAR's layer2 and layer3 shortcuts: 32 x 32 -> 16 x 16 and 16 x 16 -> 8 x 8); AVX-512
// only. conv.c calls it for each group of images in place of its general path.
//
// Such a convolution reads x at the even positions only, and its dx is zero at the odd ones. With
// Q dividing 16, 16 consecutive output positions (16 / Q whole output rows, from a multiple of 16)
// are one block of 64 consecutive floats of an input plane (2 x 16 / Q rows of W = 2Q floats): the
// positions are its even rows' even lanes. The general path copied them into the im2col columns
// and transposed dy for dW, and for dx wrote the product's columns and folded them into dx (col2im),
// each a pass of its own over memory around the products (a quarter of each direction's time on
// one Zen 5 core). Here:
// - dW (K, C) = dy (K, positions) times x's even positions transposed: dy is the product's A read
//   in place (an image's positions are contiguous), and the even positions go from the planes
//   straight into the GEMM's column panels (B), 16 channels x 16 positions a transpose: one copy
//   of x's values where the general path copied x's and transposed dy's (twice as many for the
//   shortcut's K = 2C).
// - dx = W^T dy by a register tile of its own (12 input channels x 32 positions over the K output
//   channels, as gemm.c's micro_kernel), dy read in place (a step's 32 positions from one of its
//   planes; copying dy into the GEMM's column panels first took a sixth of dx), whose sums leave
//   the registers straight into dx: each vector of 16 sums spread over its block of 64 floats,
//   zeros at the odd positions, the stores of one tile overlapping the next tile's FMAs.
// The same sums in the same order as the general path (gemm.c's blocks of K over a group's
// positions, FMAs from +0, each dx element at most one term): the same bits (test_conv_cpu).
// CIFAR's layer2 shortcut (64 -> 128 channels, batch 32, dx written) on one Zen 5 core: dx 0.72 ->
// 0.58 ms, dW 0.73 -> 0.62 ms, the whole backward with db 1.57-1.72 -> 1.37-1.38 ms, bench_cpu_peak's
// row 53-58 -> 70-72 % of the fp32 peak; layer3's (128 -> 256 on 16 x 16) 1.39 -> 1.21 ms.
#include "kernels/cpu/conv_parts.h"

#include "kernels/cpu/cpu.h"
#include "kernels/cpu/im2col.h"
#include "kernels/cpu/threads.h"

#include <string.h>

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#include <immintrin.h>

#include "kernels/cpu/transpose16.h"
#define CG_SHORTCUT 1
#endif

bool conv2d_shortcut_takes(int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S, int64_t stride,
                           int64_t pad, int64_t P, int64_t Q) {
#ifdef CG_SHORTCUT
    // dx's tiles take 32 positions of one image and the K output channels in one block of the
    // GEMM's K (its sums, as gemm.c's); dW's panels take channels 16 at a time
    return R == 1 && S == 1 && stride == 2 && pad == 0 && H == 2 * P && W == 2 * Q && 16 % Q == 0 &&
           P * Q % 32 == 0 && C % 16 == 0 && K > 1 && K <= CG_GEMM_KC;
#else
    (void)C, (void)H, (void)W, (void)K, (void)R, (void)S, (void)stride, (void)pad, (void)P, (void)Q;
    return false;
#endif
}

#ifdef CG_SHORTCUT
// Lane l of a vector of 16 positions is float f(l) = 4 Q (l / Q) + 2 (l % Q) of their block of 64:
// to gather them, f(l) below 32 from the block's first two vectors (vpermt2ps, index f), the
// others from the last two (index f - 32), `from_high` marking those lanes; `needed` the block's
// vectors that hold any (Q = 16: the first two, the even row; Q = 8: the first and third). To
// spread 16 sums into the block, vector i of it takes lane spread[i][j] into its lane j where
// `at[i]` has bit j (the even positions), zeros elsewhere.
typedef struct {
    __m512i gather_low, gather_high, spread[4];
    __mmask16 from_high, at[4];
    bool needed[4];
} block_map;

static block_map map_for(int64_t Q) {
    block_map m;
    memset(&m, 0, sizeof m);
    int32_t low[16] = {0}, high[16] = {0}, spread[4][16] = {{0}};
    for (int l = 0; l < 16; l++) {
        int f = (int)(4 * Q * (l / Q) + 2 * (l % Q));
        if (f < 32)
            low[l] = f;
        else
            high[l] = f - 32, m.from_high |= (__mmask16)(1u << l);
        m.needed[f / 16] = true;
        spread[f / 16][f % 16] = l;
        m.at[f / 16] |= (__mmask16)(1u << (f % 16));
    }
    m.gather_low = _mm512_loadu_si512(low);
    m.gather_high = _mm512_loadu_si512(high);
    for (int i = 0; i < 4; i++) m.spread[i] = _mm512_loadu_si512(spread[i]);
    return m;
}

// The 16 positions of a block (at `block`) of one plane, in order.
static inline __attribute__((always_inline)) __m512 gather_block(const float *block, const block_map *m) {
    __m512 v[4];
    for (int i = 0; i < 4; i++) v[i] = m->needed[i] ? _mm512_loadu_ps(block + 16 * i) : _mm512_setzero_ps();
    __m512 low = _mm512_permutex2var_ps(v[0], m->gather_low, v[1]);
    if (!m->from_high) return low;
    return _mm512_mask_mov_ps(low, m->from_high, _mm512_permutex2var_ps(v[2], m->gather_high, v[3]));
}

// ---- dW ------------------------------------------------------------------------------------------
// x's even positions of images n0 .. n0+count-1 as gemm_panels_b_cpu's B (count P Q rows, C
// columns, in panels of 32 columns): row j P Q + i, column c = x[n0 + j][c] at position i.
static void even_positions_panels(float *out, const float *x, int64_t n0, int64_t count, int64_t C, int64_t H,
                                  int64_t W, int64_t pq, const block_map *m) {
    int64_t rows = count * pq;
    for (int64_t c0 = 0; c0 < C; c0 += 16) {
        int64_t j0 = c0 / CG_GEMM_PANEL * CG_GEMM_PANEL, width = C - j0 < CG_GEMM_PANEL ? C - j0 : CG_GEMM_PANEL;
        float *panel = out + j0 * rows + (c0 - j0);
        for (int64_t j = 0; j < count; j++)
            for (int64_t i0 = 0; i0 < pq; i0 += 16) {
                __m512 r[16];
                const float *block = x + ((n0 + j) * C + c0) * H * W + 4 * i0;
                for (int c = 0; c < 16; c++) r[c] = gather_block(block + c * H * W, m);
                cg_transpose16(r); // r[l]: position i0 + l, channel c0 + c in lane c
                for (int l = 0; l < 16; l++) _mm512_storeu_ps(panel + (j * pq + i0 + l) * width, r[l]);
            }
    }
}

void conv2d_shortcut_dw_group(float *slice, const float *x, const float *dy, int64_t n0, int64_t count, int64_t C,
                              int64_t H, int64_t W, int64_t K, int64_t P, int64_t Q) {
    static _Thread_local cg_thread_buffer buffers[2];
    block_map m = map_for(Q);
    int64_t pq = P * Q, ld = count * pq;
    if (pq % CG_GEMM_KC == 0) { // an image is whole blocks of the GEMM's K: dy read in place, image by image
        float *panels = cg_thread_floats_aligned(&buffers[0], pq * C);
        for (int64_t j = 0; j < count; j++) {
            even_positions_panels(panels, x, n0 + j, 1, C, H, W, pq, &m);
            gemm_panels_b_cpu(false, dy + (n0 + j) * K * pq, NULL, K, C, pq, 1.0f, panels, j == 0 ? 0.0f : 1.0f,
                              slice);
        }
        return;
    }
    // smaller planes: the group's dy side by side (K, ld), then one product over all its positions
    float *panels = cg_thread_floats_aligned(&buffers[0], ld * C), *dyg = cg_thread_floats_aligned(&buffers[1], K * ld);
    for (int64_t j = 0; j < count; j++)
        for (int64_t k = 0; k < K; k++)
            memcpy(dyg + k * ld + j * pq, dy + ((n0 + j) * K + k) * pq, (size_t)pq * sizeof(float));
    even_positions_panels(panels, x, n0, count, C, H, W, pq, &m);
    gemm_panels_b_cpu(false, dyg, NULL, K, C, ld, 1.0f, panels, 0.0f, slice);
}

// ---- dx ------------------------------------------------------------------------------------------
// The tiles' row panels: 12 input channels, and the last 13 to 16 as two of 8 or fewer (a tile of 4
// rows has 8 sums for 6 loads a step, as gemm.c's; its note), the last 1 to 12 as one of 4, 8 or 12.
static int panel_rows(int64_t left) {
    if (left > 16 || left == 12) return 12;
    if (left > 12) return 8;
    return left > 8 ? 12 : left > 4 ? 8 : 4;
}

const float *conv2d_shortcut_dx_weights(const float *w, int64_t K, int64_t C) {
    static _Thread_local cg_thread_buffer buffer;
    float *packed = cg_thread_floats_aligned(&buffer, (C + 12) * K), *at = packed;
    // W^T (C, K) in row panels, each step k's rows side by side (a[k rows + r] = w[k][c0 + r]), zeros past C
    for (int64_t c0 = 0; c0 < C;) {
        int rows = panel_rows(C - c0);
        for (int64_t k = 0; k < K; k++)
            for (int r = 0; r < rows; r++) at[k * rows + r] = c0 + r < C ? w[k * C + c0 + r] : 0.0f;
        at += rows * K, c0 += rows;
    }
    return packed;
}

// 16 sums (positions of a block) spread over their block of dx: written (0 + the sum, as col2im
// adding to zeros; zeros at the odd positions) or added to what dx holds.
static inline __attribute__((always_inline)) void spread_block(float *block, __m512 sums, const block_map *m,
                                                               bool write) {
    for (int i = 0; i < 4; i++) {
        if (write) {
            __m512 v = _mm512_maskz_permutexvar_ps(m->at[i], m->spread[i], sums);
            _mm512_storeu_ps(block + 16 * i, _mm512_add_ps(_mm512_setzero_ps(), v));
        } else if (m->at[i]) {
            __m512 old = _mm512_maskz_loadu_ps(m->at[i], block + 16 * i);
            _mm512_mask_storeu_ps(block + 16 * i, m->at[i],
                                  _mm512_add_ps(old, _mm512_permutexvar_ps(m->spread[i], sums)));
        }
    }
}

// One tile: input channels c .. c + mr - 1 (a panel of `rows`, a: its packed steps) x 32 positions
// (b: their column panel of dy, 32 floats a step), each sum over the K output channels in order,
// FMAs from +0; then into the planes of dx (plane floats apart) at the positions' blocks (`at`).
static inline __attribute__((always_inline)) void dx_tile(float *dx, int64_t plane, int64_t at, const float *a,
                                                          const float *b, int64_t ldb, int64_t K, int mr,
                                                          const int rows, const block_map *m, bool write) {
    __m512 acc[12][2];
    for (int r = 0; r < rows; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    for (int64_t k = 0; k < K; k++) {
        __m512 b0 = _mm512_loadu_ps(b + k * ldb), b1 = _mm512_loadu_ps(b + k * ldb + 16);
        for (int r = 0; r < rows; r++) {
            __m512 ar = _mm512_set1_ps(a[k * rows + r]);
            acc[r][0] = _mm512_fmadd_ps(ar, b0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(ar, b1, acc[r][1]);
        }
    }
    for (int r = 0; r < rows && r < mr; r++) {
        spread_block(dx + r * plane + at, acc[r][0], m, write);
        spread_block(dx + r * plane + at + 64, acc[r][1], m, write);
    }
}

// Each tile shape in a function of its own (gemm.c's TILE_FUNCTION says why).
#define DX_TILE(NAME, ROWS)                                                                                       \
    static __attribute__((noinline)) void NAME(float *dx, int64_t plane, int64_t at, const float *a,              \
                                               const float *b, int64_t ldb, int64_t K, int mr, const block_map *m,  \
                                               bool write) {                                                        \
        dx_tile(dx, plane, at, a, b, ldb, K, mr, ROWS, m, write);                                                 \
    }
DX_TILE(dx_tile_12, 12)
DX_TILE(dx_tile_8, 8)
DX_TILE(dx_tile_4, 4)

void conv2d_shortcut_dx_group(float *dx, const float *dy, const float *wt, int64_t n0, int64_t count, int64_t C,
                              int64_t H, int64_t W, int64_t K, int64_t P, int64_t Q, bool write) {
    block_map m = map_for(Q);
    int64_t pq = P * Q, plane = H * W;
    for (int64_t n = n0; n < n0 + count; n++)
        for (int64_t i0 = 0; i0 < pq; i0 += 32) {
            const float *b = dy + n * K * pq + i0, *a = wt; // dy read in place: rows of 32 positions, pq apart
            for (int64_t c0 = 0; c0 < C;) {
                int rows = panel_rows(C - c0), mr = (int)(C - c0 < rows ? C - c0 : rows);
                float *out = dx + (n * C + c0) * plane;
                if (rows == 12)
                    dx_tile_12(out, plane, 4 * i0, a, b, pq, K, mr, &m, write);
                else if (rows == 8)
                    dx_tile_8(out, plane, 4 * i0, a, b, pq, K, mr, &m, write);
                else
                    dx_tile_4(out, plane, 4 * i0, a, b, pq, K, mr, &m, write);
                a += rows * K, c0 += rows;
            }
        }
}
#else
// Without AVX-512 conv2d_shortcut_takes is false and conv.c never calls these; they exist for the link.
const float *conv2d_shortcut_dx_weights(const float *w, int64_t K, int64_t C) {
    (void)w, (void)K, (void)C;
    return NULL;
}

void conv2d_shortcut_dw_group(float *slice, const float *x, const float *dy, int64_t n0, int64_t count, int64_t C,
                              int64_t H, int64_t W, int64_t K, int64_t P, int64_t Q) {
    (void)slice, (void)x, (void)dy, (void)n0, (void)count, (void)C, (void)H, (void)W, (void)K, (void)P, (void)Q;
}

void conv2d_shortcut_dx_group(float *dx, const float *dy, const float *wt, int64_t n0, int64_t count, int64_t C,
                              int64_t H, int64_t W, int64_t K, int64_t P, int64_t Q, bool write) {
    (void)dx, (void)dy, (void)wt, (void)n0, (void)count, (void)C, (void)H, (void)W, (void)K, (void)P, (void)Q,
        (void)write;
}
#endif
