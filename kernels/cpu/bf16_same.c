// bf16_same.c: im2col straight into the packed operands, and col2im back, for "same"
// convolutions with stride 1 on the bf16 hardware paths (bf16_ops.c's forward and backward; the
// declarations and what each takes are in bf16_same.h).
#include "kernels/cpu/bf16_same.h"

#include <string.h>

#ifdef CG_CPU_MATRIX_KERNELS
// Words of one (r, s) bitset over H*W positions: two to spare, so that the 32 bits from any
// position up to 16 past the last one can be read as two words (bits_at).
int64_t cg_bf16_same_valid_words(int64_t H, int64_t W) { return H * W / 64 + 3; }

// bits[(r * S + s) * cg_bf16_same_valid_words(H, W) ...]: bit pos set when column row (r, s) at
// position pos (p * W + q) reads inside the image, as bf16_planes.c's cg_bf16_im2col decides it.
void cg_bf16_same_valid_positions(uint64_t *bits, int64_t H, int64_t W, int64_t R, int64_t S, int64_t pad) {
    int64_t words = cg_bf16_same_valid_words(H, W);
    memset(bits, 0, (size_t)(R * S * words) * sizeof *bits);
    for (int64_t r = 0; r < R; r++)
        for (int64_t s = 0; s < S; s++) {
            uint64_t *b = bits + (r * S + s) * words;
            int64_t shift = (r - pad) * W + (s - pad), first = shift < 0 ? -shift : 0;
            int64_t end = shift > 0 ? H * W - shift : H * W; // the flat range whose source is in the plane
            int64_t q0 = pad - s > 0 ? pad - s : 0, q1 = W + pad - s < W ? W + pad - s : W; // no wrap-around
            for (int64_t pos = first; pos < end; pos++)
                if (pos % W >= q0 && pos % W < q1) b[pos / 64] |= 1ull << (pos % 64);
        }
}

// The 32 bits of a bitset from position l on (bit i: position l + i).
static inline uint32_t bits_at(const uint64_t *b, int64_t l) {
    int64_t w = l / 64, o = l % 64;
    uint64_t v = b[w] >> o;
    if (o) v |= b[w + 1] << (64 - o);
    return (uint32_t)v;
}

// The address of element i of a plane, where i may lie outside it: a masked load reads only the
// lanes of its mask, which do lie inside (computed as an integer: C allows no pointer outside
// its array).
// Elements of `size` bytes; lane_address for bf16 planes, float_lane_address for col2im's rows.
static inline const void *element_address(const void *base, int64_t i, int64_t size) {
    return (const void *)((uintptr_t)base + (uintptr_t)(i * size));
}
static inline const void *lane_address(const uint16_t *plane, int64_t i) { return element_address(plane, i, 2); }

// The forward's B operand, packed: B (C*R*S, H*W) = one image's columns. Pairs of rows k, k+1,
// 16 positions at a time: two masked loads, interleaved into one row of a block (as
// cg_bf16_pack_b's interleave_rows). The masks of row (r, s), one per 16 positions, are looked
// up rather than cut out of the bitset each time.
VEC_TARGET void cg_bf16_pack_b_same(uint16_t *Bp, const uint16_t *x, const uint64_t *valid, int64_t C, int64_t H,
                                   int64_t W, int64_t R, int64_t S, int64_t pad) {
    const __m512i order = _mm512_set_epi16(47, 15, 46, 14, 45, 13, 44, 12, 43, 11, 42, 10, 41, 9, 40, 8, 39, 7, 38,
                                           6, 37, 5, 36, 4, 35, 3, 34, 2, 33, 1, 32, 0);
    int64_t HW = H * W, crs = C * R * S, NB = (HW + 15) / 16, KC = (crs + 31) / 32;
    int64_t words = cg_bf16_same_valid_words(H, W);
    // The bitset of row (r, s) read as 16-bit masks, one per block of 16 positions (little-endian).
    const __mmask16 *masks = (const __mmask16 *)valid;
    for (int64_t kp = 0; kp < KC * 16; kp++) {
        const uint16_t *plane[2] = {NULL, NULL};
        const __mmask16 *mask[2] = {NULL, NULL};
        for (int e = 0; e < 2; e++) { // rows 2 kp and 2 kp + 1: (c, r, s), or past the last (zeros)
            int64_t k = 2 * kp + e, rs = k % (R * S);
            if (k >= crs) continue;
            plane[e] = x + k / (R * S) * HW;
            plane[e] = lane_address(plane[e], (rs / S - pad) * W + (rs % S - pad)); // shifted by (r, s)
            mask[e] = masks + rs * words * 4;
        }
        uint16_t *dst = Bp + (kp / 16) * CG_BF16_BLOCK + (kp % 16) * 32;
        if (plane[1]) // the common case: two rows
            for (int64_t nb = 0; nb < NB; nb++) {
                __m256i v0 = _mm256_maskz_loadu_epi16(mask[0][nb], lane_address(plane[0], nb * 16));
                __m256i v1 = _mm256_maskz_loadu_epi16(mask[1][nb], lane_address(plane[1], nb * 16));
                __m512i both = _mm512_permutex2var_epi16(_mm512_castsi256_si512(v0), order, _mm512_castsi256_si512(v1));
                _mm512_storeu_si512(dst + nb * KC * CG_BF16_BLOCK, both);
            }
        else
            for (int64_t nb = 0; nb < NB; nb++) {
                __m256i v0 = plane[0] ? _mm256_maskz_loadu_epi16(mask[0][nb], lane_address(plane[0], nb * 16))
                                      : _mm256_setzero_si256();
                __m512i both = _mm512_permutex2var_epi16(_mm512_castsi256_si512(v0), order, _mm512_setzero_si512());
                _mm512_storeu_si512(dst + nb * KC * CG_BF16_BLOCK, both);
            }
    }
}

