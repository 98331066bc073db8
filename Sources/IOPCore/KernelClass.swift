/// Which kernel a piece of work runs, as a board's profile times it (`iop-node profile`) and the
/// planner looks it up: one class per code path whose speed differs, not one GFLOP/s per board.
/// Each class's time grows with one measure of work (`workUnit`): multiply-adds for convs, weight
/// bytes for linear layers (they stream their weights once: memory-bound), elements for the rest.
public enum KernelClass: String, CaseIterable, Sendable {
    /// Stride-1 conv with a short reduction (an image's first layer): the row kernel.
    case convRow = "conv_row"
    /// Stride-1 conv with a kernel larger than 1x1 (3x3, 5x5): the blocked kernel.
    case conv3x3 = "conv_3x3"
    /// A 3x3 stride-1 conv by Winograd F(4x4, 3x3) (`--conv winograd|auto`). Its work is counted as the direct
    /// conv's multiply-adds, so its rate is the direct-equivalent one: 2-4 times the blocked kernel's on VGG's
    /// layers, and not a multiple of it (the transforms' cost grows with the tiles, not the channels).
    case convWinograd = "conv_winograd"
    case conv1x1 = "conv_1x1"
    /// A conv with stride > 1 (not the row kernel): the blocked kernel reading a strided window. A ConvTranspose
    /// too: it gathers through strided taps.
    case convStrided = "conv_strided"
    case convDepthwise = "conv_depthwise"
    case linear = "linear"
    /// Max and average pools, and global average pooling.
    case pool = "pool"
    /// In-place clamps and bias-plus-activation (the end of a reduction), softmax, residual adds and
    /// per-channel scales.
    case elementwise = "elementwise"
    /// The leader adding a partial sum into the assembled tensor.
    case reduction = "reduction"
    /// Moving a received activation (or a worker's input slice) from one buffer to another; concatenation.
    case copy = "copy"
    /// Narrowing fp32 to fp16 for the wire, or widening it back (`Half`), per byte of fp32.
    case fp16 = "fp16"

    public enum WorkUnit: String, Sendable {
        case flop, byte, element
    }

    public var workUnit: WorkUnit {
        switch self {
        case .convRow, .conv3x3, .convWinograd, .conv1x1, .convStrided, .convDepthwise: return .flop
        case .linear, .copy, .fp16: return .byte
        case .pool, .elementwise, .reduction: return .element
        }
    }

    /// The class of the kernel `Engine.run` picks for `kind`.
    public init(_ kind: LayerKind) {
        switch kind {
        case .conv(let g, _):
            if g.usesWinograd {
                self = .convWinograd
            } else if g.isDepthwise {
                self = .convDepthwise
            } else if g.usesRowKernel {
                self = .convRow
            } else if g.strideH > 1 || g.strideW > 1 {
                self = .convStrided
            } else if g.kernelH == 1 && g.kernelW == 1 {
                self = .conv1x1
            } else {
                self = .conv3x3
            }
        case .convTranspose: self = .convStrided
        case .linear: self = .linear
        case .maxPool, .averagePool, .globalAveragePool, .globalMaxPool: self = .pool
        case .clamp, .addBias, .softmax, .add, .scale, .pointwise, .lrn: self = .elementwise
        case .concat, .pad, .upsample, .channelShuffle: self = .copy
        }
    }

    /// The work `kind` does in this class's unit.
    public static func work(_ kind: LayerKind) -> Double {
        switch kind {
        case .linear(let g, _): return Double(4 * g.inFeatures * g.outFeatures)
        case .maxPool, .averagePool, .globalAveragePool, .globalMaxPool: return Double(kind.flops)
        case .clamp, .addBias, .add, .scale: return Double(kind.outputCount)
        // A clamp's unit per element; sigmoid, tanh, softmax and LRN cost their exp.
        case .softmax: return Double(kind.flops / 2)
        case .pointwise, .lrn: return Double(kind.flops / 2)
        case .concat, .pad, .upsample, .channelShuffle: return Double(4 * kind.outputCount)
        case .conv, .convTranspose: return Double(kind.flops)
        }
    }
}

/// A class's time as the planner uses it: `overhead_us + work / (gigaPerSecond * 1e3)` microseconds.
/// Two sizes per class separate the fixed cost of a call (dispatch to the threads, padding a small
/// input) from its rate, so a board's slice of a layer is costed at its own size.
public struct KernelFit: Sendable, Equatable {
    public var overheadUs: Double
    public var gigaPerSecond: Double
    public init(overheadUs: Double, gigaPerSecond: Double) {
        self.overheadUs = overheadUs; self.gigaPerSecond = gigaPerSecond
    }

    public func microseconds(work: Double) -> Double { overheadUs + work / (gigaPerSecond * 1e3) }

    /// The least-squares line through the timings; a negative intercept or slope (noise) becomes
    /// no overhead and the rate of the timings taken together.
    public static func through(work: [Double], microseconds: [Double]) -> KernelFit {
        let n = Double(work.count)
        var sw = 0.0, st = 0.0, sww = 0.0, swt = 0.0
        for (w, t) in zip(work, microseconds) {
            sw += w; st += t; sww += w * w; swt += w * t
        }
        let det = n * sww - sw * sw
        var slope = det > 0 ? (n * swt - sw * st) / det : 0
        var intercept = (st - slope * sw) / n
        if slope <= 0 || intercept < 0 {
            intercept = 0
            slope = st / sw
        }
        return KernelFit(overheadUs: intercept, gigaPerSecond: 1 / (slope * 1e3))
    }
}
