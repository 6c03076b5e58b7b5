// cpu_features.c: run-time detection of AVX512-BF16, AMX-BF16 and AMX-INT8, Linux's permission
// for the AMX tile state, and the choice of the bf16 and int8 paths (cpu_features.h). It does not
// look at clock speeds or core counts (bench/cpu_peak.c does), and does no arithmetic.
#define _GNU_SOURCE // syscall
#include "kernels/cpu/cpu_features.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef CG_CPU_MATRIX_KERNELS
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
#define CG_X86 1
#endif

static struct {
    pthread_once_t once;
    bool avx512_bf16, amx_bf16, amx_int8;
    cg_cpu_bf16_path bf16;
    cg_cpu_int8_path int8;
    bool bf16_told, int8_told;
} cpu = {.once = PTHREAD_ONCE_INIT};

#ifdef CG_X86
// XCR0, the register in which the operating system says which register states it saves on a
// context switch (Intel SDM vol. 1, 13.3): AVX-512 needs bits 5-7, AMX bits 17 and 18.
static unsigned long long xcr0(void) {
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}

// Linux (5.16 on) leaves the 8 KiB of AMX tile data out of a process's saved state until the
// process asks for it: arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) (the kernel's
// Documentation/arch/x86/xstate.rst). Without it the first tile instruction kills the process.
#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18
static bool amx_permitted(void) { return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0; }
#endif

static void detect(void) {
#ifdef CG_X86
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return; // OSXSAVE: xgetbv is there
    unsigned long long x = xcr0();
    bool os_avx512 = (x & 0xe6) == 0xe6;                  // SSE, AVX, opmask, ZMM state
    bool os_amx = (x & (3ull << 17)) == (3ull << 17);     // XTILECFG, XTILEDATA
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return;
    bool avx512 = (b >> 16 & 1) && (b >> 30 & 1) && (b >> 31 & 1); // F, BW, VL
    bool amx_tile = d >> 24 & 1, amx_bf16 = d >> 22 & 1, amx_int8 = d >> 25 & 1;
    unsigned a1 = 0, b1, c1, d1;
    __get_cpuid_count(7, 1, &a1, &b1, &c1, &d1);
    cpu.avx512_bf16 = os_avx512 && avx512 && (a1 >> 5 & 1);
    // The packing code around the tiles uses AVX-512 too (every CPU with AMX has it).
    bool amx = os_avx512 && avx512 && os_amx && amx_tile && (amx_bf16 || amx_int8) && amx_permitted();
    cpu.amx_bf16 = amx && amx_bf16;
    cpu.amx_int8 = amx && amx_int8;
#endif
}

static bool bf16_available(cg_cpu_bf16_path p) {
    return p == CG_BF16_EMULATED || (p == CG_BF16_AVX512 && cpu.avx512_bf16) || (p == CG_BF16_AMX && cpu.amx_bf16);
}

static bool int8_available(cg_cpu_int8_path p) { return p == CG_INT8_LOOPS || (p == CG_INT8_AMX && cpu.amx_int8); }

