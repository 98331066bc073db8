// Counts heap allocations by interposing malloc and friends (glibc), in the
// spirit of swift-nio's allocation-counter tests: exact, not sampled. Only
// enrolled threads are counted, so tests running in parallel do not disturb
// one another's figures.
#ifndef ALLOC_COUNTER_H
#define ALLOC_COUNTER_H
/// Enrols the calling thread, then waits until `parties` threads have enrolled
/// since the last reset (so a pool's every worker takes exactly one task).
void iop_alloc_counter_enroll(int parties);
/// Stops counting the calling thread (test threads are shared between tests).
void iop_alloc_counter_leave(void);
/// Forgets the rendezvous count (enrolled threads stay enrolled).
void iop_alloc_counter_reset_rendezvous(void);
void iop_alloc_counter_start(void);
/// Stops counting and returns the allocations enrolled threads made since start.
long iop_alloc_counter_stop(void);
#endif
