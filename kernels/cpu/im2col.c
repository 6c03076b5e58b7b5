// im2col.c: a convolution's columns (im2col) and their adjoint (col2im) for the f32 CPU kernels.
// The convolution drivers are in conv.c; the bf16 ones (bf16_ops.c) take col2im through
// conv_col2im_image_cpu. The transpositions of dy that the products read are in transpose.c.
#include "kernels/cpu/im2col.h"

#include "kernels/cpu/bf16_gemm.h"
#include "kernels/cpu/cpu.h"
#include "kernels/cpu/threads.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#include <immintrin.h>
#endif

// The output columns q whose input column q*stride - pad + s lies inside 0 .. W-1: [*q0, *q1).
// Inside that range the loops below run without a test per element (and vectorise).
static void valid_columns(int64_t s, int64_t stride, int64_t pad, int64_t W, int64_t Q, int64_t *q0, int64_t *q1) {
    int64_t lo = pad - s > 0 ? (pad - s + stride - 1) / stride : 0; // first q with w >= 0
    int64_t hi = W - 1 + pad - s >= 0 ? (W - 1 + pad - s) / stride + 1 : 0; // first q with w >= W
    *q0 = lo < Q ? lo : Q;
    *q1 = hi < Q ? hi : Q;
    if (*q1 < *q0) *q1 = *q0;
}

// "Same" convolutions with stride 1 (P == H, Q == W: a 3 x 3 kernel with padding 1, the
// tutorial's) have a shortcut. Row (c, r, s) of the columns, read as one flat array over (p, q),
// is plane c of the image shifted by (r - pad) * W + (s - pad) floats, except in the columns q
// where q - pad + s falls outside the image, which are zero (the flat shift wraps them around
// to the neighbouring row). So each row is one long copy and a few zeros, instead of P short
// copies of Q floats, whose loop overhead costs more than the copying.
static bool same_stride1(int64_t H, int64_t W, int64_t stride, int64_t P, int64_t Q) {
    return stride == 1 && P == H && Q == W;
}

// The flat shift of row (r, s) and the range [*a, *b) of flat indices whose source lies in the plane.
static int64_t same_shift(int64_t r, int64_t s, int64_t pad, int64_t H, int64_t W, int64_t *a, int64_t *b) {
    int64_t shift = (r - pad) * W + (s - pad);
    *a = shift < 0 ? -shift : 0;
    *b = shift > 0 ? H * W - shift : H * W;
    if (*b < *a) *b = *a;
    return shift;
}

// Zero the entries of a row of columns (flat positions i0 .. i1-1 of a P x Q plane, at row[i - i0])
// whose column q is < q0 or >= q1. Over the whole plane rows of the span, column by column, a
// strided loop (row by row, the compiler would call memset for each one- or two-float run, and a
// loop per row costs more than the stores on 7 x 7 to 14 x 14 planes: the tutorial's second
// convolution ran 20 % slower); the rows the span cuts at either end, entry by entry.
static void zero_part_row(float *row, int64_t i0, int64_t i1, int64_t p, int64_t Q, int64_t q0, int64_t q1) {
    int64_t qa = i0 - p * Q > 0 ? i0 - p * Q : 0, qb = i1 - p * Q < Q ? i1 - p * Q : Q, at = p * Q - i0;
    for (int64_t q = qa; q < q0 && q < qb; q++) row[at + q] = 0.0f;
    for (int64_t q = q1 > qa ? q1 : qa; q < qb; q++) row[at + q] = 0.0f;
}

static void zero_columns(float *row, int64_t i0, int64_t i1, int64_t Q, int64_t q0, int64_t q1) {
    if (q0 == 0 && q1 == Q) return;
    int64_t p0 = (i0 + Q - 1) / Q, p1 = i1 / Q; // the whole rows p0 .. p1-1
    if (p1 <= p0) { // no whole row: the span lies in one row or across two
        for (int64_t p = i0 / Q; p * Q < i1; p++) zero_part_row(row, i0, i1, p, Q, q0, q1);
        return;
    }
    float *whole = row + (p0 * Q - i0);
    for (int64_t q = 0; q < q0; q++)
        for (int64_t p = 0; p < p1 - p0; p++) whole[p * Q + q] = 0.0f;
    for (int64_t q = q1; q < Q; q++)
        for (int64_t p = 0; p < p1 - p0; p++) whole[p * Q + q] = 0.0f;
    if (i0 < p0 * Q) zero_part_row(row, i0, i1, p0 - 1, Q, q0, q1);
    if (p1 * Q < i1) zero_part_row(row, i0, i1, p1, Q, q0, q1);
}

