import CIOPThreads

/// A unit of parallel work: `run(t)` for every t in 0..<tasks. Kernels state
/// their loops as small structs rather than closures because handing a Swift
/// closure to C (withoutActuallyEscaping) costs heap allocations per call, and
/// inference must allocate nothing.
public protocol ParallelTask {
    func run(_ task: Int)
}

/// The fixed set of threads kernels split their work over; created once per engine.
public final class WorkerPool {
    private let pool: OpaquePointer
    public let threads: Int

    public init(threads: Int) throws(CoreError) {
        guard let p = iop_pool_create(Int32(max(1, threads))) else {
            throw .threadStartFailed(threads: threads)
        }
        pool = p
        self.threads = Int(iop_pool_threads(p))
    }

    deinit { iop_pool_destroy(pool) }

    /// Runs `work.run(t)` for every t in 0..<tasks on the pool's threads.
    public func parallelFor<Work: ParallelTask>(_ tasks: Int, _ work: Work) {
        if tasks <= 0 { return }
        if threads == 1 || tasks == 1 {
            for t in 0..<tasks { work.run(t) }
            return
        }
        withUnsafePointer(to: work) { w in
            // Specialised per Work type, this closure captures nothing: no context to allocate.
            var job = Job(
                work: UnsafeRawPointer(w), invoke: { raw, t in raw.assumingMemoryBound(to: Work.self).pointee.run(t) })
            withUnsafeMutablePointer(to: &job) { iop_pool_run(pool, runJob, UnsafeMutableRawPointer($0), tasks) }
        }
    }
}

struct Job {
    var work: UnsafeRawPointer
    var invoke: (UnsafeRawPointer, Int) -> Void
}

private func runJob(_ raw: UnsafeMutableRawPointer?, _ task: Int) {
    let job = raw!.assumingMemoryBound(to: Job.self)
    job.pointee.invoke(job.pointee.work, task)
}
