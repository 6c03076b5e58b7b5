// threads.h: the CPU's threads: how many OpenMP loops and the BLAS library use, and how they wait
// for each other (kernels/cpu/threads.c, which defines them).
#ifndef CG_KERNELS_CPU_THREADS_H
#define CG_KERNELS_CPU_THREADS_H

// CPU threads for OpenMP loops and the BLAS library (n >= 1). Without a call, OpenMP's default.
void cg_set_num_threads(int n);
int cg_get_num_threads(void);
// The wait policy of the OpenMP threads (kernels/cpu/threads.c): call first thing in main. When
// neither OMP_WAIT_POLICY nor GOMP_SPINCOUNT is set, it sets OMP_WAIT_POLICY=passive (threads
// sleep as soon as they wait: another program on one of the cores then does not halve the speed)
// and starts the program again with the same arguments, since OpenMP reads it only at start.
void cg_threads_setup(int argc, char **argv);
// One line for the user, e.g. "2 OpenMP threads, waiting OMP_WAIT_POLICY=passive (set by cgrad)"
// (a static buffer, rewritten by each call).
const char *cg_threads_describe(void);

#endif
