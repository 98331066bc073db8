/// A vector width for the depthwise kernel's rows, down to four lanes for a row narrower than `KVec`: `V`
/// itself, `W` with twice its lanes for stride-2 rows (`split` takes its even and its odd lanes apart), and
/// the multiply-add and clamp written for the concrete type. Static members, not closures or generic calls,
/// so each width specialises and inlines: passed as closures into the stride-2 kernel they stayed indirect
/// calls, one per multiply-add (3x slower than the scalar loop they replaced); reached from generic code,
/// the activation's compare-and-select went lane by lane (ReLU6 made MobileNetV2's stride-2 depthwise convs
/// 1.7x slower). On 32-bit ARM, `fma` reaches the fused NEON `addProduct` (NEON32.swift) that shadows the
/// stdlib's for SIMD4.
protocol LaneWidth {
    associatedtype V: SIMD where V.Scalar == Float
    associatedtype W: SIMD where W.Scalar == Float
    static func split(_ w: W) -> (V, V)
    static func fma(_ a: inout V, _ x: V, _ t: V)
    static func clamp(_ v: V, _ act: Activation) -> V
}

enum Lanes16: LaneWidth {
    @inline(__always) static func split(_ w: SIMD32<Float>) -> (SIMD16<Float>, SIMD16<Float>) {
        (w.evenHalf, w.oddHalf)
    }
    @inline(__always) static func fma(_ a: inout SIMD16<Float>, _ x: SIMD16<Float>, _ t: SIMD16<Float>) {
        a.addProduct(x, t)
    }
    @inline(__always) static func clamp(_ v: SIMD16<Float>, _ act: Activation) -> SIMD16<Float> { act.apply(v) }
}

enum Lanes8: LaneWidth {
    @inline(__always) static func split(_ w: SIMD16<Float>) -> (SIMD8<Float>, SIMD8<Float>) { (w.evenHalf, w.oddHalf) }
    @inline(__always) static func fma(_ a: inout SIMD8<Float>, _ x: SIMD8<Float>, _ t: SIMD8<Float>) {
        a.addProduct(x, t)
    }
    @inline(__always) static func clamp(_ v: SIMD8<Float>, _ act: Activation) -> SIMD8<Float> { act.apply(v) }
}

enum Lanes4: LaneWidth {
    @inline(__always) static func split(_ w: SIMD8<Float>) -> (SIMD4<Float>, SIMD4<Float>) { (w.evenHalf, w.oddHalf) }
    @inline(__always) static func fma(_ a: inout SIMD4<Float>, _ x: SIMD4<Float>, _ t: SIMD4<Float>) {
        a.addProduct(x, t)
    }
    @inline(__always) static func clamp(_ v: SIMD4<Float>, _ act: Activation) -> SIMD4<Float> { act.apply(v) }
}

/// The kernels' own width (`KVec`) as a `LaneWidth`.
#if arch(arm64) || arch(arm)
    typealias KLanes = Lanes4
#elseif IOP_AVX512
    typealias KLanes = Lanes16
#else
    typealias KLanes = Lanes8
#endif
