// What this x86 machine allows AlexNet's kernels, measured without iop: the FMA peak of one core, the
// bandwidth a matrix-vector product of classifier.1's size (9216 -> 4096, 151 MB of weights, iop's packed
// layout) gets on one and two threads, and features.3's conv (64x27x27, 5x5, pad 2, 192 out) on iop's 6x2
// AVX2 register tile written in C, with and without blocking the input channels so a block's weights stay
// in L1; and what iop's worker pool costs a loop of empty tasks on two threads. Best and median of repeated runs:
// on a shared VM the best is the machine, the median its neighbours.
//   cc -O2 -mavx2 -mfma -pthread -I Sources/CIOPThreads/include Benchmarks/kernel_ceilings.c
//       Sources/CIOPThreads/iop_threads.c -o /tmp/kernel_ceilings && /tmp/kernel_ceilings
#include "iop_threads.h"
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static int by_time(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

// Twelve independent FMA chains: more than latency x issue width, so the FMA ports are the limit. Each starts
// from its own value, or the compiler merges equal chains.
#define FMA(a) a = _mm256_fmadd_ps(a, x, y)
static void fma_peak(float seed) {
    __m256 x = _mm256_set1_ps(0.9999f), y = _mm256_set1_ps(1e-5f);
    __m256 a0 = _mm256_set1_ps(seed), a1 = _mm256_set1_ps(seed + 1), a2 = _mm256_set1_ps(seed + 2);
    __m256 a3 = _mm256_set1_ps(seed + 3), a4 = _mm256_set1_ps(seed + 4), a5 = _mm256_set1_ps(seed + 5);
    __m256 a6 = _mm256_set1_ps(seed + 6), a7 = _mm256_set1_ps(seed + 7), a8 = _mm256_set1_ps(seed + 8);
    __m256 a9 = _mm256_set1_ps(seed + 9), a10 = _mm256_set1_ps(seed + 10), a11 = _mm256_set1_ps(seed + 11);
    long n = 50000000;
    double t0 = now();
    for (long k = 0; k < n; k++) {
        FMA(a0), FMA(a1), FMA(a2), FMA(a3), FMA(a4), FMA(a5), FMA(a6), FMA(a7), FMA(a8), FMA(a9), FMA(a10);
        FMA(a11);
    }
    double s = now() - t0;
    __m256 sum = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11;
    printf("FMA peak, one core: %.1f GFLOP/s (%g)\n", n * 12 * 16 / s / 1e9, sum[0]);
}

#define K 9216
#define OUT 4096
static float *weights, input[K], result[OUT];
static int next_block;

// One block of 32 outputs over iop's packed [block][in][32] weights, as LinearKernel.Task does.
static void linear_block(int b) {
    const float *w = weights + (size_t)b * K * 32;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, c0 = a0, c1 = a0, c2 = a0, c3 = a0;
    for (int i = 0; i < K; i += 2) {
        __m256 x = _mm256_set1_ps(input[i]), y = _mm256_set1_ps(input[i + 1]);
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w), x, a0), a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + 8), x, a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w + 16), x, a2), a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w + 24), x, a3);
        c0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + 32), y, c0), c1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + 40), y, c1);
        c2 = _mm256_fmadd_ps(_mm256_loadu_ps(w + 48), y, c2), c3 = _mm256_fmadd_ps(_mm256_loadu_ps(w + 56), y, c3);
        w += 64;
    }
    _mm256_storeu_ps(result + b * 32, _mm256_add_ps(a0, c0));
    _mm256_storeu_ps(result + b * 32 + 8, _mm256_add_ps(a1, c1));
    _mm256_storeu_ps(result + b * 32 + 16, _mm256_add_ps(a2, c2));
    _mm256_storeu_ps(result + b * 32 + 24, _mm256_add_ps(a3, c3));
}

static void *linear_worker(void *unused) {
    (void)unused;
    for (int b; (b = __atomic_fetch_add(&next_block, 1, __ATOMIC_RELAXED)) < OUT / 32;) linear_block(b);
    return NULL;
}

static void linear_bandwidth(int threads) {
    enum { runs = 15 };
    double t[runs];
    for (int r = 0; r < runs; r++) {
        next_block = 0;
        pthread_t th[8];
        double t0 = now();
        for (int i = 1; i < threads; i++) pthread_create(&th[i], NULL, linear_worker, NULL);
        linear_worker(NULL);
        for (int i = 1; i < threads; i++) pthread_join(th[i], NULL);
        t[r] = now() - t0;
    }
    qsort(t, runs, sizeof t[0], by_time);
    double bytes = (double)K * OUT * 4;
    printf("9216x4096 matrix-vector, %d thread(s): best %.2f ms (%.1f GB/s), median %.2f ms\n", threads,
           t[0] * 1e3, bytes / t[0] / 1e9, t[runs / 2] * 1e3);
}

#define C 64
#define HP 31
#define OW 27
#define PLANE (OW * OW)
#define TERMS (C * 25)
#define UNITS 12
static float padded[C * HP * HP], *conv_weights, conv_out[UNITS * 16 * PLANE];
static float partial[UNITS * 128 * 96];
static int taps[TERMS];

static int input_offset(int p) { return p / OW * HP + p % OW; }