// out[q] = in[q * stride] for q < n. Stride 2 (ResNet-18's first layer) in AVX-512: 32 floats
// loaded, their 16 even ones picked by one permutation; masked loads at the end read nothing
// past in[2 (n - 1)]. (The compiler's loop moved two floats at a time: a quarter of that
// layer's time went to its columns.)
static void copy_strided(float *out, const float *in, int64_t n, int64_t stride) {
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
    if (stride == 2) {
        const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        int64_t q = 0;
        for (; q + 16 <= n; q += 16) {
            int64_t left = 2 * (n - q) - 1; // floats of in that may be read from in + 2 q
            __m512 lo = _mm512_loadu_ps(in + 2 * q);
            __m512 hi = left >= 32 ? _mm512_loadu_ps(in + 2 * q + 16)
                                   : _mm512_maskz_loadu_ps((__mmask16)((1u << (left - 16)) - 1), in + 2 * q + 16);
            _mm512_storeu_ps(out + q, _mm512_permutex2var_ps(lo, even, hi));
        }
        for (; q < n; q++) out[q] = in[2 * q];
        return;
    }
#endif
    for (int64_t q = 0; q < n; q++) out[q] = in[q * stride];
}

// Stride 2 with H = 2P and W = 2Q (a 3 x 3 kernel with padding 1, a 1 x 1 one without: the
// downsampling convolutions of ResNet-18) has a shortcut too. Plane c of x is four planes of P x Q,
// its phases: phase (a, b) holds x[c][2i + a][2j + b]. Input row 2p - pad + r is row p + dr of
// phase a, with a = (r - pad) mod 2 and dr = (r - pad - a) / 2 (and the same for columns), so row
// (c, r, s) of the columns is phase (a, b) of plane c shifted by dr Q + ds floats: a stride-1
// shift, which span_shifted and col2im_shifted below copy with whole vectors where the general
// path copied every other float, an output row at a time (Q = 4 to 16 floats on CIFAR's planes:
// 15 to 25 % of those layers' forward and weight gradient).
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
static bool phases_stride2(int64_t H, int64_t W, int64_t stride, int64_t P, int64_t Q) {
    return stride == 2 && H == 2 * P && W == 2 * Q;
}

// The shortcut's rows (r, s) at most this many (a 7 x 7 kernel), for the arrays of span_shifted
// and col2im_shifted.
#define SAME_RS_MAX 49

// The address of element i of a row, where i may lie outside it: a masked load reads only the
// lanes of its mask, which do lie inside (an integer: C allows no pointer outside its array).
static inline const float *float_at(const float *row, int64_t i) {
    return (const float *)((uintptr_t)row + (uintptr_t)(i * (int64_t)sizeof(float)));
}

// The lanes lo .. hi-1 of 16 (none when hi <= lo).
static inline __mmask16 lanes(int64_t lo, int64_t hi) {
    lo = lo > 0 ? lo : 0, hi = hi < 16 ? hi : 16;
    return hi <= lo ? 0 : (__mmask16)(((1u << hi) - 1) & ~((1u << lo) - 1));
}

// Row (r, s) of the columns as a shift of one plane of P x Q (the shortcuts above): the plane
// (0 for a stride-1 "same" convolution, the phase 2a + b for stride 2), the flat shift, and the
// output columns [q0, q1) whose source column lies inside the plane (outside them the flat shift
// wraps around to the neighbouring row).
typedef struct {
    int64_t phase, shift, q0, q1;
} shifted_row;

static void shifted_rows(shifted_row *rows, int64_t R, int64_t S, int64_t stride, int64_t pad, int64_t W, int64_t Q) {
    for (int64_t r = 0; r < R; r++)
        for (int64_t s = 0; s < S; s++) {
            shifted_row *row = &rows[r * S + s];
            if (stride == 1) { // "same": the plane of x itself (as same_shift)
                row->phase = 0;
                row->shift = (r - pad) * W + (s - pad);
                valid_columns(s, 1, pad, W, Q, &row->q0, &row->q1);
                continue;
            }
            int64_t a = (r - pad) & 1, b = (s - pad) & 1, dr = (r - pad - a) / 2, ds = (s - pad - b) / 2;
            row->phase = 2 * a + b;
            row->shift = dr * Q + ds;
            row->q0 = -ds > 0 ? -ds : 0, row->q1 = Q - ds < Q ? Q - ds : Q;
        }
}

// Rows i0 .. i1-1 of the phases of a plane of x (H x W, both even) that `wanted` names (bit
// 2a + b) into `out` (phase (a, b) at out + (2a + b) P Q, P = H / 2, Q = W / 2): each input row's
// even and odd floats picked by one permutation of two registers, 16 of each at a time. A row
// whose two phases are both unwanted is skipped; the other phase of a wanted row's a is written
// too (col2im_shifted writes it back unchanged).
static void split_phases(float *out, const float *plane, int64_t H, int64_t W, int64_t i0, int64_t i1,
                         unsigned wanted) {
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    int64_t Q = W / 2, PQ = H / 2 * Q;
    for (int64_t h = 2 * i0; h < 2 * i1; h++) {
        int64_t a = h & 1;
        if (!(wanted >> (2 * a) & 3)) continue;
        const float *row = plane + h * W;
        float *e = out + 2 * a * PQ + (h >> 1) * Q, *o = e + PQ;
        for (int64_t j = 0; j < Q; j += 16) {
            __m512 lo = _mm512_maskz_loadu_ps(lanes(0, 2 * (Q - j)), row + 2 * j);
            __m512 hi = _mm512_maskz_loadu_ps(lanes(0, 2 * (Q - j) - 16), float_at(row, 2 * j + 16));
            __mmask16 n = lanes(0, Q - j);
            _mm512_mask_storeu_ps(e + j, n, _mm512_permutex2var_ps(lo, even, hi));
            _mm512_mask_storeu_ps(o + j, n, _mm512_permutex2var_ps(lo, odd, hi));
        }
    }
}

