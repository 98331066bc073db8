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
        switch f {
        case .prelu:
            for c in 0..<channels {
                let a = KVec(repeating: slopes[c])
                apply(data + c * plane, count: plane) { leaky($0, a) }
            }
        case .leakyRelu(let alpha):
            let a = KVec(repeating: alpha)
            apply(data, count: channels * plane) { leaky($0, a) }
        case .sigmoid: apply(data, count: channels * plane) { sigmoid($0) }
        case .hardSigmoid(let alpha, let beta):
            let a = KVec(repeating: alpha), b = KVec(repeating: beta)
            apply(data, count: channels * plane) { unit.apply($0 * a + b) }
        case .hardSwish:
            let a = KVec(repeating: 1.0 / 6), b = KVec(repeating: 0.5)
            apply(data, count: channels * plane) { $0 * unit.apply($0 * a + b) }
        case .tanh: apply(data, count: channels * plane) { tanh($0) }
        }
    }

    static let unit = Activation(low: 0, high: 1)

    /// Whole vectors, then the tail as one vector padded with zeros: one definition of each function.
    @inline(__always) static func apply(_ p: UnsafeMutablePointer<Float>, count: Int, _ f: (KVec) -> KVec) {
        let n = KVec.scalarCount
        var i = 0
        while i < count {
            let lanes = Swift.min(n, count - i)
            storeVec(f(loadVec(p + i, lanes: lanes)), p + i, lanes: lanes)
            i += n
        }
    }

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
