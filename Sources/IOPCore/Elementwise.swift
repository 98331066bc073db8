public enum ElementwiseKernel {
    /// In-place clamp (ReLU, Clip) for activations not fused into a conv or linear layer.
    public static func clamp(_ data: UnsafeMutablePointer<Float>, count: Int, _ act: Activation) {
        let n = KVec.scalarCount
        var i = 0
        while i + n <= count { storeVec(act.apply(loadVec(data + i)), data + i); i += n }
        while i < count { data[i] = act.apply(data[i]); i += 1 }
    }

    /// In place: x = act(x + bias[c]) over CHW planes.
    public static func addBias(
        _ data: UnsafeMutablePointer<Float>, channels: Int, plane: Int, bias: UnsafePointer<Float>, _ act: Activation
    ) {
        let n = KVec.scalarCount
        for c in 0..<channels {
            let p = data + c * plane, b = bias[c], bv = KVec(repeating: b)
            var i = 0
            while i + n <= plane { storeVec(act.apply(loadVec(p + i) + bv), p + i); i += n }
            while i < plane { p[i] = act.apply(p[i] + b); i += 1 }
        }
    }

    /// out = act(a + b): a residual connection. `out` may be `a` or `b`.
    public static func add(
        _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, count: Int,
        _ act: Activation
    ) {
        let n = KVec.scalarCount
        var i = 0
        while i + n <= count { storeVec(act.apply(loadVec(a + i) + loadVec(b + i)), out + i); i += n }
        while i < count { out[i] = act.apply(a[i] + b[i]); i += 1 }
    }

    /// In place: x = act(x * scale[c] + shift[c]) over CHW planes.
    public static func scale(
        _ data: UnsafeMutablePointer<Float>, channels: Int, plane: Int, scale: UnsafePointer<Float>,
        shift: UnsafePointer<Float>, _ act: Activation
    ) {
        let n = KVec.scalarCount
        for c in 0..<channels {
            let p = data + c * plane, s = scale[c], b = shift[c], sv = KVec(repeating: s), bv = KVec(repeating: b)
            var i = 0
            while i + n <= plane { storeVec(act.apply(loadVec(p + i) * sv + bv), p + i); i += n }
            while i < plane { p[i] = act.apply(p[i] * s + b); i += 1 }
        }
    }

    /// Numerically stable softmax over `count` values `stride` apart.
    public static func softmax(
        input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, count: Int, stride: Int = 1
    ) {
        var m = -Float.infinity
        for i in 0..<count { m = max(m, input[i * stride]) }
        var s: Float = 0
        for i in 0..<count { let e = exp(input[i * stride] - m); output[i * stride] = e; s += e }
        let inv = 1 / s
        for i in 0..<count { output[i * stride] *= inv }
    }

    /// Softmax over the middle axis of an [outer, count, inner] tensor.
    public static func softmax(
        input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, count: Int, outer: Int, inner: Int
    ) {
        for o in 0..<outer {
            for i in 0..<inner {
                let at = o * count * inner + i
                softmax(input: input + at, output: output + at, count: count, stride: inner)
            }
        }
    }

    /// The logistic function: a stream's score from its model's logit. Written on e^-|x| so neither
    /// tail overflows.
    public static func sigmoid(_ x: Float) -> Float {
        let e = exp(-abs(x))
        return x >= 0 ? 1 / (1 + e) : e / (1 + e)
    }

    /// exp without libm, so the board runtime needs nothing beyond the stdlib:
    /// range reduction to 2^k * e^r with |r| <= ln2/2 and a degree-7 polynomial
    /// (relative error ~1e-7 over the float range).
    @inline(__always) static func exp(_ x: Float) -> Float {
        if x < -87.3 { return 0 }
        if x > 88.7 { return .infinity }
        let ln2: Float = 0.69314718056
        let k = (x / ln2).rounded()
        let r = x - k * ln2
        var p: Float = 1.0 / 5040
        p = p * r + 1.0 / 720
        p = p * r + 1.0 / 120
        p = p * r + 1.0 / 24
        p = p * r + 1.0 / 6
        p = p * r + 0.5
        p = p * r + 1
        p = p * r + 1
        return p * Float(sign: .plus, exponent: Int(k), significand: 1)
    }
}