// The inverse: the rows of `plane` of phase rows i0 .. i1-1 whose phases `wanted` names, from
// `in` (split_phases' layout), both phases of a row interleaved by two permutations.
static void merge_phases(float *plane, const float *in, int64_t H, int64_t W, int64_t i0, int64_t i1,
                         unsigned wanted) {
    const __m512i low = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i high = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    int64_t Q = W / 2, PQ = H / 2 * Q;
    for (int64_t h = 2 * i0; h < 2 * i1; h++) {
        int64_t a = h & 1;
        if (!(wanted >> (2 * a) & 3)) continue;
        float *row = plane + h * W;
        const float *e = in + 2 * a * PQ + (h >> 1) * Q, *o = e + PQ;
        for (int64_t j = 0; j < Q; j += 16) {
            __mmask16 n = lanes(0, Q - j);
            __m512 ev = _mm512_maskz_loadu_ps(n, e + j), od = _mm512_maskz_loadu_ps(n, o + j);
            _mm512_mask_storeu_ps(row + 2 * j, lanes(0, 2 * (Q - j)), _mm512_permutex2var_ps(ev, low, od));
            if (Q - j > 8)
                _mm512_mask_storeu_ps(row + 2 * j + 16, lanes(0, 2 * (Q - j) - 16),
                                      _mm512_permutex2var_ps(ev, high, od));
        }
    }
}

// The channels ahead of the one being copied whose part of x span_shifted asks for (prefetch).
#define PREFETCH_CHANNELS 2

// The shortcuts' rows k0 .. k1-1 of the columns (row k = c R S + rs at col[(k - k0) ld]) in
// AVX-512, 16 positions at a time: one load of the shifted plane, masked to the lanes whose
// source lies in the plane and in a valid column (the others read as 0.0), and one store. The
// masks depend on (r, s) and the vector, not on the channel: worked out once per call (in the
// loop, the mask's arithmetic took more instructions than the copy). For stride 2 each channel's
// phases are split first into a buffer of the thread (H W floats), only those its rows read.
// The same values.
// The weight gradient's spans (256 positions; ResNet-18's layer1: 576 rows of 1 KB) took 11 % of
// that layer's backward, most of it waiting for x: a span reads about 1.5 KB of each of 64
// planes, runs too short for the hardware's prefetcher to see coming. Each channel's part is
// asked for PREFETCH_CHANNELS channels ahead (a few dozen lines while a channel's nine rows are
// written): layer1's dW 12.6 -> 11.6 ms (medians of 12 alternated runs, one core). The masked
// rows alone, without the prefetch, gained nothing measurable (the calls were not the cost).
static void span_shifted(float *col, int64_t ld, const float *x, int64_t H, int64_t W, int64_t R, int64_t S,
                         int64_t stride, int64_t pad, int64_t P, int64_t Q, int64_t i0, int64_t i1, int64_t k0,
                         int64_t k1) {
    int64_t n = i1 - i0, vectors = (n + 15) / 16, HW = H * W, PQ = P * Q, RS = R * S;
    shifted_row rows[SAME_RS_MAX];
    shifted_rows(rows, R, S, stride, pad, W, Q);
    // per row (r, s) and vector: the lanes to load, worked out once per call, the same for every channel
    static _Thread_local cg_thread_buffer mask_buffer, phase_buffer;
    __mmask16 *masks = cg_thread_buffer_get(&mask_buffer, RS * vectors * (int64_t)sizeof(__mmask16));
    int64_t first = PQ, last = 0; // the part of a plane that the span reads (of x's, or of each phase)
    for (int64_t rs = 0; rs < RS; rs++) {
        int64_t shift = rows[rs].shift, a = shift < 0 ? -shift : 0, b = shift > 0 ? PQ - shift : PQ;
        a -= i0, b = (b < i1 ? b : i1) - i0; // the source's range [a, b) in the plane, relative to the span
        for (int64_t v = 0; v < vectors; v++) {
            unsigned m = 0; // the lanes in valid columns
            for (int64_t l = 0, q = (i0 + 16 * v) % Q; l < 16; l++, q = q + 1 < Q ? q + 1 : 0)
                m |= (unsigned)(q >= rows[rs].q0 && q < rows[rs].q1) << l;
            masks[rs * vectors + v] = lanes(a - 16 * v, b - 16 * v) & (__mmask16)m;
        }
        first = i0 + shift < first ? i0 + shift : first;
        last = i1 + shift > last ? i1 + shift : last;
    }
    first = first > 0 ? first : 0, last = last < PQ ? last : PQ;
    bool phases = stride == 2;
    float *split = phases ? cg_thread_floats_aligned(&phase_buffer, HW) : NULL;
    __mmask16 tail = lanes(0, n - (vectors - 1) * 16); // the last vector's lanes inside the span
    for (int64_t c = k0 / RS; c * RS < k1; c++) { // channel by channel: its part of the plane is read R S times from L1
        int64_t rs0 = k0 - c * RS > 0 ? k0 - c * RS : 0, rs1 = k1 - c * RS < RS ? k1 - c * RS : RS;
        const float *src = x + c * HW; // the plane the rows shift
        if (phases) {
            unsigned wanted = 0;
            for (int64_t rs = rs0; rs < rs1; rs++) wanted |= 1u << rows[rs].phase;
            split_phases(split, src, H, W, first / Q, (last + Q - 1) / Q, wanted);
            src = split;
            if ((c + PREFETCH_CHANNELS) * RS < k1) // the input rows of those phase rows
                for (int64_t i = first / Q * 2 * W; i < (last + Q - 1) / Q * 2 * W; i += 16)
                    __builtin_prefetch(x + (c + PREFETCH_CHANNELS) * HW + i);
        } else if ((c + PREFETCH_CHANNELS) * RS < k1) { // one line (16 floats) at a time
            for (int64_t i = first; i < last; i += 16) __builtin_prefetch(x + (c + PREFETCH_CHANNELS) * HW + i);
        }
        for (int64_t rs = rs0; rs < rs1; rs++) {
            float *row = col + (c * RS + rs - k0) * ld;
            const float *from = src + rows[rs].phase * PQ + i0 + rows[rs].shift; // position i0 + o reads from[o]
            const __mmask16 *m = masks + rs * vectors;
            for (int64_t v = 0; v < vectors - 1; v++)
                _mm512_storeu_ps(row + 16 * v, _mm512_maskz_loadu_ps(m[v], float_at(from, 16 * v)));
            // the last vector: no store past the span (col may hold other columns there)
            int64_t o = 16 * (vectors - 1);
            _mm512_mask_storeu_ps(row + o, tail, _mm512_maskz_loadu_ps(m[vectors - 1], float_at(from, o)));
        }
    }
}

