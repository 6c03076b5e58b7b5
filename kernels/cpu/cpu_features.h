// cpu_features.h: which of this CPU's matrix units the 16-bit and int8 kernels use, decided at
// run time (cpuid, the operating system's consent for AMX), with an environment variable or a
// function to choose a slower path on purpose (the emulated bf16 path is the reference the tests
// compare the others with). It selects; it computes nothing (bf16_gemm.c, amx.c do).
#ifndef CG_KERNELS_CPU_FEATURES_H
#define CG_KERNELS_CPU_FEATURES_H

#include <stdbool.h>

// Where the AMX and AVX512-BF16 kernels can be compiled (x86-64, GCC 11 or Clang 12 and later,
// which know the instructions whatever -march says). Elsewhere every path is the portable one.
#if defined(__x86_64__) && ((defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11) || \
                            (defined(__clang__) && __clang_major__ >= 12))
#define CG_CPU_MATRIX_KERNELS 1
#endif

#ifdef __cplusplus
extern "C" {
#endif

// How the CPU runs bf16 products and convolutions (--precision bf16), fastest last:
//   CG_BF16_EMULATED    f32 arithmetic on widened copies, results rounded to bf16 (amp.c)
//   CG_BF16_AVX512      AVX512-BF16's vdpbf16ps: 16 fp32 sums of bf16 pair products per instruction
//   CG_BF16_AMX         AMX-BF16 tiles: tdpbf16ps, a 16 x 16 fp32 tile += 16 x 32 times 32 x 16 bf16
// Both hardware paths multiply the same bf16 values exactly and sum in fp32 (as the emulated
// path), in another order, with subnormal inputs and results flushed to zero (Intel SDM).
typedef enum { CG_BF16_EMULATED = 0, CG_BF16_AVX512 = 1, CG_BF16_AMX = 2 } cg_cpu_bf16_path;

// How the int8 layers (core/qkernels.h) multiply: AMX-INT8 tiles (tdpbusd) where present and
// allowed, else the VNNI, AVX2 or plain loops of int8_packed.c (whichever the build was compiled
// for). The integers are the same on every path.
typedef enum { CG_INT8_LOOPS = 0, CG_INT8_AMX = 1 } cg_cpu_int8_path;

// What the CPU and the operating system offer (cpuid leaf 7, XCR0, and for AMX Linux's
// arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA), asked once per process).
bool cg_cpu_has_avx512_bf16(void);
bool cg_cpu_has_amx_bf16(void);
bool cg_cpu_has_amx_int8(void);

// The path in use. The first call decides: the best the CPU offers, or the one the environment
// variable CGRAD_CPU_BF16 (emulated, avx512bf16, amx, auto) / CGRAD_CPU_INT8 (loops, amx, auto)
// names when the CPU has it (a path it lacks gives a note on stderr and the best below it).
// The first bf16 (int8) product prints one line on stderr saying which path runs.
cg_cpu_bf16_path cg_cpu_bf16(void);
cg_cpu_int8_path cg_cpu_int8(void);

// Choose a path from now on (tests, benchmarks); one the CPU lacks is refused: returns false
// and changes nothing. Call it between kernels, not while one runs.
bool cg_cpu_bf16_set(cg_cpu_bf16_path path);
bool cg_cpu_int8_set(cg_cpu_int8_path path);

// "emulated (f32 arithmetic, bf16 rounding)", "AVX512-BF16 (vdpbf16ps)", "AMX-BF16 tiles";
// "AMX-INT8 tiles", "AVX512-VNNI", "AVX2" or "plain C loops".
const char *cg_cpu_bf16_name(cg_cpu_bf16_path path);
const char *cg_cpu_int8_name(cg_cpu_int8_path path);

#ifdef __cplusplus
}
#endif

#endif
