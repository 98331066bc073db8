// The SIMD width the kernels are written against. The conv micro-kernel's
// register tile is chosen per target below (`convVectors`).
// `KBits` is the same width as raw bits, for kernels that build floats from their exponent.
#if arch(arm64) || arch(arm)
    public typealias KVec = SIMD4<Float>
    typealias KBits = SIMD4<UInt32>
#elseif IOP_AVX512
    public typealias KVec = SIMD16<Float>
    typealias KBits = SIMD16<UInt32>
#else
    public typealias KVec = SIMD8<Float>
    typealias KBits = SIMD8<UInt32>
#endif

// The conv micro-kernel's register tile, `pixelBlock` pixels by `convVectors`
// vectors of output channels, chosen at compile time. 6x4 needs 32 vector
// registers (24 accumulators + 4 weights + 1 broadcast): AArch64 has them, and
// so has x86 with AVX-512 (zmm0-31). AVX2 and 32-bit NEON have 16: there 6x4
// spilled 16 accumulators per reduction step. AVX2 takes 6x2 (12 accumulators +
// 2 weights + 2 broadcasts in flight), which fits only because the tile's
// reduction is one flat loop (`ConvKernel.tile`); 32-bit NEON keeps 5x2: 10
// accumulators + 5 broadcasts + 1 weight, as `cross/mca` last checked it.
#if arch(arm64) || IOP_AVX512
    public let convVectors = 4
    public let pixelBlock = 6
#elseif arch(arm)
    public let convVectors = 2
    public let pixelBlock = 5
#else
    public let convVectors = 2
    public let pixelBlock = 6
#endif

/// Output channels one conv micro-kernel tile covers (`convVectors` vectors).
public let channelBlock = convVectors * KVec.scalarCount
/// Output features one linear-kernel block covers (4 vectors).
public let linearBlock = 4 * KVec.scalarCount
/// Output channels one row-kernel tile covers (`rowPixelVectors` vectors of pixels each).
public let rowChannelBlock = 8
// Vectors of consecutive pixels per channel in the row kernel: 8 x 2 = 16 accumulators, plus two
// input vectors and a broadcast, fit AArch64's 32 vector registers, but 32-bit NEON's 16 q
// registers spilled accumulators to the stack on every tap (`cross/mca`). There one vector per
// channel keeps the loop in registers.
#if arch(arm)
    let rowPixelVectors = 1
#else
    let rowPixelVectors = 2
#endif

@inline(__always) func loadVec(_ p: UnsafePointer<Float>) -> KVec {
    UnsafeRawPointer(p).loadUnaligned(as: KVec.self)
}

@inline(__always) func storeVec(_ v: KVec, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: KVec.self)
}

/// The first `lanes` floats at `p` and zeros after: a tail shorter than a vector.
@inline(__always) func loadVec(_ p: UnsafePointer<Float>, lanes: Int) -> KVec {
    if lanes == KVec.scalarCount { return loadVec(p) }
    var v = KVec(repeating: 0)
    for k in 0..<lanes { v[k] = p[k] }
    return v
}

@inline(__always) func storeVec(_ v: KVec, _ p: UnsafeMutablePointer<Float>, lanes: Int) {
    if lanes == KVec.scalarCount { return storeVec(v, p) }
    for k in 0..<lanes { p[k] = v[k] }
}

@inline(__always) func roundUp(_ x: Int, _ m: Int) -> Int { (x + m - 1) / m * m }

/// Positions of a window of `kernel` sliding by `stride` over `extent` (padding
/// included). A window may not start inside the end padding under ceil mode
/// (ONNX / PyTorch rule). Never negative: floor division would round a negative
/// span toward zero and invent an output.
func windowCount(extent: Int, kernel: Int, stride: Int, ceil: Bool = false, endPadding: Int = 0) -> Int {
    guard stride > 0, extent >= kernel else { return 0 }
    let span = extent - kernel
    var n = (ceil ? (span + stride - 1) / stride : span / stride) + 1
    if ceil && (n - 1) * stride >= extent - endPadding { n -= 1 }
    return n
}