// A 1 x 1 convolution of stride 2 without padding (ResNet-18's downsampling shortcut): row c of
// the columns is phase (0, 0) of plane c, each input row's even floats picked by one permutation
// of two registers and stored in the columns directly, where span_shifted split the even rows'
// two phases into a buffer and then copied one of them: CIFAR's layer2 shortcut (batch 32, one
// Zen 5 core, alternated) forward 0.75 -> 0.69 ms, weight gradient 0.78 -> 0.73 ms. The same values.
static void span_1x1_stride2(float *col, int64_t ld, const float *x, int64_t H, int64_t W, int64_t Q, int64_t i0,
                             int64_t i1, int64_t k0, int64_t k1) {
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    for (int64_t c = k0; c < k1; c++) {
        float *row = col + (c - k0) * ld - i0; // position i at row[i]
        if (c + PREFETCH_CHANNELS < k1) // the input rows of a channel further on (span_shifted says why)
            for (int64_t i = i0 / Q * 2 * W; i < (i1 + Q - 1) / Q * 2 * W; i += 16)
                __builtin_prefetch(x + (c + PREFETCH_CHANNELS) * H * W + i);
        for (int64_t p = i0 / Q; p * Q < i1; p++) {
            const float *in = x + (c * H + 2 * p) * W;
            int64_t qa = i0 - p * Q > 0 ? i0 - p * Q : 0, qb = i1 - p * Q < Q ? i1 - p * Q : Q;
            for (int64_t q = qa; q < qb; q += 16) {
                int64_t n = qb - q < 16 ? qb - q : 16;
                __m512 lo = _mm512_maskz_loadu_ps(lanes(0, 2 * n), in + 2 * q);
                __m512 hi = _mm512_maskz_loadu_ps(lanes(0, 2 * n - 16), float_at(in, 2 * q + 16));
                _mm512_mask_storeu_ps(row + p * Q + q, lanes(0, n), _mm512_permutex2var_ps(lo, even, hi));
            }
        }
    }
}
#endif

