// im2col.h: the f32 convolutions' columns and their adjoint (kernels/cpu/im2col.c), private to
// kernels/cpu.
#ifndef CG_KERNELS_CPU_IM2COL_H
#define CG_KERNELS_CPU_IM2COL_H

#include <stdbool.h>
#include <stdint.h>

// The columns of flat output positions i0 .. i1-1 of one image (position p * Q + q): col (C*R*S
// rows of i1 - i0, `ld` floats apart), row (c, r, s) and column i - i0 holding
// x[c][p*stride - pad + r][q*stride - pad + s], or 0 outside the image. A span may start and end
// inside an output row. im2col_rows takes output rows p0 .. p1-1, im2col_image all P. With
// AVX-512, "same" convolutions of stride 1 and convolutions of stride 2 with H = 2P, W = 2Q copy
// each row as a shift of one plane (stride 2: of one of x's four phases, split first), whole
// vectors at a time; the same values either way.
void im2col_span(float *col, int64_t ld, const float *x, int64_t C, int64_t H, int64_t W, int64_t R, int64_t S,
                 int64_t stride, int64_t pad, int64_t P, int64_t Q, int64_t i0, int64_t i1);
// Rows k0 .. k1-1 of those columns only, at col[(k - k0) * ld].
void im2col_span_rows(float *col, int64_t ld, const float *x, int64_t C, int64_t H, int64_t W, int64_t R, int64_t S,
                      int64_t stride, int64_t pad, int64_t P, int64_t Q, int64_t i0, int64_t i1, int64_t k0,
                      int64_t k1);
void im2col_rows(float *col, int64_t ld, const float *x, int64_t C, int64_t H, int64_t W, int64_t R, int64_t S,
                 int64_t stride, int64_t pad, int64_t P, int64_t Q, int64_t p0, int64_t p1);
void im2col_image(float *col, int64_t ld, const float *x, int64_t C, int64_t H, int64_t W, int64_t R, int64_t S,
                  int64_t stride, int64_t pad, int64_t P, int64_t Q);
// The adjoint, dx += the columns of output rows p0 .. p1-1 folded back (col is scratch: its
// wrapped-around columns are zeroed). Each dx element receives its terms in (c, r, s) order; blocks
// of rows taken from the last one up give the order of the whole image.
void col2im_rows(float *dx, float *col, int64_t ld, int64_t C, int64_t H, int64_t W, int64_t R, int64_t S,
                 int64_t stride, int64_t pad, int64_t P, int64_t Q, int64_t p0, int64_t p1);
// The whole image's; write: dx written, not added to (a first gradient, core/tape.h: its old values
// never read), the same bits as adding to zeros.
void col2im_image(float *dx, float *col, int64_t ld, int64_t C, int64_t H, int64_t W, int64_t R, int64_t S,
                  int64_t stride, int64_t pad, int64_t P, int64_t Q, bool write);
#endif
