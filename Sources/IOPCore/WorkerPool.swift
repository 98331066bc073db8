import CIOPThreads

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

    /// Calls `body(t)` for every t in 0..<tasks, on the pool's threads. Allocates nothing.
    public func parallelFor(_ tasks: Int, _ body: (Int) -> Void) {
        if tasks <= 0 { return }
        if threads == 1 || tasks == 1 {
            for t in 0..<tasks { body(t) }
            return
        }
        withoutActuallyEscaping(body) { escapable in
            var closure = escapable
            withUnsafeMutablePointer(to: &closure) { ctx in
                iop_pool_run(pool, { raw, t in
                    raw!.assumingMemoryBound(to: ((Int) -> Void).self).pointee(Int(t))
                }, UnsafeMutableRawPointer(ctx), tasks)
            }
        }
    }
}