// Row (c, r, s) of im2col_span's columns (below), at `row`: the body of im2col_span and im2col_span_rows, inlined
// into each (so that im2col_span keeps its loops over c, r, s, and the weight gradient's columns
// their speed).
static inline __attribute__((always_inline)) void span_row(float *row, bool same, const float *x, int64_t c, int64_t r,
                                                           int64_t s, int64_t H, int64_t W, int64_t stride,
                                                           int64_t pad, int64_t Q, int64_t i0, int64_t i1) {
    int64_t q0, q1;
    valid_columns(s, stride, pad, W, Q, &q0, &q1);
    if (same) {
        int64_t a, b, shift = same_shift(r, s, pad, H, W, &a, &b);
        a = a > i0 ? a : i0; // the part of [a, b) inside the span (empty: a = b, both
        a = a < i1 ? a : i1; // inside it, since a span may end before the plane's
        b = b < i1 ? b : i1; // first valid position)
        if (b < a) b = a;
        const float *plane = x + c * H * W;
        // memcpy and memset: the C library's copies use whole AVX-512 registers,
        // where the compiler's loop used half ones (its tuning for this CPU)
        memset(row, 0, (size_t)(a - i0) * sizeof(float));
        memcpy(row + a - i0, plane + a + shift, (size_t)(b - a) * sizeof(float));
        memset(row + b - i0, 0, (size_t)(i1 - b) * sizeof(float));
        zero_columns(row, i0, i1, Q, q0, q1); // the wrapped-around columns
        return;
    }
    for (int64_t p = i0 / Q; p * Q < i1; p++) {
        // columns qa .. qb-1 of output row p are in the span, at row[at + q]
        int64_t qa = i0 - p * Q > 0 ? i0 - p * Q : 0, qb = i1 - p * Q < Q ? i1 - p * Q : Q;
        int64_t at = p * Q - i0, h = p * stride - pad + r;
        if (h < 0 || h >= H) {
            for (int64_t q = qa; q < qb; q++) row[at + q] = 0.0f;
            continue;
        }
        const float *in = x + (c * H + h) * W - pad + s; // in[q * stride] is x[c][h][w]
        int64_t lo = q0 > qa ? q0 : qa, hi = q1 < qb ? q1 : qb;
        if (hi < lo) hi = lo;
        for (int64_t q = qa; q < lo; q++) row[at + q] = 0.0f;
        copy_strided(row + at + lo, in + lo * stride, hi - lo, stride);
        for (int64_t q = hi; q < qb; q++) row[at + q] = 0.0f;
    }
}

// The columns of flat output positions i0 .. i1-1 of one image (position p * Q + q): col (C*R*S
// rows of i1 - i0, `ld` floats apart), row (c, r, s) and column i - i0 holding
// x[c][p*stride - pad + r][q*stride - pad + s], or 0 outside the image. A span may start and end
// inside an output row: the weight gradient takes its positions in blocks of the GEMM's block of
// K (conv2d_backward_cpu). im2col_rows and im2col_image below take whole rows.
void im2col_span(float *col, int64_t ld, const float *x, int64_t C, int64_t H, int64_t W, int64_t R,
                 int64_t S, int64_t stride, int64_t pad, int64_t P, int64_t Q, int64_t i0, int64_t i1) {
    im2col_span_rows(col, ld, x, C, H, W, R, S, stride, pad, P, Q, i0, i1, 0, C * R * S);
}

// Rows k0 .. k1-1 of those columns (row k = (c * R + r) * S + s at col[(k - k0) * ld]): the
// forward's small planes make them one block of the GEMM's K at a time (conv_small.c).
void im2col_span_rows(float *col, int64_t ld, const float *x, int64_t C, int64_t H, int64_t W, int64_t R,
                      int64_t S, int64_t stride, int64_t pad, int64_t P, int64_t Q, int64_t i0, int64_t i1,
                      int64_t k0, int64_t k1) {
    bool same = same_stride1(H, W, stride, P, Q);
    (void)C; // (the rows give the channels)
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
    if (R == 1 && S == 1 && pad == 0 && phases_stride2(H, W, stride, P, Q) && i1 > i0 && k1 > k0) {
        span_1x1_stride2(col, ld, x, H, W, Q, i0, i1, k0, k1);
        return;
    }
    if ((same || phases_stride2(H, W, stride, P, Q)) && R * S <= SAME_RS_MAX && i1 > i0 && k1 > k0) {
        span_shifted(col, ld, x, H, W, R, S, stride, pad, P, Q, i0, i1, k0, k1);
        return;
    }
#endif
    for (int64_t k = k0; k < k1; k++)
        span_row(col + (k - k0) * ld, same, x, k / (R * S), k / S % R, k % S, H, W, stride, pad, Q, i0, i1);
}

// The columns of output rows p0 .. p1-1 of one image.
void im2col_rows(float *col, int64_t ld, const float *x, int64_t C, int64_t H, int64_t W, int64_t R,
                 int64_t S, int64_t stride, int64_t pad, int64_t P, int64_t Q, int64_t p0, int64_t p1) {
    im2col_span(col, ld, x, C, H, W, R, S, stride, pad, P, Q, p0 * Q, p1 * Q);
}

void im2col_image(float *col, int64_t ld, const float *x, int64_t C, int64_t H, int64_t W, int64_t R,
                  int64_t S, int64_t stride, int64_t pad, int64_t P, int64_t Q) {
    im2col_rows(col, ld, x, C, H, W, R, S, stride, pad, P, Q, 0, P);
}

