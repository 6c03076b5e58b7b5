// jpeg_check.h: the check image_decode.c runs on a JPEG before stb_image sees it, so that a
// crafted file (a progressive JPEG without Huffman tables, a stray FF 00, a scan cut short) is
// refused in one line instead of reading tables stb_image never filled or shifting by a negative
// count. ITU-T T.81 (JPEG) is the source of every rule.
#ifndef CG_JPEG_CHECK_H
#define CG_JPEG_CHECK_H

#include <stddef.h>
#include <stdint.h>

// d[0..n) a JPEG (SOI first). NULL when its segments and scan data are sound, else the reason, with
// the byte offset where it was found in *at. The scans of a frame wider or taller than max_side
// pixels are not read (the caller refuses such an image by its size).
const char *jpeg_bad_segment(const uint8_t *d, size_t n, int max_side, size_t *at);

#endif
