import IOPCore
import Testing

/// The pool runs every task of every loop exactly once, however late a worker wakes: the caller no
/// longer waits for workers to check in, so a worker that wakes after its loop is over must claim
/// nothing, neither of that loop nor of the next one (whose tasks and function it would then mix up).
@Suite struct WorkerPoolTests {
    /// Counts its runs per task; the busy work is uneven across tasks and loops, so loops end with a
    /// worker still running a task, still asleep, or just waking.
    struct Count: ParallelTask {
        let runs: UnsafeMutablePointer<Int>, sink: UnsafeMutablePointer<Int>, spin: Int
        func run(_ task: Int) {
            var x = 0
            for i in 0..<(task * 7919 % (spin + 1)) { x &+= i ^ task }
            sink[task] = x
            runs[task] += 1
        }
    }

    @Test(arguments: [2, 3, 4])
    func everyTaskOfEveryLoopRunsOnce(threads: Int) throws {
        let pool = try WorkerPool(threads: threads)
        let slots = 310
        let runs = UnsafeMutablePointer<Int>.allocate(capacity: slots)
        let sink = UnsafeMutablePointer<Int>.allocate(capacity: slots)
        defer { runs.deallocate(); sink.deallocate() }
        var wrong = 0
        for loop in 0..<3000 {
            // Fewer tasks than threads every third loop; a long loop every fifth.
            let tasks = 1 + loop * 37 % (loop % 3 == 0 ? 3 : 300)
            runs.initialize(repeating: 0, count: slots)
            pool.parallelFor(tasks, Count(runs: runs, sink: sink, spin: loop % 5 == 0 ? 20000 : 50))
            for t in 0..<slots where runs[t] != (t < tasks ? 1 : 0) { wrong += 1 }
        }
        #expect(wrong == 0)
    }
}