// The adjoint: dx[c][h][w] += every column entry that was read from it, for the columns of output
// rows p0 .. p1-1 (col as im2col_rows wrote them). The shortcut zeroes the wrapped-around columns
// of col first (it is scratch), then adds each row as one flat range; every dx element receives
// the same terms in the same order as on the general path: row (r, s) after row (r', s') when
// (r, s) comes later. A block of rows after the block below it gives the same order over the
// whole image (the terms from rows further down, smaller r, come first): backward_dx_rows.
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#define UNROLL 4 // vectors summed side by side (col2im_shifted)

// The shortcuts' col2im (the "same" convolutions of stride 1 and the phases of stride 2, as
// span_shifted), 16 positions of a plane of dx (of a phase, for stride 2) at a time: their sums
// are loaded once, the values of the rows (r, s) that add to that plane added in (r, s) order in
// a register, and stored once. Row by row (the loop in col2im_rows), every sum was loaded and
// stored once per row (nine times for a 3 x 3 kernel), and each row's loads read what the row
// before had just stored, shifted by a few floats (loads that straddle two recent stores wait
// for them). That took 17 % of ResNet-18 layer1's dx (1.7 floats a cycle); here, 12 %: its dx
// alone went from 13.3-13.9 to 12.1-12.6 ms, its whole backward about 2 % faster (most of what is
// left is dx coming from memory, which prefetching did not hide). For stride 2 each channel's
// phases are split into a buffer of the thread first and merged back after (the rows of dx the
// block of rows adds to); the general loop there added every other float of a row of Q (4 to 16
// on CIFAR's planes) and took 9 to 25 % of the downsampling layers' dx. Row (r, s) still adds its
// value at i to position i + shift for i in [a, b) (the wrapped columns zeroed first, adding
// 0.0): the masks are those lanes, worked out once per call (they depend on the row and the
// vector, not on the channel). The same additions in the same order: the same bits.
// UNROLL vectors are summed side by side: one vector's nine additions form a chain of dependent
// ones (4 cycles each), and one at a time the loop ran no faster than row by row. (Prefetching
// the next channel's part of dx, software or not, made no measurable difference.)
static void col2im_shifted(float *dx, float *col, int64_t ld, int64_t C, int64_t H, int64_t W, int64_t R, int64_t S,
                           int64_t stride, int64_t pad, int64_t P, int64_t Q, int64_t first, int64_t count, bool write) {
    int64_t HW = H * W, PQ = P * Q, RS = R * S, lo[SAME_RS_MAX], hi[SAME_RS_MAX], at[SAME_RS_MAX];
    shifted_row rows[SAME_RS_MAX];
    shifted_rows(rows, R, S, stride, pad, W, Q);
    int64_t start = PQ, end = 0; // the positions of a plane that some row adds to: [start, end)
    unsigned wanted = 0;         // the phases some row adds to
    for (int64_t rs = 0; rs < RS; rs++) {
        int64_t shift = rows[rs].shift, a = shift < 0 ? -shift : 0, b = shift > 0 ? PQ - shift : PQ;
        a = a > first ? a : first; // the part of [a, b) inside the rows given
        b = b < first + count ? b : first + count;
        lo[rs] = a + shift, hi[rs] = (b > a ? b : a) + shift; // where the row adds, in the plane
        if (hi[rs] > lo[rs]) {
            start = lo[rs] < start ? lo[rs] : start;
            end = hi[rs] > end ? hi[rs] : end;
            wanted |= 1u << rows[rs].phase;
        }
        at[rs] = rs * ld - shift - first; // plane position o is row rs's element at[rs] + o (from rows)
    }
    if (end <= start) {
        if (write) memset(dx, 0, (size_t)(C * HW) * sizeof(float));
        return;
    }
    int64_t o0 = start / 16 * 16, vectors = (end - o0 + 15) / 16;
    static _Thread_local cg_thread_buffer mask_buffer, phase_buffer; // per vector: its RS rows' masks, then `inside`
    __mmask16 *masks = cg_thread_buffer_get(&mask_buffer, vectors * (RS + 1) * (int64_t)sizeof(__mmask16));
    for (int64_t v = 0; v < vectors; v++) {
        int64_t o = o0 + 16 * v;
        for (int64_t rs = 0; rs < RS; rs++) masks[v * (RS + 1) + rs] = lanes(lo[rs] - o, hi[rs] - o);
        masks[v * (RS + 1) + RS] = lanes(start - o, end - o);
    }
    bool phases = stride == 2;
    float *split = phases ? cg_thread_floats_aligned(&phase_buffer, HW) : NULL;
    for (int64_t c = 0; c < C; c++) {
        const float *rows_c = col + c * RS * ld;
        for (int64_t rs = 0; rs < RS; rs++)
            zero_columns(col + (c * RS + rs) * ld, first, first + count, Q, rows[rs].q0, rows[rs].q1);
        float *planes = dx + c * HW; // phase p's plane at planes + p PQ (stride 1: the one phase, dx's plane)
        if (write && phases) { // a first gradient: the sums from zero, every phase merged back (positions
                               // no row adds to, if a kernel left any, as zeros)
            memset(split, 0, (size_t)HW * sizeof(float));
            planes = split;
        } else if (write) { // the positions no row adds to
            memset(planes, 0, (size_t)start * sizeof(float));
            memset(planes + end, 0, (size_t)(PQ - end) * sizeof(float));
        } else if (phases) {
            split_phases(split, planes, H, W, start / Q, (end + Q - 1) / Q, wanted), planes = split;
        }
        for (int64_t phase = 0; phase < 4; phase++) {
            if (!(wanted >> phase & 1)) continue;
            float *plane = planes + phase * PQ;
            int64_t v = 0;
            for (; v + UNROLL <= vectors; v += UNROLL) { // UNROLL vectors side by side: independent chains
                __m512 acc[UNROLL];
                for (int u = 0; u < UNROLL; u++)
                    acc[u] = write ? _mm512_setzero_ps()
                                   : _mm512_maskz_loadu_ps(masks[(v + u) * (RS + 1) + RS], plane + o0 + 16 * (v + u));
                for (int64_t rs = 0; rs < RS; rs++) {
                    if (rows[rs].phase != phase) continue;
                    for (int u = 0; u < UNROLL; u++) {
                        __mmask16 m = masks[(v + u) * (RS + 1) + rs];
                        acc[u] = _mm512_mask_add_ps(acc[u], m, acc[u],
                                                    _mm512_maskz_loadu_ps(m, float_at(rows_c, at[rs] + o0 + 16 * (v + u))));
                    }
                }
                for (int u = 0; u < UNROLL; u++)
                    _mm512_mask_storeu_ps(plane + o0 + 16 * (v + u), masks[(v + u) * (RS + 1) + RS], acc[u]);
            }
            for (; v < vectors; v++) {
                int64_t o = o0 + 16 * v;
                const __mmask16 *m = masks + v * (RS + 1);
                __m512 acc = write ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(m[RS], plane + o);
                for (int64_t rs = 0; rs < RS; rs++)
                    if (rows[rs].phase == phase)
                        acc = _mm512_mask_add_ps(acc, m[rs], acc, _mm512_maskz_loadu_ps(m[rs], float_at(rows_c, at[rs] + o)));
                _mm512_mask_storeu_ps(plane + o, m[RS], acc);
            }
        }
        if (phases && write)
            merge_phases(dx + c * HW, split, H, W, 0, P, 15);
        else if (phases)
            merge_phases(dx + c * HW, split, H, W, start / Q, (end + Q - 1) / Q, wanted);
    }
}
#endif

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
// A 1 x 1 convolution of stride 2 without padding (the downsampling shortcut of ResNet-18, where
// conv_shortcut.c does not take it: planes whose output rows do not divide 16, as CIFAR's layer4
// and ImageNet's; the figures below are CIFAR's layer2 shortcut's, from before it moved there), rows
// p0 .. p1-1: dx[c][2p][2q] += col[c][p Q + q], each dx element at most one term. 16 values of
// col spread to the even lanes of two registers of dx's row (the odd lanes add nothing), in place:
// col2im_shifted's phases split the even rows and merged them back, 30 % slower than the general
// loop here (CIFAR's layer2 shortcut, batch 32). The same additions: the same bits. write (a first
// gradient): each even row stored whole, its odd lanes zeros, and each odd row zeros, dx never
// read. That layer's backward (dx, dW, db; one core, alternated) took 2.0 to 2.2 ms adding to dx,
// its loop waiting on each load of dx, and 1.8 ms writing it; and the adding way also needs the
// tape to zero dx first.
static void col2im_1x1_stride2(float *dx, const float *col, int64_t ld, int64_t C, int64_t H, int64_t W, int64_t Q,
                               int64_t p0, int64_t p1, bool write) {
    const __m512i first = _mm512_setr_epi32(0, 0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0);
    const __m512i second = _mm512_setr_epi32(8, 0, 9, 0, 10, 0, 11, 0, 12, 0, 13, 0, 14, 0, 15, 0);
    const __mmask16 even = 0x5555;
    const __m512 zero = _mm512_setzero_ps();
    for (int64_t c = 0; c < C; c++)
        for (int64_t p = p0; p < p1; p++) {
            float *row = dx + (c * H + 2 * p) * W;
            const float *in = col + c * ld + (p - p0) * Q;
            if (write) { // a first gradient: the even row whole (zeros in the odd lanes), the odd row zeros
                for (int64_t q = 0; q < Q; q += 16) {
                    __m512 v = _mm512_maskz_loadu_ps(lanes(0, Q - q), in + q);
                    // (0 + value, as adding to zeros: a -0.0 becomes +0.0)
                    _mm512_mask_storeu_ps(row + 2 * q, lanes(0, W - 2 * q),
                                          _mm512_add_ps(zero, _mm512_maskz_permutexvar_ps(even, first, v)));
                    if (W - 2 * q > 16)
                        _mm512_mask_storeu_ps(row + 2 * q + 16, lanes(0, W - 2 * q - 16),
                                              _mm512_add_ps(zero, _mm512_maskz_permutexvar_ps(even, second, v)));
                }
                if (2 * p + 1 < H) memset(row + W, 0, (size_t)W * sizeof(float));
                continue;
            }
            for (int64_t q = 0; q < Q; q += 16) {
                __m512 v = _mm512_maskz_loadu_ps(lanes(0, Q - q), in + q);
                __mmask16 lo = lanes(0, 2 * (Q - q)) & even, hi = lanes(0, 2 * (Q - q) - 16) & even;
                __m512 a = _mm512_maskz_loadu_ps(lo, row + 2 * q);
                _mm512_mask_storeu_ps(row + 2 * q, lo, _mm512_add_ps(a, _mm512_permutexvar_ps(first, v)));
                if (hi) {
                    __m512 b = _mm512_maskz_loadu_ps(hi, row + 2 * q + 16);
                    _mm512_mask_storeu_ps(row + 2 * q + 16, hi, _mm512_add_ps(b, _mm512_permutexvar_ps(second, v)));
                }
            }
        }
}
#endif