static void choose(void) {
    detect();
    cpu.bf16 = cpu.amx_bf16 ? CG_BF16_AMX : cpu.avx512_bf16 ? CG_BF16_AVX512 : CG_BF16_EMULATED;
    const char *want = getenv("CGRAD_CPU_BF16");
    if (want && *want && strcmp(want, "auto") != 0) {
        int p = strcmp(want, "amx") == 0 ? CG_BF16_AMX
                : strcmp(want, "avx512bf16") == 0 ? CG_BF16_AVX512
                : strcmp(want, "emulated") == 0 ? CG_BF16_EMULATED : -1;
        if (p < 0) {
            fprintf(stderr, "cgrad: note: CGRAD_CPU_BF16=%s is not emulated, avx512bf16, amx or auto; using %s\n",
                    want, cg_cpu_bf16_name(cpu.bf16));
        } else if (bf16_available((cg_cpu_bf16_path)p)) {
            cpu.bf16 = (cg_cpu_bf16_path)p;
        } else { // the best below the one asked for
            cpu.bf16 = p == CG_BF16_AMX && cpu.avx512_bf16 ? CG_BF16_AVX512 : CG_BF16_EMULATED;
            fprintf(stderr, "cgrad: note: CGRAD_CPU_BF16=%s but this CPU (or system) lacks it; using %s\n", want,
                    cg_cpu_bf16_name(cpu.bf16));
        }
    }
    cpu.int8 = cpu.amx_int8 ? CG_INT8_AMX : CG_INT8_LOOPS;
    want = getenv("CGRAD_CPU_INT8");
    if (want && *want && strcmp(want, "auto") != 0) {
        if (strcmp(want, "loops") == 0) cpu.int8 = CG_INT8_LOOPS;
        else if (strcmp(want, "amx") != 0)
            fprintf(stderr, "cgrad: note: CGRAD_CPU_INT8=%s is not loops, amx or auto; using %s\n", want,
                    cg_cpu_int8_name(cpu.int8));
        else if (!cpu.amx_int8)
            fprintf(stderr, "cgrad: note: CGRAD_CPU_INT8=amx but this CPU (or system) lacks AMX-INT8; using %s\n",
                    cg_cpu_int8_name(CG_INT8_LOOPS));
    }
}

static void init(void) { pthread_once(&cpu.once, choose); }

bool cg_cpu_has_avx512_bf16(void) { return init(), cpu.avx512_bf16; }
bool cg_cpu_has_amx_bf16(void) { return init(), cpu.amx_bf16; }
bool cg_cpu_has_amx_int8(void) { return init(), cpu.amx_int8; }

// The line that says which path runs, once per process, when the first product asks. Without
// an OpenMP lock: kernels ask from the host thread before they share out work.
cg_cpu_bf16_path cg_cpu_bf16(void) {
    init();
    if (!cpu.bf16_told) {
        cpu.bf16_told = true;
        fprintf(stderr, "cgrad: bf16 on the CPU: %s%s\n", cg_cpu_bf16_name(cpu.bf16),
                cpu.bf16 == CG_BF16_EMULATED && (cpu.amx_bf16 || cpu.avx512_bf16) ? " (chosen with CGRAD_CPU_BF16 or cg_cpu_bf16_set)"
                : cpu.bf16 == CG_BF16_EMULATED ? " (this CPU has neither AMX-BF16 nor AVX512-BF16)"
                                                : ", fp32 accumulation");
    }
    return cpu.bf16;
}

cg_cpu_int8_path cg_cpu_int8(void) {
    init();
    if (!cpu.int8_told) {
        cpu.int8_told = true;
        fprintf(stderr, "cgrad: int8 on the CPU: %s, int32 accumulation\n", cg_cpu_int8_name(cpu.int8));
    }
    return cpu.int8;
}

bool cg_cpu_bf16_set(cg_cpu_bf16_path path) {
    init();
    if (!bf16_available(path)) return false;
    cpu.bf16 = path;
    return true;
}

bool cg_cpu_int8_set(cg_cpu_int8_path path) {
    init();
    if (!int8_available(path)) return false;
    cpu.int8 = path;
    return true;
}

const char *cg_cpu_bf16_name(cg_cpu_bf16_path path) {
    switch (path) {
    case CG_BF16_AMX: return "AMX-BF16 tiles (tdpbf16ps)";
    case CG_BF16_AVX512: return "AVX512-BF16 (vdpbf16ps)";
    default: return "emulated (f32 arithmetic on widened copies, results rounded to bf16)";
    }
}

const char *cg_cpu_int8_name(cg_cpu_int8_path path) {
    if (path == CG_INT8_AMX) return "AMX-INT8 tiles (tdpbusd)";
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__)
    return "AVX512-VNNI (vpdpbusd)";
#elif defined(__AVX2__)
    return "AVX2 (vpmaddwd, 16-bit pairs)";
#else
    return "plain C loops";
#endif
}
