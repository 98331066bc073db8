// The SIMD width the kernels are written against.
#if arch(arm64) || arch(arm)
    public typealias KVec = SIMD4<Float>
#elseif IOP_AVX512
    public typealias KVec = SIMD16<Float>
#else
    public typealias KVec = SIMD8<Float>
#endif

/// Output channels one micro-kernel tile covers (4 vectors).
public let channelBlock = 4 * KVec.scalarCount
/// Output channels one row-kernel tile covers (2 vectors of pixels each).
public let rowChannelBlock = 8
// Output pixels one micro-kernel tile covers, by 4 vectors of channels. A 6x4
// tile needs 32 vector registers (24 accumulators + 4 weights + 1 broadcast):
// AArch64 has them, and so has x86 with AVX-512 (zmm0-31). AVX2 and 32-bit NEON
// have 16, where 6x4 spilled 16 accumulators on every reduction step (and 6x2
// still spilled: LLVM keeps all six broadcasts live), so they take 3x4: 12
// accumulators + 3 broadcasts + 1 weight. Chosen at compile time; the channel
// block, and so the weight packing, is the same on every target.
#if arch(arm64) || IOP_AVX512
    public let pixelBlock = 6
#else
    public let pixelBlock = 3
#endif

@inline(__always) func loadVec(_ p: UnsafePointer<Float>) -> KVec {
    UnsafeRawPointer(p).loadUnaligned(as: KVec.self)
}

@inline(__always) func storeVec(_ v: KVec, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: KVec.self)
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
