// The SIMD width the kernels are written against. Both targets have 32 vector
// registers (NEON; AVX-512VL gives x86 ymm16-31), which the 6x4-vector
// micro-kernels rely on: 24 accumulators + 4 weights + 1 broadcast.
#if arch(arm64) || arch(arm)
public typealias KVec = SIMD4<Float>
#else
public typealias KVec = SIMD8<Float>
#endif

/// Output channels one micro-kernel tile covers (4 vectors).
public let channelBlock = 4 * KVec.scalarCount
/// Output pixels one micro-kernel tile covers.
public let pixelBlock = 6

@inline(__always) func loadVec(_ p: UnsafePointer<Float>) -> KVec {
    UnsafeRawPointer(p).loadUnaligned(as: KVec.self)
}

@inline(__always) func storeVec(_ v: KVec, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: KVec.self)
}

@inline(__always) func roundUp(_ x: Int, _ m: Int) -> Int { (x + m - 1) / m * m }
