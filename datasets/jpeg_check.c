// jpeg_check.c: a JPEG's structure and scan data checked before stb_image decodes it (jpeg_check.h):
// every segment's length, the tables each scan uses defined first, and the entropy-coded data
// decoded block by block (baseline and progressive, ITU-T T.81). Nothing is decoded to pixels here.
#include "datasets/jpeg_check.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

// ---- JPEG structure and baseline scan data ---------------------------------------------------------

// One Huffman table (ITU-T T.81, C and F.2.2.3): code counts per length, the values, and the
// decoding bounds derived from them, with a lookup table for the codes of 8 bits or fewer.
typedef struct {
    bool defined;
    uint8_t counts[17]; // counts[l]: codes of l bits, l = 1..16
    uint8_t values[256];
    int32_t mincode[17], maxcode[17], valptr[17]; // maxcode -1: no code of that length
    uint16_t fast[256]; // by the next 8 bits: length << 8 | value for a code of <= 8 bits, else 0
} jpeg_huffman;

// Derives the decoding bounds (T.81 figure F.15) and the fast table; false when the counts
// overflow the code space.
static bool huffman_build(jpeg_huffman *h) {
    int32_t code = 0, k = 0;
    memset(h->fast, 0, sizeof h->fast);
    for (int l = 1; l <= 16; l++) {
        h->valptr[l] = k;
        h->mincode[l] = code;
        if (code + h->counts[l] > (1 << l)) return false;
        for (int i = 0; i < h->counts[l] && l <= 8; i++)
            for (int fill = 0; fill < 1 << (8 - l); fill++)
                h->fast[(code + i) << (8 - l) | fill] = (uint16_t)(l << 8 | h->values[k + i]);
        code += h->counts[l];
        k += h->counts[l];
        h->maxcode[l] = h->counts[l] ? code - 1 : -1;
        code <<= 1;
    }
    return true;
}

// Reads the entropy-coded bytes of a scan: FF 00 is a data byte FF (T.81, F.1.2.3); any other
// FF xx is a marker, where the data stops. Up to 64 bits are held in acc, the next bit highest.
typedef struct {
    const uint8_t *d;
    size_t n, pos;
    uint64_t acc;
    int count;      // bits in acc
    bool at_marker; // the data has stopped (a marker, or the end of the file)
} bit_reader;

static void fill_bits(bit_reader *b) {
    while (b->count <= 56 && !b->at_marker) {
        if (b->pos >= b->n) {
            b->at_marker = true;
            break;
        }
        uint8_t c = b->d[b->pos];
        if (c == 0xFF) {
            if (b->pos + 1 >= b->n || b->d[b->pos + 1] != 0x00) {
                b->at_marker = true;
                break;
            }
            b->pos += 2;
        } else {
            b->pos++;
        }
        b->acc |= (uint64_t)c << (56 - b->count);
        b->count += 8;
    }
}

// Drops count bits; false when the data has fewer.
static bool skip_bits(bit_reader *b, int count) {
    if (b->count < count) fill_bits(b);
    if (b->count < count) return false;
    b->acc <<= count;
    b->count -= count;
    return true;
}

// The value of the next Huffman code, -1 at the end of the data, -2 for a code not in the table.
static int next_symbol(bit_reader *b, const jpeg_huffman *h) {
    if (b->count < 16) fill_bits(b);
    uint16_t f = h->fast[b->acc >> 56];
    if (f != 0) {
        int l = f >> 8;
        if (l > b->count) return -1;
        b->acc <<= l;
        b->count -= l;
        return f & 0xFF;
    }
    for (int l = 9; l <= 16; l++) {
        int32_t code = (int32_t)(b->acc >> (64 - l));
        if (h->maxcode[l] >= 0 && code <= h->maxcode[l] && code >= h->mincode[l]) {
            if (l > b->count) return -1;
            b->acc <<= l;
            b->count -= l;
            return h->values[h->valptr[l] + code - h->mincode[l]];
        }
    }
    return b->count < 16 ? -1 : -2; // a code cut by the end of the data, or none of the table's
}

