// What the board runtime's core needs from the system: a fixed pool of worker
// threads, created once and reused for every parallel loop, so an inference
// never creates a thread; and the memory of a node's one arena. The header
// includes nothing so Embedded Swift can import it for a bare-metal target;
// pthreads and mmap stay in the .c.
#ifndef IOP_THREADS_H
#define IOP_THREADS_H

typedef struct iop_pool iop_pool;
typedef void (*iop_task_fn)(void *context, long task);

/// Starts `threads - 1` workers (the caller is the last one). NULL on failure.
iop_pool *iop_pool_create(int threads);
/// Runs fn(context, t) for t in [0, tasks), spread over the pool; returns when all are done.
/// Not reentrant: one loop at a time per pool.
void iop_pool_run(iop_pool *pool, iop_task_fn fn, void *context, long tasks);
int iop_pool_threads(const iop_pool *pool);
void iop_pool_destroy(iop_pool *pool);

/// `bytes` of zeroed, page-aligned memory for an arena (an anonymous mapping, so pages
/// are only backed once touched). NULL when the system refuses it: the caller reports
/// that instead of trapping.
void *iop_arena_allocate(unsigned long bytes);
void iop_arena_free(void *arena, unsigned long bytes);
/// Backs every page of an arena now (writing the zero each already holds), so loading it faults none.
void iop_arena_prefault(void *arena, unsigned long bytes);

#endif
