// int8_amx.c: the int8 GEMM of the quantised layers (int8_packed.h) on AMX-INT8 tiles: tdpbusd
// adds a 16 x 64 block of unsigned activation bytes times a 64 x 16 block of signed weights into a
// 16 x 16 tile of int32 sums, exactly (integer products and sums, no saturation: |sum| < 2^31 by
// CG_QK_MAX_K). The weights are read where cg_int8_pack put them (its (Kp/4, Np, 4) layout is the
// AMX B tile's, rows Np * 4 bytes apart), the sums go through the output stage of int8_packed.c,
// so the int8 (or f32) outputs are those of the VNNI and plain paths bit for bit. Whole blocks of
// 16 rows only: the caller (kernels/cpu/int8.c) runs the last rows on the VNNI loops.
#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/int8_packed.h"

#include <string.h>

#include "core/common.h"

#ifdef CG_CPU_MATRIX_KERNELS
#include <immintrin.h>

#define AMX_TARGET __attribute__((target("amx-tile,amx-int8")))

typedef struct { // ldtilecfg's 64 bytes (Intel SDM vol. 1, the AMX chapter): palette 1
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

// Tiles: 0-3 the sums of a 32 x 32 block, 4-5 two blocks of 16 rows of activations, 6-7 two
// blocks of 16 columns of weights. acc receives the sums, 32 ints per row.
static AMX_TARGET void block_2x2(int32_t *acc, const uint8_t *a, int64_t lda, const int8_t *b, int64_t ldb,
                                 int64_t chunks) {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (int64_t c = 0; c < chunks; c++) {
        const uint8_t *ak = a + c * 64;
        const int8_t *bk = b + c * 16 * ldb;
        _tile_loadd(4, ak, lda);
        _tile_loadd(6, bk, ldb);
        _tile_dpbusd(0, 4, 6);
        _tile_loadd(7, bk + 64, ldb);
        _tile_dpbusd(1, 4, 7);
        _tile_loadd(5, ak + 16 * lda, lda);
        _tile_dpbusd(2, 5, 6);
        _tile_dpbusd(3, 5, 7);
    }
    _tile_stored(0, acc, 32 * 4);
    _tile_stored(1, acc + 16, 32 * 4);
    _tile_stored(2, acc + 16 * 32, 32 * 4);
    _tile_stored(3, acc + 16 * 32 + 16, 32 * 4);
}

// 16 rows x 32 columns, 32 rows x 16 columns, 16 x 16: the edges.
static AMX_TARGET void block_1x2(int32_t *acc, const uint8_t *a, int64_t lda, const int8_t *b, int64_t ldb,
                                 int64_t chunks) {
    _tile_zero(0);
    _tile_zero(1);
    for (int64_t c = 0; c < chunks; c++) {
        const int8_t *bk = b + c * 16 * ldb;
        _tile_loadd(4, a + c * 64, lda);
        _tile_loadd(6, bk, ldb);
        _tile_loadd(7, bk + 64, ldb);
        _tile_dpbusd(0, 4, 6);
        _tile_dpbusd(1, 4, 7);
    }
    _tile_stored(0, acc, 32 * 4);
    _tile_stored(1, acc + 16, 32 * 4);
}

static AMX_TARGET void block_2x1(int32_t *acc, const uint8_t *a, int64_t lda, const int8_t *b, int64_t ldb,
                                 int64_t chunks) {
    _tile_zero(0);
    _tile_zero(2);
    for (int64_t c = 0; c < chunks; c++) {
        const uint8_t *ak = a + c * 64;
        _tile_loadd(6, b + c * 16 * ldb, ldb);
        _tile_loadd(4, ak, lda);
        _tile_loadd(5, ak + 16 * lda, lda);
        _tile_dpbusd(0, 4, 6);
        _tile_dpbusd(2, 5, 6);
    }
    _tile_stored(0, acc, 32 * 4);
    _tile_stored(2, acc + 16 * 32, 32 * 4);
}

static AMX_TARGET void block_1x1(int32_t *acc, const uint8_t *a, int64_t lda, const int8_t *b, int64_t ldb,
                                 int64_t chunks) {
    _tile_zero(0);
    for (int64_t c = 0; c < chunks; c++) {
        _tile_loadd(4, a + c * 64, lda);
        _tile_loadd(6, b + c * 16 * ldb, ldb);
        _tile_dpbusd(0, 4, 6);
    }
    _tile_stored(0, acc, 32 * 4);
}

// Blocks of 32 rows (then 16) by 32 columns (then 16). A row's last chunk of 64 bytes may run
// past the row's Kp bytes into the next row, or past the buffer (the callers leave 64 bytes of
// slack): those bytes meet weight rows that cg_int8_pack left zero, and add nothing.
static AMX_TARGET int64_t gemm_rows_amx(void *y, int64_t ldy, const uint8_t *a, int64_t rows, const cg_int8_packed *p,
                                        const cg_qoutput *out) {
    const int64_t Kp = p->Kp, Np = p->Np, chunks = (Kp + 63) / 64, ldb = Np * 4, whole = rows / 16 * 16;
    int32_t acc[32 * 32];
    amx_begin();
    for (int64_t i0 = 0; i0 < whole; i0 += 32) {
        bool two_m = i0 + 32 <= whole;
        const uint8_t *ai = a + i0 * Kp;
        for (int64_t j0 = 0; j0 < Np; j0 += 32) {
            bool two_n = j0 + 32 <= Np;
            const int8_t *bj = p->b + j0 * 4;
            if (two_m && two_n)
                block_2x2(acc, ai, Kp, bj, ldb, chunks);
            else if (two_n)
                block_1x2(acc, ai, Kp, bj, ldb, chunks);
            else if (two_m)
                block_2x1(acc, ai, Kp, bj, ldb, chunks);
            else
                block_1x1(acc, ai, Kp, bj, ldb, chunks);
            cg_int8_stage_block(y, ldy, i0, j0, acc, 32, two_m ? 32 : 16, two_n ? 32 : 16, p, out);
        }
    }
    _tile_release();
    return whole;
}

int64_t cg_int8_gemm_rows_amx(void *y, int64_t ldy, const uint8_t *a, int64_t rows, const cg_int8_packed *p,
                              const cg_qoutput *out) {
    if (p->Kp < 64 || rows < 16) return 0; // less than one whole tile: the loops do better
    return gemm_rows_amx(y, ldy, a, rows, p, out);
}

#else

int64_t cg_int8_gemm_rows_amx(void *y, int64_t ldy, const uint8_t *a, int64_t rows, const cg_int8_packed *p,
                              const cg_qoutput *out) {
    return 0; // never asked for: cpu_features.c finds no AMX where these cannot be compiled
}

#endif
