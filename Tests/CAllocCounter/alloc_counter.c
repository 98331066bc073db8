#define _GNU_SOURCE
#include "alloc_counter.h"
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <string.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

static atomic_int counting;
static atomic_long count;
static atomic_int arrived;
// One counting session at a time in the process (tests run in parallel, and a thread enrolled by one
// test, such as a node's worker, may still allocate while another counts); a thread counts only for
// the session it enrolled in.
static pthread_mutex_t session_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_long session;
static _Thread_local long enrolled;

static inline void note(void) {
    if (enrolled && atomic_load_explicit(&counting, memory_order_relaxed)
        && enrolled == atomic_load_explicit(&session, memory_order_relaxed))
        atomic_fetch_add_explicit(&count, 1, memory_order_relaxed);
}

void iop_alloc_counter_enroll(int parties) {
    enrolled = atomic_load(&session);
    atomic_fetch_add(&arrived, 1);
    while (atomic_load(&arrived) < parties) { }
}

void iop_alloc_counter_leave(void) {
    enrolled = 0;
    atomic_store(&counting, 0);
    pthread_mutex_unlock(&session_lock);
}

void iop_alloc_counter_reset_rendezvous(void) {
    pthread_mutex_lock(&session_lock);
    atomic_fetch_add(&session, 1);
    atomic_store(&arrived, 0);
}
void iop_alloc_counter_start(void) { atomic_store(&count, 0); atomic_store(&counting, 1); }
long iop_alloc_counter_stop(void) { atomic_store(&counting, 0); return atomic_load(&count); }
void *malloc(size_t n) { note(); return __libc_malloc(n); }
void *calloc(size_t a, size_t b) { note(); return __libc_calloc(a, b); }
void *realloc(void *p, size_t n) { note(); return __libc_realloc(p, n); }
void free(void *p) { __libc_free(p); }
void *memalign(size_t a, size_t n) { note(); return __libc_memalign(a, n); }
void *aligned_alloc(size_t a, size_t n) { note(); return __libc_memalign(a, n); }
int posix_memalign(void **out, size_t a, size_t n) {
    note();
    void *p = __libc_memalign(a, n);
    if (!p) return ENOMEM;
    *out = p;
    return 0;
}