// What a scan decodes with, from the frame header, the scan header and the tables.
typedef struct {
    bool progressive;             // SOF2; else baseline (SOF0, SOF1)
    int ss, se, ah, al;           // spectral selection and successive approximation (T.81, G.1.1)
    int ns;                       // components in the scan
    int h[4], v[4];               // their sampling factors
    int blocks_x[4], blocks_y[4]; // a component's blocks across and down (non-interleaved scans)
    int grid_w[4];                // blocks across the component's MCU-padded grid
    uint64_t *nonzero[4];         // progressive: per block of that grid, the AC coefficients (by
                                  // zigzag index) that earlier scans made non-zero
    const jpeg_huffman *dc[4], *ac[4];
    int64_t mcus_x, mcus_y;       // MCUs across and down (interleaved scans)
    int restart_interval;         // MCUs between RSTn markers (DRI), 0: none
} jpeg_scan;

static const char *const scan_cut = "the scan data ends before the image's last block";

// Decodes the Huffman codes of one 8 x 8 block of a baseline scan (T.81, F.2.2): NULL or what is wrong.
static const char *check_block(bit_reader *b, const jpeg_huffman *dc, const jpeg_huffman *ac) {
    int t = next_symbol(b, dc);
    if (t == -1) return scan_cut;
    if (t < 0 || t > 11) return "a DC code is not in its Huffman table (corrupt scan data)";
    if (!skip_bits(b, t)) return scan_cut;
    for (int k = 1; k < 64;) {
        int rs = next_symbol(b, ac);
        if (rs == -1) return scan_cut;
        if (rs < 0) return "an AC code is not in its Huffman table (corrupt scan data)";
        int r = rs >> 4, size = rs & 15;
        if (size == 0) {
            if (r != 15) break; // end of block
            k += 16;
        } else {
            k += r;
            if (!skip_bits(b, size)) return scan_cut;
            k++;
        }
        if (k > 64) return "a block's coefficients run past the 64 of an 8 x 8 block (corrupt scan data)";
    }
    return NULL;
}

// One block of a progressive scan (T.81, G.1.2; the order of libjpeg's decode_mcu_* and stb_image's
// stbi__jpeg_decode_block_prog_*). nz: the block's non-zero AC coefficients, updated; eobrun:
// blocks left in the current end-of-band run.
static const char *check_block_progressive(bit_reader *b, const jpeg_scan *sc, int c, uint64_t *nz, int *eobrun) {
    static const char *const bad_ac = "an AC code is not in its Huffman table (corrupt scan data)";
    if (sc->ss == 0) { // DC: the first scan decodes a difference, a refinement reads one bit
        if (sc->ah > 0) return skip_bits(b, 1) ? NULL : scan_cut;
        int t = next_symbol(b, sc->dc[c]);
        if (t == -1) return scan_cut;
        if (t < 0 || t > 11) return "a DC code is not in its Huffman table (corrupt scan data)";
        return skip_bits(b, t) ? NULL : scan_cut;
    }
    if (sc->ah == 0) { // AC, first scan of this band
        if (*eobrun > 0) {
            (*eobrun)--;
            return NULL;
        }
        for (int k = sc->ss; k <= sc->se; k++) {
            int rs = next_symbol(b, sc->ac[c]);
            if (rs == -1) return scan_cut;
            if (rs < 0) return bad_ac;
            int r = rs >> 4, size = rs & 15;
            if (size == 0) {
                if (r == 15) {
                    k += 15; // 16 zeros (the loop adds the last)
                    continue;
                }
                *eobrun = (1 << r) - 1;
                if (r > 0) {
                    if (b->count < r) fill_bits(b);
                    if (b->count < r) return scan_cut;
                    *eobrun += (int)(b->acc >> (64 - r));
                    skip_bits(b, r);
                }
                return NULL;
            }
            k += r;
            if (k > sc->se) return "a coefficient lies past the scan's spectral band (corrupt scan data)";
            if (size + sc->al > 11) return "a coefficient is too large for 8-bit samples (corrupt scan data)";
            if (!skip_bits(b, size)) return scan_cut;
            *nz |= (uint64_t)1 << k;
        }
        return NULL;
    }
    // AC refinement: one correction bit per coefficient already non-zero, new ones of +-1.
    int k = sc->ss;
    if (*eobrun == 0) {
        for (; k <= sc->se; k++) {
            int rs = next_symbol(b, sc->ac[c]);
            if (rs == -1) return scan_cut;
            if (rs < 0) return bad_ac;
            int r = rs >> 4, size = rs & 15;
            if (size != 0) {
                if (size != 1) return "a refinement coefficient is not +-1 (corrupt scan data)";
                if (!skip_bits(b, 1)) return scan_cut;
            } else if (r != 15) {
                *eobrun = 1 << r;
                if (r > 0) {
                    if (b->count < r) fill_bits(b);
                    if (b->count < r) return scan_cut;
                    *eobrun += (int)(b->acc >> (64 - r));
                    skip_bits(b, r);
                }
                break;
            }
            do {
                if (*nz >> k & 1) {
                    if (!skip_bits(b, 1)) return scan_cut;
                } else if (--r < 0) {
                    break;
                }
                k++;
            } while (k <= sc->se);
            if (size != 0) {
                if (k > sc->se) return "a coefficient lies past the scan's spectral band (corrupt scan data)";
                *nz |= (uint64_t)1 << k;
            }
        }
    }
    if (*eobrun > 0) {
        for (; k <= sc->se; k++)
            if ((*nz >> k & 1) && !skip_bits(b, 1)) return scan_cut;
        (*eobrun)--;
    }
    return NULL;
}

