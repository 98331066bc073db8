// Counts heap allocations by interposing malloc and friends (glibc), in the
// spirit of swift-nio's allocation-counter tests: exact, not sampled. A
// counting session runs from `iop_alloc_counter_reset_rendezvous` to
// `iop_alloc_counter_leave` on the same thread, one session at a time in the
// process (the others wait), and only threads enrolled in the current session
// are counted, so tests running in parallel do not disturb one another's figures.
#ifndef ALLOC_COUNTER_H
#define ALLOC_COUNTER_H
/// Enrols the calling thread, then waits until `parties` threads have enrolled
/// since the last reset (so a pool's every worker takes exactly one task).
void iop_alloc_counter_enroll(int parties);
/// Stops counting the calling thread (test threads are shared between tests) and ends the session.
void iop_alloc_counter_leave(void);
/// Starts a session: waits for any other to end, forgets the rendezvous count; threads enrolled
/// before it no longer count.
void iop_alloc_counter_reset_rendezvous(void);
void iop_alloc_counter_start(void);
/// Stops counting and returns the allocations enrolled threads made since start.
long iop_alloc_counter_stop(void);
#endif
