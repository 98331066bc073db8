import CIOPSystem
import IOPCore
import IOPProgram

/// One kernel timed on this board: `work` in its class's unit, wall microseconds per run.
public struct KernelTiming: Sendable {
    public var kernel: KernelClass
    public var work: Double
    public var microseconds: Double
    public init(kernel: KernelClass, work: Double, microseconds: Double) {
        self.kernel = kernel; self.work = work; self.microseconds = microseconds
    }
}

/// Times the kernels a board runs, with the board's thread count, in one arena: each class at a
/// small and a large size, each size run for at least `minimumMs` of wall time. The figure is the
/// steady wall time: a board held to a share of a core is slowed as its inference will be. On one
/// thread under a quota it is the CPU time over the share (`CPUAllowance`): a window of wall time
/// holds only a few of the quota's run-and-stall cycles, so wall time there moved by a third
/// between runs.
public enum KernelProfiler {
    /// The kinds timed, two per class: small and large, shaped like the zoo's layers (the row
    /// kernel's large one at a full 224x224 image: its 12 MiB output does not stay in cache). The
    /// 3x3 kernels (blocked and Winograd) and linear layers have a third, at the size of VGG's: VGG11's 256- and
    /// 512-channel convs ran at 0.6-0.7 of the 128-channel sample's rate (`iop bench`, 2-core EPYC),
    /// and a linear layer's 64 MiB of weights stream from memory where 32 MiB may still sit in a
    /// large last-level cache (VGG11's first FC layer, 411 MB, ran at 0.67 of the 32 MiB sample's rate).
    public static let layerSamples: [LayerKind] = [
        conv(3, 64, 32, k: 3, pad: 1), conv(3, 64, 224, k: 3, pad: 1),
        conv(64, 64, 14, k: 3, pad: 1), conv(128, 128, 28, k: 3, pad: 1), conv(256, 256, 28, k: 3, pad: 1),
        conv(64, 64, 14, k: 3, pad: 1, algorithm: .winograd), conv(128, 128, 28, k: 3, pad: 1, algorithm: .winograd),
        conv(256, 256, 28, k: 3, pad: 1, algorithm: .winograd),
        conv(64, 64, 14, k: 1, pad: 0), conv(256, 256, 28, k: 1, pad: 0),
        conv(3, 64, 63, k: 11, pad: 2, stride: 4), conv(3, 64, 227, k: 11, pad: 2, stride: 4),
        conv(64, 64, 28, k: 3, pad: 1, groups: 64), conv(256, 256, 56, k: 3, pad: 1, groups: 256),
        .linear(LinearGeometry(inFeatures: 1024, outFeatures: 256), .relu),
        .linear(LinearGeometry(inFeatures: 4096, outFeatures: 2048), .relu),
        .linear(LinearGeometry(inFeatures: 4096, outFeatures: 4096), .relu),
        .maxPool(PoolGeometry(channels: 64, inHeight: 28, inWidth: 28, kernelH: 2, kernelW: 2, strideH: 2, strideW: 2)),
        .maxPool(
            PoolGeometry(channels: 64, inHeight: 112, inWidth: 112, kernelH: 2, kernelW: 2, strideH: 2, strideW: 2)),
        // Overlapping 3x3 windows (AlexNet, ResNet's stem) take another path, at under half the 2x2 one's rate.
        .maxPool(PoolGeometry(channels: 64, inHeight: 55, inWidth: 55, kernelH: 3, kernelW: 3, strideH: 2, strideW: 2)),
        .addBias(channels: 64, plane: 28 * 28, .relu), .addBias(channels: 64, plane: 112 * 112, .relu),
    ]
    /// Elements added (reduction) and bytes moved (copy), small and large.
    public static let reductionSamples = [16 * 1024, 1024 * 1024]
    public static let copySamples = [64 * 1024, 4 * 1024 * 1024]

    static func conv(
        _ ci: Int, _ co: Int, _ size: Int, k: Int, pad: Int, stride: Int = 1, groups: Int = 1,
        algorithm: ConvAlgorithm = .direct
    ) -> LayerKind {
        .conv(
            ConvGeometry(
                inChannels: ci, inHeight: size, inWidth: size, outChannels: co, kernelH: k, kernelW: k,
                strideH: stride, strideW: stride, padTop: pad, padLeft: pad, padBottom: pad, padRight: pad,
                groups: groups, algorithm: algorithm), .relu)
    }

