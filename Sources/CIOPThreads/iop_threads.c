#include "iop_threads.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

// The low half of `claim` between loops: above every task index, so nothing can be claimed.
#define CLOSED UINT32_MAX

struct iop_pool {
    int threads;
    pthread_t *workers;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_cond_t done;
    unsigned long generation;   // under `lock`: bumped once per loop; sleeping workers wait for a change
    int stopping;               // under `lock`
    // The current loop. A worker reads these only after seeing the loop open in `claim`, and runs a task
    // only if its claim succeeds, which it cannot once the caller has moved on to another loop.
    _Atomic(iop_task_fn) fn;
    _Atomic(void *) context;
    atomic_long tasks;
    // (loop number << 32) | next unclaimed task. Claiming is a compare-and-swap on the whole word, so a
    // worker that wakes late, after its loop is over, claims nothing rather than a task of the next loop.
    _Atomic uint64_t claim;
    atomic_long finished;       // tasks of the current loop run to the end
};

// Runs tasks of the open loop until none is left unclaimed.
static void drain(iop_pool *p) {
    uint64_t c = atomic_load_explicit(&p->claim, memory_order_acquire);
    for (;;) {
        // Acquire: a `tasks` of a later loop than `c`'s orders the caller's close of `c`'s loop before the
        // exchange below, so the exchange fails.
        long tasks = atomic_load_explicit(&p->tasks, memory_order_acquire);
        long t = (long)(uint32_t)c;
        if (t >= tasks) return;
        if (!atomic_compare_exchange_weak_explicit(
                &p->claim, &c, c + 1, memory_order_acquire, memory_order_acquire))
            continue;
        iop_task_fn fn = atomic_load_explicit(&p->fn, memory_order_relaxed);
        fn(atomic_load_explicit(&p->context, memory_order_relaxed), t);
        if (atomic_fetch_add_explicit(&p->finished, 1, memory_order_acq_rel) + 1 == tasks) {
            // The caller may be asleep waiting for this last task (a spurious signal to a later loop is harmless).
            pthread_mutex_lock(&p->lock);
            pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->lock);
        }
        c = atomic_load_explicit(&p->claim, memory_order_acquire);
    }
}

static void *worker_main(void *arg) {
    iop_pool *p = arg;
    unsigned long seen = 0;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (p->generation == seen && !p->stopping) pthread_cond_wait(&p->wake, &p->lock);
        if (p->stopping) break;
        seen = p->generation;
        pthread_mutex_unlock(&p->lock);
        drain(p);
        pthread_mutex_lock(&p->lock);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

iop_pool *iop_pool_create(int threads) {
    if (threads < 1) threads = 1;
    iop_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->threads = threads;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    atomic_init(&p->fn, NULL);
    atomic_init(&p->context, NULL);
    atomic_init(&p->tasks, 0);
    atomic_init(&p->claim, CLOSED);
    atomic_init(&p->finished, 0);
    if (threads > 1) {
        p->workers = calloc((size_t)threads - 1, sizeof(pthread_t));
        if (!p->workers) { free(p); return NULL; }
        for (int i = 0; i < threads - 1; i++) {
            if (pthread_create(&p->workers[i], NULL, worker_main, p) != 0) {
                p->threads = i + 1;
                iop_pool_destroy(p);
                return NULL;
            }
        }
    }
    return p;
}

// The caller waits for tasks a worker has claimed, never for a worker to wake: a worker descheduled
// (another process on the core, a throttled board's CPU quota) or slow to wake only leaves its share to
// the caller, where waiting for every worker to check in stalled each loop by its wake-up latency.
void iop_pool_run(iop_pool *p, iop_task_fn fn, void *context, long tasks) {
    if (tasks <= 0) return;
    if (p->threads == 1 || tasks == 1) {
        for (long t = 0; t < tasks; t++) fn(context, t);
        return;
    }
    uint64_t loop = (atomic_load_explicit(&p->claim, memory_order_relaxed) >> 32) + 1;
    // Close the last loop before its fields change; the release store of `tasks` orders the close first.
    atomic_store_explicit(&p->claim, (loop << 32) | CLOSED, memory_order_relaxed);
    atomic_store_explicit(&p->fn, fn, memory_order_relaxed);
    atomic_store_explicit(&p->context, context, memory_order_relaxed);
    atomic_store_explicit(&p->finished, 0, memory_order_relaxed);
    atomic_store_explicit(&p->tasks, tasks, memory_order_release);
    atomic_store_explicit(&p->claim, loop << 32, memory_order_release);
    pthread_mutex_lock(&p->lock);
    p->generation++;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    drain(p);
    if (atomic_load_explicit(&p->finished, memory_order_acquire) < tasks) {
        pthread_mutex_lock(&p->lock);
        while (atomic_load_explicit(&p->finished, memory_order_acquire) < tasks)
            pthread_cond_wait(&p->done, &p->lock);
        pthread_mutex_unlock(&p->lock);
    }
}

int iop_pool_threads(const iop_pool *p) { return p->threads; }

void iop_pool_destroy(iop_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->lock);
    p->stopping = 1;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < p->threads - 1; i++) pthread_join(p->workers[i], NULL);
    free(p->workers);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    free(p);
}

void *iop_arena_allocate(unsigned long bytes) {
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
#ifdef MADV_HUGEPAGE
    // Transparent huge pages where the kernel gives them only on request (THP "madvise", as on this
    // Debian machine): the linear layers stream their weights, hundreds of MB for AlexNet and VGG, through
    // the TLB once per inference, and 2 MB pages streamed 151 MB about 12 % faster than 4 KB ones (AMD EPYC:
    // 18 against 16 GB/s; AlexNet's 9216x4096 layer 8.0 against 9.3 ms). Advice only: a kernel without
    // THP refuses it, and the arena works the same.
    madvise(p, bytes, MADV_HUGEPAGE);
#endif
    return p;
}

void iop_arena_prefault(void *arena, unsigned long bytes) {
    volatile unsigned char *p = arena;
    for (unsigned long at = 0; at < bytes; at += 4096) p[at] = 0;
}

void iop_arena_free(void *arena, unsigned long bytes) {
    if (arena) munmap(arena, bytes);
}