// Six pixels by sixteen channels over `terms` reduction terms, from zero or `from`, into the output or `to`.
static void tile(const float *w, const int *tp, int terms, int p0, float *out, const float *from, float *to) {
    const float *i0 = padded + input_offset(p0), *i1 = padded + input_offset(p0 + 1);
    const float *i2 = padded + input_offset(p0 + 2), *i3 = padded + input_offset(p0 + 3);
    const float *i4 = padded + input_offset(p0 + 4), *i5 = padded + input_offset(p0 + 5);
    __m256 a[12];
    for (int i = 0; i < 12; i++) a[i] = from ? _mm256_loadu_ps(from + 8 * i) : _mm256_setzero_ps();
    __m256 a00 = a[0], a01 = a[1], a10 = a[2], a11 = a[3], a20 = a[4], a21 = a[5];
    __m256 a30 = a[6], a31 = a[7], a40 = a[8], a41 = a[9], a50 = a[10], a51 = a[11];
    for (int t = 0; t < terms; t++) {
        int o = tp[t];
        __m256 w0 = _mm256_loadu_ps(w), w1 = _mm256_loadu_ps(w + 8), x;
        w += 16;
        x = _mm256_broadcast_ss(i0 + o), a00 = _mm256_fmadd_ps(w0, x, a00), a01 = _mm256_fmadd_ps(w1, x, a01);
        x = _mm256_broadcast_ss(i1 + o), a10 = _mm256_fmadd_ps(w0, x, a10), a11 = _mm256_fmadd_ps(w1, x, a11);
        x = _mm256_broadcast_ss(i2 + o), a20 = _mm256_fmadd_ps(w0, x, a20), a21 = _mm256_fmadd_ps(w1, x, a21);
        x = _mm256_broadcast_ss(i3 + o), a30 = _mm256_fmadd_ps(w0, x, a30), a31 = _mm256_fmadd_ps(w1, x, a31);
        x = _mm256_broadcast_ss(i4 + o), a40 = _mm256_fmadd_ps(w0, x, a40), a41 = _mm256_fmadd_ps(w1, x, a41);
        x = _mm256_broadcast_ss(i5 + o), a50 = _mm256_fmadd_ps(w0, x, a50), a51 = _mm256_fmadd_ps(w1, x, a51);
    }
    __m256 r[12] = {a00, a01, a10, a11, a20, a21, a30, a31, a40, a41, a50, a51};
    if (to) {
        for (int i = 0; i < 12; i++) _mm256_storeu_ps(to + 8 * i, r[i]);
        return;
    }
    float b[96];
    for (int i = 0; i < 12; i++) _mm256_storeu_ps(b + 8 * i, r[i]);
    for (int px = 0; px < 6; px++)
        for (int c = 0; c < 16; c++) out[c * PLANE + p0 + px] = b[px * 16 + c];
}

// `block` input channels a pass (64: the whole reduction at once, as iop's tile does).
static void conv_5x5(int block) {
    enum { runs = 30 };
    double t[runs];
    int tiles = (PLANE + 5) / 6;
    for (int r = 0; r < runs; r++) {
        double t0 = now();
        for (int u = 0; u < UNITS; u++)
            for (int c0 = 0; c0 < C; c0 += block)
                for (int i = 0; i < tiles; i++) {
                    int p0 = i * 6 < PLANE - 6 ? i * 6 : PLANE - 6;
                    float *slot = partial + (u * 128 + i) * 96;
                    tile(conv_weights + ((size_t)u * TERMS + c0 * 25) * 16, taps + c0 * 25, block * 25, p0,
                         conv_out + u * 16 * PLANE, c0 == 0 ? NULL : slot, c0 + block >= C ? NULL : slot);
                }
        t[r] = now() - t0;
    }
    qsort(t, runs, sizeof t[0], by_time);
    double flop = 2.0 * UNITS * 16 * PLANE * TERMS;
    printf("features.3 on the 6x2 tile, %2d input channels a pass: best %.2f ms (%.1f GFLOP/s), median %.2f ms\n",
           block, t[0] * 1e3, flop / t[0] / 1e9, t[runs / 2] * 1e3);
}

static void nothing(void *context, long task) { (void)context, (void)task; }

// The pool's own cost: loops too short for the worker to take a task before the caller has run them all.
static void pool_overhead(void) {
    iop_pool *pool = iop_pool_create(2);
    if (!pool) return;
    enum { runs = 15, loops = 2000 };
    double t[runs];
    for (int r = 0; r < runs; r++) {
        double t0 = now();
        for (int i = 0; i < loops; i++) iop_pool_run(pool, nothing, NULL, 8);
        t[r] = (now() - t0) / loops;
    }
    iop_pool_destroy(pool);
    qsort(t, runs, sizeof t[0], by_time);
    printf("worker pool, 2 threads, a loop of 8 empty tasks: best %.2f us, median %.2f us\n", t[0] * 1e6,
           t[runs / 2] * 1e6);
}

int main(int argc, char **argv) {
    (void)argv;
    fma_peak((float)argc);
    size_t bytes = (size_t)K * OUT * 4;
    weights = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    madvise(weights, bytes, MADV_HUGEPAGE);  // as iop's arena asks
    for (size_t i = 0; i < (size_t)K * OUT; i++) weights[i] = (float)(i % 7) * 0.1f;
    for (int i = 0; i < K; i++) input[i] = 1;
    linear_bandwidth(1);
    linear_bandwidth(2);
    conv_weights = aligned_alloc(64, (size_t)UNITS * TERMS * 16 * 4);
    for (int i = 0; i < UNITS * TERMS * 16; i++) conv_weights[i] = (float)(i % 13) * 0.01f;
    for (int i = 0; i < C * HP * HP; i++) padded[i] = (float)(i % 7) * 0.1f;
    int t = 0;
    for (int c = 0; c < C; c++)
        for (int ky = 0; ky < 5; ky++)
            for (int kx = 0; kx < 5; kx++) taps[t++] = c * HP * HP + ky * HP + kx;
    conv_5x5(64);
    conv_5x5(16);
    conv_5x5(8);
    pool_overhead();
    printf("(%g %g)\n", result[0], conv_out[0]);
    return 0;
}
