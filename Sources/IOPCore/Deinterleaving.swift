/// A vector width for kernels that read a stride-2 row: `W` holds twice `V`'s lanes, and `split` takes its
/// even and its odd lanes apart. Static members, not closures, so each width specialises and inlines: passed
/// as closures into the depthwise kernel they stayed indirect calls, one per multiply-add (3x slower than the
/// scalar loop they replaced). `fma` is written for the concrete type, where 32-bit ARM's fused NEON
/// `addProduct` (NEON32.swift) shadows the stdlib's.
protocol Deinterleaving {
    associatedtype V: SIMD where V.Scalar == Float
    associatedtype W: SIMD where W.Scalar == Float
    static func split(_ w: W) -> (V, V)
    static func fma(_ a: inout V, _ x: V, _ t: V)
}

enum Lanes16: Deinterleaving {
    @inline(__always) static func split(_ w: SIMD32<Float>) -> (SIMD16<Float>, SIMD16<Float>) {
        (w.evenHalf, w.oddHalf)
    }
    @inline(__always) static func fma(_ a: inout SIMD16<Float>, _ x: SIMD16<Float>, _ t: SIMD16<Float>) {
        a.addProduct(x, t)
    }
}

enum Lanes8: Deinterleaving {
    @inline(__always) static func split(_ w: SIMD16<Float>) -> (SIMD8<Float>, SIMD8<Float>) { (w.evenHalf, w.oddHalf) }
    @inline(__always) static func fma(_ a: inout SIMD8<Float>, _ x: SIMD8<Float>, _ t: SIMD8<Float>) {
        a.addProduct(x, t)
    }
}

enum Lanes4: Deinterleaving {
    @inline(__always) static func split(_ w: SIMD8<Float>) -> (SIMD4<Float>, SIMD4<Float>) { (w.evenHalf, w.oddHalf) }
    @inline(__always) static func fma(_ a: inout SIMD4<Float>, _ x: SIMD4<Float>, _ t: SIMD4<Float>) {
        a.addProduct(x, t)
    }
}