    /// Every sample, in class order; `progress` hears each timing as it is taken.
    public static func measure(
        threads: Int, minimumMs: Int, share: Double = 1, progress: (KernelTiming) -> Void
    ) throws(CoreError) -> [KernelTiming] {
        var layouts: [(op: Op, floats: Int)] = []
        for kind in layerSamples {
            var layout = ArenaLayout()
            _ = layout.chain([kind])
            let (ops, floats) = layout.finish()
            layouts.append((ops[0], floats))
        }
        let streamFloats = 2 * max(reductionSamples.max()!, copySamples.max()! / 4)
        let arenaFloats = max(layouts.reduce(0) { max($0, $1.floats) }, streamFloats)
        let engine = try Engine(arenaFloats: arenaFloats, threads: threads)
        let minimumNs = UInt64(max(1, minimumMs)) * 1_000_000
        // Several threads under one quota share it in ways one share figure does not describe: wall time.
        let byCPU = threads == 1 && share < 0.95
        var timings: [KernelTiming] = []
        func record(_ kernel: KernelClass, _ work: Double, _ body: () -> Void) {
            let t = KernelTiming(
                kernel: kernel, work: work, microseconds: steadyMicroseconds(minimumNs, share: byCPU ? share : 1, body))
            timings.append(t)
            progress(t)
        }
        for (op, floats) in layouts {
            // Written, not just mapped: untouched pages all read the one zero page, which would make
            // a memory-bound kernel look as fast as its cache.
            engine.floats(at: 0).update(repeating: 0.001, count: floats)
            record(KernelClass(op.kind), KernelClass.work(op.kind)) { engine.run(op) }
        }
        let a = engine.floats(at: 0)
        a.update(repeating: 0.001, count: streamFloats)
        for n in reductionSamples {
            let b = UnsafePointer(a + streamFloats / 2)
            record(.reduction, Double(n)) { BoardPart.Output.partialSum.place(b, count: n, into: a) }
        }
        for bytes in copySamples {
            let b = UnsafePointer(a + streamFloats / 2)
            record(.copy, Double(bytes)) { BoardPart.Output.all.place(b, count: bytes / 4, into: a) }
        }
        // Both directions of the wire's fp16 conversion, timed as one class: per byte of fp32.
        for bytes in copySamples {
            let b = UnsafeMutableRawPointer(a + streamFloats / 2)
            record(.fp16, Double(bytes)) { Half.narrow(a, count: bytes / 4, into: b) }
            record(.fp16, Double(bytes)) { Half.widen(b, count: bytes / 4, into: a) }
        }
        return timings
    }

    /// Steady wall microseconds per run of `body`: the median of three windows of at least a third
    /// of `minimumNs` and two runs each (a burst of another process's memory traffic spoils one
    /// window, not the figure), after warming up for 60 ms: longer than a quota period, so a throttled
    /// board has spent its burst (`CPUAllowance`) and the rate is the steady one. With `share` < 1 a
    /// window's time is the process's CPU time over the share.
    static func steadyMicroseconds(_ minimumNs: UInt64, share: Double, _ body: () -> Void) -> Double {
        let warm = iop_monotonic_ns()
        repeat { body() } while iop_monotonic_ns() - warm < 60_000_000
        var windows: [Double] = []
        for _ in 0..<3 {
            let start = iop_monotonic_ns(), cpu = iop_process_cpu_ns()
            var runs = 0
            var elapsed: UInt64 = 0
            while runs < 2 || elapsed < minimumNs / 3 {
                body()
                runs += 1
                elapsed = iop_monotonic_ns() - start
            }
            let ns = share < 1 ? Double(iop_process_cpu_ns() - cpu) / share : Double(elapsed)
            windows.append(ns / 1e3 / Double(runs))
        }
        return windows.sorted()[1]
    }

    /// One fit per class measured, in `KernelClass.allCases` order.
    public static func fits(_ timings: [KernelTiming]) -> [(KernelClass, KernelFit)] {
        var result: [(KernelClass, KernelFit)] = []
        for kernel in KernelClass.allCases {
            let mine = timings.filter { $0.kernel == kernel }
            if !mine.isEmpty {
                result.append(
                    (kernel, KernelFit.through(work: mine.map { $0.work }, microseconds: mine.map { $0.microseconds })))
            }
        }
        return result
    }
}