// The position just after the last byte of which bits were used: the bits left in acc are
// padding (whole bytes read ahead are given back, FF 00 pairs counted as two).
static size_t bits_end(const bit_reader *b) {
    size_t pos = b->pos;
    for (int whole = b->count / 8; whole > 0; whole--) {
        pos--;
        if (pos > 0 && b->d[pos] == 0x00 && b->d[pos - 1] == 0xFF) pos--;
    }
    return pos;
}

// Checks the entropy-coded data of a scan starting at d[*pos]: every block decodes with the scan's
// tables, the restart markers come in order, and the data ends exactly at the next marker
// (libjpeg's "premature end of data segment" and "extraneous bytes before marker"). stb_image
// fills what it cannot decode with zeros and says nothing, and on a progressive scan cut short
// its bit buffer goes negative. *pos ends at that marker.
static const char *check_scan(const uint8_t *d, size_t n, size_t *pos, const jpeg_scan *sc) {
    bit_reader b = {d, n, *pos, 0, 0, false};
    fill_bits(&b);
    int64_t units = sc->ns == 1 ? (int64_t)sc->blocks_x[0] * sc->blocks_y[0] : sc->mcus_x * sc->mcus_y;
    int next_rst = 0, eobrun = 0;
    for (int64_t u = 0; u < units; u++) {
        if (sc->restart_interval > 0 && u > 0 && u % sc->restart_interval == 0) {
            size_t at = bits_end(&b); // the bits left in a byte before a marker are padding
            if (at + 1 >= n || d[at] != 0xFF || d[at + 1] != 0xD0 + next_rst) {
                *pos = at;
                return "a restart marker (RSTn) is missing or out of order (corrupt scan data)";
            }
            b = (bit_reader){d, n, at + 2, 0, 0, false};
            fill_bits(&b);
            next_rst = (next_rst + 1) & 7;
            eobrun = 0;
        }
        for (int c = 0; c < sc->ns; c++) {
            int bh = sc->ns == 1 ? 1 : sc->v[c], bw = sc->ns == 1 ? 1 : sc->h[c];
            for (int y = 0; y < bh; y++)
                for (int x = 0; x < bw; x++) {
                    const char *bad;
                    if (!sc->progressive) {
                        bad = check_block(&b, sc->dc[c], sc->ac[c]);
                    } else {
                        int64_t by, bx; // the block's place in the component's padded grid
                        if (sc->ns == 1) {
                            by = u / sc->blocks_x[0];
                            bx = u % sc->blocks_x[0];
                        } else {
                            by = u / sc->mcus_x * sc->v[c] + y;
                            bx = u % sc->mcus_x * sc->h[c] + x;
                        }
                        bad = check_block_progressive(&b, sc, c, &sc->nonzero[c][by * sc->grid_w[c] + bx], &eobrun);
                    }
                    if (bad != NULL) {
                        *pos = bits_end(&b);
                        return bad;
                    }
                }
        }
    }
    size_t used = bits_end(&b), end = used; // the bits left in the last byte are padding; then a marker
    while (end + 1 < n && !(d[end] == 0xFF && d[end + 1] != 0x00)) end++;
    if (end != used) {
        *pos = used;
        return "bytes follow the scan's last block before the next marker (corrupt scan data)";
    }
    *pos = end;
    return NULL;
}

