// Counts heap allocations made by this process while counting is on, by
// interposing malloc and friends (glibc). In the spirit of swift-nio's
// allocation-counter tests: the count is exact, not sampled.
#ifndef ALLOC_COUNTER_H
#define ALLOC_COUNTER_H
void iop_alloc_counter_start(void);
/// Stops counting and returns the allocations seen since start.
long iop_alloc_counter_stop(void);
#endif