// The backward's A operand, packed: A (C*R*S, L) = the columns of `count` images side by side
// (L = count H W; x is the first image). A block row holds 32 positions, which may run from one
// image into the next: each such run (a segment) is one masked load into its lanes. The segments
// are the same for every row, and their masks depend on (r, s) only: cg_bf16_pack_a_same_plan
// works both out (in `work`, 5 (L / 32 + count + 1) + R S (L / 32 + count) 64-bit words), then
// cg_bf16_pack_a_same packs rows m0 .. m1 - 1, each a tight loop of masked loads, written
// block by block (row m of block (m/16, kc), Ap pointing at block row m0 / 16). The caller may
// pack the rows 16 at a time into a small buffer and multiply each block row at once, while it
// is in the L1 cache, rather than write the whole operand (460 KB for the tutorial's second
// convolution) out to the L2 cache and read it back.
// Where segment e of block kc starts (first[kc] .. first[kc + 1] - 1 are kc's), its offset from
// the image's plane, its position in the image and its first lane, and its lanes (runs).
typedef struct {
    int64_t *first, *offset, *at, *lane;
    uint64_t *runs;
    __mmask32 *masks; // (R S, segments)
} same_plan;

static same_plan plan_in(uint64_t *work, int64_t count, int64_t H, int64_t W) {
    // Segments at most: one per block row, one more per image that starts inside one.
    int64_t KC = (count * H * W + 31) / 32, most = KC + count;
    same_plan p;
    p.first = (int64_t *)work, p.offset = p.first + KC + 1, p.at = p.offset + most, p.lane = p.at + most;
    p.runs = (uint64_t *)(p.lane + most);
    p.masks = (__mmask32 *)(p.runs + most);
    return p;
}

VEC_TARGET void cg_bf16_pack_a_same_plan(uint64_t *work, int64_t count, const uint64_t *valid, int64_t C, int64_t H,
                                         int64_t W, int64_t R, int64_t S) {
    int64_t HW = H * W, L = count * HW, KC = (L + 31) / 32, words = cg_bf16_same_valid_words(H, W);
    same_plan p = plan_in(work, count, H, W);
    int64_t segments = 0;
    for (int64_t kc = 0; kc < KC; kc++) {
        p.first[kc] = segments;
        for (int64_t t = kc * 32, l0 = 0; l0 < 32 && t < L; segments++) {
            int64_t j = t / HW, l = t % HW, length = HW - l < 32 - l0 ? HW - l : 32 - l0;
            p.offset[segments] = j * C * HW + l - l0; // image j's position l lands in lane l0
            p.at[segments] = l, p.lane[segments] = l0;
            p.runs[segments] = length == 32 ? 0xffffffffu : (1u << length) - 1;
            t += length, l0 += length;
        }
    }
    p.first[KC] = segments;
    for (int64_t rs = 0; rs < R * S; rs++)
        for (int64_t e = 0; e < segments; e++)
            p.masks[rs * segments + e] =
                (__mmask32)((bits_at(valid + rs * words, p.at[e]) & p.runs[e]) << p.lane[e]);
}

VEC_TARGET void cg_bf16_pack_a_same(uint16_t *Ap, const uint16_t *x, const uint64_t *work, int64_t m0, int64_t m1,
                                         int64_t count, int64_t C, int64_t H, int64_t W, int64_t R, int64_t S,
                                         int64_t pad) {
    int64_t HW = H * W, crs = C * R * S, KC = (count * HW + 31) / 32;
    same_plan p = plan_in((uint64_t *)work, count, H, W);
    int64_t segments = p.first[KC];
    for (int64_t m = m0; m < m1; m++) {
        uint16_t *row = Ap + (m / 16 - m0 / 16) * KC * CG_BF16_BLOCK + m % 16 * 32;
        if (m >= crs) { // rows of padding
            for (int64_t kc = 0; kc < KC; kc++) _mm512_storeu_si512(row + kc * CG_BF16_BLOCK, _mm512_setzero_si512());
            continue;
        }
        int64_t c = m / (R * S), rs = m % (R * S);
        const uint16_t *plane = lane_address(x + c * HW, (rs / S - pad) * W + (rs % S - pad)); // shifted by (r, s)
        const __mmask32 *mask = p.masks + rs * segments;
        for (int64_t kc = 0; kc < KC; kc++) {
            __m512i v = _mm512_setzero_si512();
            for (int64_t e = p.first[kc]; e < p.first[kc + 1]; e++)
                v = _mm512_mask_loadu_epi16(v, mask[e], lane_address(plane, p.offset[e]));
            _mm512_storeu_si512(row + kc * CG_BF16_BLOCK, v);
        }
    }
}