// Walks a JPEG's marker segments (ITU-T T.81, B.1) and checks what stb_image 2.27 (Debian 12's)
// trusts the file for, so that such a file never reaches it:
// - each Huffman table (DHT) holds at most 256 codes inside its segment, within the code space:
//   stb_image writes past its 256-entry tables otherwise;
// - every Huffman table a scan (SOS) decodes with, and every quantisation table (DQT) the frame
//   (SOF) names, was defined before the scan: stb_image keeps its tables in memory it never
//   clears, so a scan that uses an undefined one reads uninitialised entries as indices (a
//   progressive JPEG without DHT crashed it);
// - the frame and scan headers are whole and consistent (components, table numbers 0..3);
// - only the markers stb_image reads, so that its walk through the file and this one meet the
//   same segments;
// - the scan data decodes, block after block, and ends where it should (check_scan, baseline and
//   progressive): a corrupt file is refused instead of decoded to garbage, and stb_image never
//   runs out of bits inside a block (its bit count then goes negative: undefined shifts).
// Returns NULL when fine, else a reason (offset in *at).
const char *jpeg_bad_segment(const uint8_t *d, size_t n, int max_side, size_t *at) {
    jpeg_huffman *tables = calloc(8, sizeof *tables); // DC 0..3, then AC 0..3
    if (tables == NULL) return "out of memory checking the Huffman tables";
    bool q_defined[4] = {false};
    int frame = 0;                   // the SOF marker seen (0xC0..0xCF), 0 before it
    int ncomp = 0, comp_id[4] = {0}, comp_q[4] = {0}, comp_h[4] = {0}, comp_v[4] = {0};
    int width = 0, height = 0, restart_interval = 0;
    uint64_t *nonzero[4] = {NULL}; // progressive: each component's non-zero AC coefficients, per block
    int grid_w[4] = {0};
    const char *bad = NULL;
    size_t pos = 2; // after SOI
    while (pos < n && bad == NULL) {
        if (d[pos] != 0xFF) { // garbage where a marker should be: stb_image skips to the next 0xFF
            pos++;
            continue;
        }
        while (pos < n && d[pos] == 0xFF) pos++; // fill bytes
        if (pos >= n) break;
        uint8_t marker = d[pos++];
        *at = pos - 2;
        if (marker == 0xD9) break; // EOI
        // Only the markers stb_image reads (it refuses every other one, FF 00 included): any other
        // here means this walk and stb_image's could part ways, and a table this walk skipped could
        // reach stb_image unchecked.
        bool known = marker == 0xC0 || marker == 0xC1 || marker == 0xC2 || marker == 0xC4 || marker == 0xDA ||
                     marker == 0xDB || marker == 0xDC || marker == 0xDD || (marker >= 0xE0 && marker <= 0xEF) ||
                     marker == 0xFE;
        if (!known) {
            bad = marker == 0x00                     ? "FF 00 (a stuffed data byte) where a marker should be"
                  : marker >= 0xD0 && marker <= 0xD7 ? "a restart marker (RSTn) outside scan data"
                                                     : "a marker that is unknown or of an unsupported JPEG process";
            break;
        }
        if (pos + 2 > n) {
            bad = "a marker segment is cut short by the end of the file";
            break;
        }
        size_t seg = (size_t)d[pos] << 8 | d[pos + 1];
        if (seg < 2 || pos + seg > n) {
            bad = "a marker segment's length runs past the end of the file";
            break;
        }
        const uint8_t *body = d + pos + 2;
        size_t len = seg - 2;
        if (marker == 0xC4) { // DHT: tables of (class/id byte, 16 code counts, the values)
            size_t p = 0;
            while (p < len && bad == NULL) {
                if (p + 17 > len) {
                    bad = "a Huffman table (DHT) is cut short by its segment's end";
                    break;
                }
                int tc = body[p] >> 4, th = body[p] & 15;
                if (tc > 1 || th > 3) {
                    bad = "a Huffman table (DHT) has a class above 1 or a number above 3";
                    break;
                }
                jpeg_huffman *h = &tables[4 * tc + th];
                size_t codes = 0;
                for (int i = 1; i <= 16; i++) codes += h->counts[i] = body[p + i];
                if (codes > 256) bad = "a Huffman table (DHT) declares more than 256 codes";
                else if (p + 17 + codes > len) bad = "a Huffman table (DHT) runs past its segment's end";
                if (bad != NULL) break;
                memcpy(h->values, body + p + 17, codes);
                if (!huffman_build(h)) {
                    bad = "a Huffman table (DHT) has more codes than their lengths allow";
                    break;
                }
                h->defined = true;
                p += 17 + codes;
            }
        } else if (marker == 0xDB) { // DQT: tables of (precision/id byte, 64 or 128 bytes)
            size_t p = 0;
            while (p < len) {
                int pq = body[p] >> 4, tq = body[p] & 15;
                if (pq > 1 || tq > 3) {
                    bad = "a quantisation table (DQT) has a precision above 1 or a number above 3";
                    break;
                }
                p += 1 + (pq ? 128 : 64);
                if (p > len) {
                    bad = "a quantisation table (DQT) runs past its segment's end";
                    break;
                }
                q_defined[tq] = true;
            }
        } else if (marker == 0xDD) { // DRI: the restart interval
            if (len < 2) bad = "the restart interval segment (DRI) is cut short";
            else restart_interval = body[0] << 8 | body[1];
        } else if (marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC) {
            // SOF: precision, height, width, component count, then (id, sampling, table) each.
            if (frame != 0) bad = "a second frame header (SOF)";
            else if (len < 6) bad = "the frame header (SOF) is cut short";
            if (bad != NULL) break;
            frame = marker;
            height = body[1] << 8 | body[2];
            width = body[3] << 8 | body[4];
            ncomp = body[5];
            if (ncomp != 1 && ncomp != 3 && ncomp != 4) bad = "the frame header (SOF) has a component count other than 1, 3 or 4";
            else if (len != 6 + 3 * (size_t)ncomp) bad = "the frame header's (SOF) length does not match its component count";
            for (int c = 0; c < ncomp && bad == NULL; c++) {
                comp_id[c] = body[6 + 3 * c];
                comp_h[c] = body[7 + 3 * c] >> 4;
                comp_v[c] = body[7 + 3 * c] & 15;
                comp_q[c] = body[8 + 3 * c];
                if (comp_q[c] > 3) bad = "the frame header (SOF) names a quantisation table above 3";
                else if (comp_h[c] < 1 || comp_h[c] > 4 || comp_v[c] < 1 || comp_v[c] > 4)
                    bad = "the frame header (SOF) has a sampling factor outside 1..4";
            }
            // A progressive frame's scans refine one another: what each block already holds is
            // kept, over each component's grid padded to whole MCUs (as stb_image keeps it).
            if (bad == NULL && frame == 0xC2 && width > 0 && height > 0 && width <= max_side &&
                height <= max_side) {
                int hmax = 1, vmax = 1;
                for (int c = 0; c < ncomp; c++) {
                    hmax = comp_h[c] > hmax ? comp_h[c] : hmax;
                    vmax = comp_v[c] > vmax ? comp_v[c] : vmax;
                }
                int64_t mx = (width + 8 * hmax - 1) / (8 * hmax), my = (height + 8 * vmax - 1) / (8 * vmax);
                for (int c = 0; c < ncomp && bad == NULL; c++) {
                    grid_w[c] = (int)(mx * comp_h[c]);
                    nonzero[c] = calloc((size_t)(mx * comp_h[c] * my * comp_v[c]), sizeof(uint64_t));
                    if (nonzero[c] == NULL) bad = "out of memory checking the scans";
                }
            }
        } else if (marker == 0xDA) { // SOS: component count, (id, DC/AC tables) each, Ss, Se, Ah/Al
            int ns = len >= 1 ? body[0] : 0;
            if (frame == 0) bad = "a scan (SOS) before the frame header (SOF)";
            else if (ns < 1 || ns > ncomp || len != 4 + 2 * (size_t)ns)
                bad = "a scan header's (SOS) length or component count is wrong";
            if (bad != NULL) break;
            int ss = body[1 + 2 * ns], se = body[2 + 2 * ns], ah = body[3 + 2 * ns] >> 4, al = body[3 + 2 * ns] & 15;
            bool progressive = frame == 0xC2;
            // The spectral band and the bit position of a progressive scan (T.81, G.1.1.1.1):
            // DC alone or one component's AC band, each refinement one bit below the last.
            if (progressive && (ss > se || se > 63 || (ss == 0 && se != 0) || (ss > 0 && ns != 1) || al > 13 ||
                                (ah != 0 && al != ah - 1))) {
                bad = "a progressive scan header (SOS) has an impossible band or bit position";
                break;
            }
            jpeg_scan sc = {.progressive = progressive, .ss = ss, .se = se, .ah = ah, .al = al, .ns = ns,
                            .restart_interval = restart_interval};
            int hmax = 1, vmax = 1;
            for (int c = 0; c < ncomp; c++) {
                hmax = comp_h[c] > hmax ? comp_h[c] : hmax;
                vmax = comp_v[c] > vmax ? comp_v[c] : vmax;
            }
            for (int k = 0; k < ns && bad == NULL; k++) {
                int id = body[1 + 2 * k], td = body[2 + 2 * k] >> 4, ta = body[2 + 2 * k] & 15;
                int c = 0;
                while (c < ncomp && comp_id[c] != id) c++;
                if (c == ncomp) bad = "a scan (SOS) names a component the frame header (SOF) does not have";
                else if (td > 3 || ta > 3) bad = "a scan (SOS) names a Huffman table above 3";
                else if (!q_defined[comp_q[c]])
                    bad = "a scan (SOS) comes before the quantisation table (DQT) its component uses";
                if (bad != NULL) break;
                // Baseline scans decode with both tables; progressive DC first scans with the DC
                // table, AC scans with the AC table (DC refinement scans read raw bits).
                bool needs_dc = !progressive || (ss == 0 && ah == 0);
                bool needs_ac = !progressive || ss > 0;
                if (needs_dc && !tables[td].defined) bad = "a scan (SOS) uses a DC Huffman table that no DHT segment defined";
                else if (needs_ac && !tables[4 + ta].defined)
                    bad = "a scan (SOS) uses an AC Huffman table that no DHT segment defined";
                sc.h[k] = comp_h[c];
                sc.v[k] = comp_v[c];
                sc.dc[k] = &tables[td];
                sc.ac[k] = &tables[4 + ta];
                sc.nonzero[k] = nonzero[c];
                sc.grid_w[k] = grid_w[c];
                int64_t cw = ((int64_t)width * comp_h[c] + hmax - 1) / hmax, chh = ((int64_t)height * comp_v[c] + vmax - 1) / vmax;
                sc.blocks_x[k] = (int)((cw + 7) / 8);
                sc.blocks_y[k] = (int)((chh + 7) / 8);
            }
            if (bad != NULL) break;
            pos += seg;
            // (A frame larger than max_side is refused by its size; no need to read its scans.)
            bool readable = (frame == 0xC0 || frame == 0xC1 || (frame == 0xC2 && nonzero[0] != NULL)) && width > 0 &&
                            height > 0 && width <= max_side && height <= max_side;
            if (readable) {
                sc.mcus_x = ((int64_t)width + 8 * hmax - 1) / (8 * hmax);
                sc.mcus_y = ((int64_t)height + 8 * vmax - 1) / (8 * vmax);
                bad = check_scan(d, n, &pos, &sc);
                if (bad != NULL) {
                    *at = pos;
                    if (bad == scan_cut && pos + 1 < n && d[pos] == 0xFF)
                        bad = "the scan data stops at a marker before the image's last block";
                }
            } else { // skip the entropy-coded data up to the next marker (not FF 00, not RSTn)
                while (pos + 1 < n && !(d[pos] == 0xFF && d[pos + 1] != 0x00 && !(d[pos + 1] >= 0xD0 && d[pos + 1] <= 0xD7)))
                    pos++;
            }
            continue;
        }
        pos += seg;
    }
    free(tables);
    for (int c = 0; c < 4; c++) free(nonzero[c]);
    return bad;
}