// write (whole images only: p0 = 0, p1 = P): dx is written, not added to, its old values never
// read (a first gradient: core/tape.h); the same bits as adding to zeros.
static void col2im_range(float *dx, float *col, int64_t ld, int64_t C, int64_t H, int64_t W, int64_t R, int64_t S,
                         int64_t stride, int64_t pad, int64_t P, int64_t Q, int64_t p0, int64_t p1, bool write) {
    bool same = same_stride1(H, W, stride, P, Q);
    int64_t first = p0 * Q, count = (p1 - p0) * Q; // the flat range of positions
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
    if (R == 1 && S == 1 && stride == 2 && pad == 0 && 2 * Q - 1 <= W && 2 * P - 1 <= H) {
        col2im_1x1_stride2(dx, col, ld, C, H, W, Q, p0, p1, write);
        return;
    }
    if ((same || phases_stride2(H, W, stride, P, Q)) && R * S <= SAME_RS_MAX) {
        col2im_shifted(dx, col, ld, C, H, W, R, S, stride, pad, P, Q, first, count, write);
        return;
    }
#endif
    if (write) memset(dx, 0, (size_t)(C * H * W) * sizeof(float)); // the general loop adds, to zeros
    for (int64_t c = 0; c < C; c++)
        for (int64_t r = 0; r < R; r++)
            for (int64_t s = 0; s < S; s++) {
                float *row = col + ((c * R + r) * S + s) * ld;
                int64_t q0, q1;
                valid_columns(s, stride, pad, W, Q, &q0, &q1);
                if (same) {
                    zero_columns(row, first, first + count, Q, q0, q1);
                    int64_t a, b, shift = same_shift(r, s, pad, H, W, &a, &b);
                    a = a > first ? a : first; // the part of [a, b) inside the rows given
                    b = b < first + count ? b : first + count;
                    float *plane = dx + c * H * W;
                    for (int64_t i = a; i < b; i++) plane[i + shift] += row[i - first];
                    continue;
                }
                for (int64_t p = p0; p < p1; p++) {
                    int64_t h = p * stride - pad + r;
                    if (h < 0 || h >= H) continue;
                    float *out = dx + (c * H + h) * W - pad + s;
                    const float *in = row + (p - p0) * Q;
                    for (int64_t q = q0; q < q1; q++) out[q * stride] += in[q];
                }
            }
}

void col2im_rows(float *dx, float *col, int64_t ld, int64_t C, int64_t H, int64_t W, int64_t R, int64_t S,
                 int64_t stride, int64_t pad, int64_t P, int64_t Q, int64_t p0, int64_t p1) {
    col2im_range(dx, col, ld, C, H, W, R, S, stride, pad, P, Q, p0, p1, false);
}

void col2im_image(float *dx, float *col, int64_t ld, int64_t C, int64_t H, int64_t W, int64_t R, int64_t S,
                  int64_t stride, int64_t pad, int64_t P, int64_t Q, bool write) {
    col2im_range(dx, col, ld, C, H, W, R, S, stride, pad, P, Q, 0, P, write);
}

// col2im_image for the bf16 convolutions on bf16 hardware (bf16_ops.c, declared in bf16_gemm.h).
void conv_col2im_image_cpu(float *dx, float *col, int64_t ld, int64_t C, int64_t H, int64_t W, int64_t R, int64_t S,
                           int64_t stride, int64_t pad, int64_t P, int64_t Q) {
    col2im_image(dx, col, ld, C, H, W, R, S, stride, pad, P, Q, false);
}