// col2im (conv.c's col2im_image: dx += the columns folded back onto the image) for "same"
// convolutions with stride 1, 16 positions of a plane at a time: the plane's 16 sums are loaded
// once, the R S rows' values added in (c, r, s) order, and stored once, where col2im_image goes
// over the plane once per row (nine loads and stores of each sum for a 3 x 3 kernel). Row
// (r, s) adds its value at i to position i + shift for i in [a, b) (same_shift), after zeroing
// its columns that wrap around (zero_columns): here the add's lanes are those of [a, b) and
// the load's those of the bitset `valid` (the same range less the wrapped columns), so the
// wrapped ones add 0.0, as there. The same additions in the same order: the same bits.
// The masks depend on (r, s) and the block of 16 positions only: cg_bf16_col2im_masks works them out
// once per call of the backward, masks (R S, ceil(H W / 16)) pairs (add, load), and each row's
// shift in shifts (R S).
VEC_TARGET void cg_bf16_col2im_masks(uint16_t *masks, int64_t *shifts, const uint64_t *valid, int64_t H, int64_t W,
                                    int64_t R, int64_t S, int64_t pad) {
    int64_t HW = H * W, NB = (HW + 15) / 16, words = cg_bf16_same_valid_words(H, W);
    for (int64_t rs = 0; rs < R * S; rs++) {
        int64_t shift = (rs / S - pad) * W + (rs % S - pad), a = shift < 0 ? -shift : 0;
        int64_t b = shift > 0 ? HW - shift : HW;
        b = b > a ? b : a;
        shifts[rs] = shift;
        const uint64_t *bits = valid + rs * words;
        for (int64_t nb = 0; nb < NB; nb++) {
            int64_t o0 = nb * 16, l = o0 - shift; // lane k: position o0 + k, reading row position l + k
            uint32_t add = 0;
            for (int k = 0; k < 16; k++) add |= (uint32_t)(l + k >= a && l + k < b) << k;
            // The bitset's bits l .. l + 15 (none below position 0 or from H W on, where the
            // bitset's words end).
            uint32_t load = l >= HW || -l >= 16 ? 0 : l >= 0 ? bits_at(bits, l) : bits_at(bits, 0) << -l;
            masks[(rs * NB + nb) * 2] = (uint16_t)add;
            masks[(rs * NB + nb) * 2 + 1] = (uint16_t)(load & add);
        }
    }
}

// dx is the image's bf16 gradient: each sum starts from its old value widened and is rounded
// to bf16 once, after the last row (conv_backward's dxf, widen_array and round_array, in
// registers).
VEC_TARGET void cg_bf16_col2im_same(uint16_t *dx, const float *col, int64_t ld, const uint16_t *masks,
                                   const int64_t *shifts, int64_t C, int64_t H, int64_t W, int64_t R, int64_t S) {
    int64_t HW = H * W, NB = (HW + 15) / 16, RS = R * S;
    for (int64_t c = 0; c < C; c++) {
        uint16_t *plane = dx + c * HW;
        const float *rows = col + c * RS * ld;
        for (int64_t nb = 0; nb < NB; nb++) {
            int64_t o0 = nb * 16, n = HW - o0 < 16 ? HW - o0 : 16;
            __mmask16 inside = (__mmask16)((1u << n) - 1);
            __m512 acc = widen16_avx512(_mm256_maskz_loadu_epi16(inside, plane + o0));
            for (int64_t rs = 0; rs < RS; rs++) {
                const uint16_t *m = masks + (rs * NB + nb) * 2;
                const float *row = rows + rs * ld;
                // Lanes outside the load's mask are not read (their addresses may lie outside the row).
                __m512 v = _mm512_maskz_loadu_ps((__mmask16)m[1], element_address(row, o0 - shifts[rs], sizeof *row));
                acc = _mm512_mask_add_ps(acc, (__mmask16)m[0], acc, v);
            }
            _mm256_mask_storeu_epi16(plane + o0, inside, _mm512_cvtepi32_epi16(round16_avx512(acc)));
        }
    }
}

// cg_bf16_pack_a_same's `work`, in 64-bit words.
int64_t cg_bf16_pack_a_same_work(int64_t count, int64_t H, int64_t W, int64_t R, int64_t S) {
    int64_t KC = (count * H * W + 31) / 32, most = KC + count;
    return KC + 1 + 4 * most + (R * S * most + 1) / 2;
}
#endif
