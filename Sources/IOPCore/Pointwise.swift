/// One function on a vector of lanes.
protocol Lanewise {
    func callAsFunction(_ v: KVec) -> KVec
}

/// An element-wise function that is not a clamp: LeakyRelu, PRelu, Sigmoid, HardSigmoid, HardSwish
/// and Tanh as ONNX defines them. Clamps (ReLU, Clip) stay an `Activation`, fused into the conv's
/// store; these run as a layer of their own, in place, channel-local like a clamp.
public enum PointwiseFunction: Equatable, Sendable {
    /// x < 0: alpha * x (also PRelu with one slope).
    case leakyRelu(alpha: Float)
    /// x < 0: slope[channel] * x, the slopes as the layer's weights.
    case prelu
    case sigmoid
    /// max(0, min(1, alpha * x + beta)).
    case hardSigmoid(alpha: Float, beta: Float)
    /// x * max(0, min(1, x / 6 + 1 / 2)).
    case hardSwish
    case tanh

    /// Whether the function reads one parameter per channel (the layer's weights).
    public var hasSlopes: Bool { self == .prelu }
}

public enum PointwiseKernel {
    /// In place over CHW planes; `slopes` (one per channel) is read by PRelu only.
    public static func run(
        _ data: UnsafeMutablePointer<Float>, channels: Int, plane: Int, _ f: PointwiseFunction,
        slopes: UnsafePointer<Float>
    ) {
        let count = channels * plane
        switch f {
        case .prelu:
            for c in 0..<channels { apply(data + c * plane, count: plane, Leaky(a: KVec(repeating: slopes[c]))) }
        case .leakyRelu(let alpha): apply(data, count: count, Leaky(a: KVec(repeating: alpha)))
        case .sigmoid: apply(data, count: count, Sigmoid())
        case .hardSigmoid(let alpha, let beta):
            apply(data, count: count, HardSigmoid(a: KVec(repeating: alpha), b: KVec(repeating: beta)))
        case .hardSwish: apply(data, count: count, HardSwish())
        case .tanh: apply(data, count: count, Tanh())
        }
    }

    /// Whole vectors, then the tail as one vector padded with zeros: one definition of each function.
    /// Generic rather than a closure so each function is specialized into its own loop.
    @inline(__always) static func apply<F: Lanewise>(_ p: UnsafeMutablePointer<Float>, count: Int, _ f: F) {
        let n = KVec.scalarCount
        var i = 0
        while i + n <= count { storeVec(f(loadVec(p + i)), p + i); i += n }
        if i < count { storeVec(f(loadVec(p + i, lanes: count - i)), p + i, lanes: count - i) }
    }

    struct Leaky: Lanewise {
        let a: KVec
        @inline(__always) func callAsFunction(_ v: KVec) -> KVec { leaky(v, a) }
    }
    struct Sigmoid: Lanewise {
        @inline(__always) func callAsFunction(_ v: KVec) -> KVec { sigmoid(v) }
    }
    struct HardSigmoid: Lanewise {
        let a: KVec, b: KVec
        @inline(__always) func callAsFunction(_ v: KVec) -> KVec { unit(v * a + b) }
    }
    struct HardSwish: Lanewise {
        @inline(__always) func callAsFunction(_ v: KVec) -> KVec {
            v * unit(v * KVec(repeating: 1.0 / 6) + KVec(repeating: 0.5))
        }
    }
    struct Tanh: Lanewise {
        @inline(__always) func callAsFunction(_ v: KVec) -> KVec { tanh(v) }
    }

    /// max(0, min(1, v)).
    @inline(__always) static func unit(_ v: KVec) -> KVec { Activation(low: 0, high: 1).apply(v) }

    @inline(__always) static func leaky(_ v: KVec, _ a: KVec) -> KVec { v.replacing(with: v * a, where: v .< 0) }

    @inline(__always) static func magnitude(_ v: KVec) -> KVec { v.replacing(with: -v, where: v .< 0) }

    /// Written on e^-|x| so neither tail overflows (as `ElementwiseKernel.sigmoid`).
    @inline(__always) static func sigmoid(_ v: KVec) -> KVec {
        let e = VectorMath.exp(-magnitude(v)), s = 1 / (1 + e)
        return s.replacing(with: e * s, where: v .< 0)
    }

    /// sign(x) (1 - e^-2|x|) / (1 + e^-2|x|).
    @inline(__always) static func tanh(_ v: KVec) -> KVec {
        let e = VectorMath.exp(-2 * magnitude(v)), t = (1 - e) / (1 + e)
        return t.replacing(with: -t, where: v .< 0)
    }
}
