// The conv micro-kernel's epilogue on 16-lane vectors (AVX-512). A tile holds 6 pixels by 64 channels
// as one vector of channels per pixel, and CHW output wants each channel's pixels side by side: stored
// lane by lane that is 384 single-float stores per tile (two micro-ops each), about as many instructions
// as a 64-channel 1x1 conv's whole reduction. Transposed four lanes at a time, each channel's first four
// pixels leave as one 16-byte store and the other two as one 8-byte store: a 1x1 conv of 64 to 256
// channels at 56x56 ran 1.35x faster, AlexNet's first layer 1.10x (`iop bench`, Zen 4, session 14).
// With 8 lanes (AVX2: 16 channels a tile) the same code measured 0.90x on that 1x1 conv, so narrower
// vectors keep `ConvKernel.store`.
extension ConvKernel {
    /// One vector column of a tile (16 channels) for its 6 pixels, `act` applied; `out` is the column's
    /// first channel at the tile's first pixel, and the tile's pixels are consecutive (the caller checks
    /// that the output plane holds a whole tile).
    @inline(__always)
    static func storeColumn(
        _ v0: KVec, _ v1: KVec, _ v2: KVec, _ v3: KVec, _ v4: KVec, _ v5: KVec,
        _ out: UnsafeMutablePointer<Float>, _ plane: Int, _ act: Activation
    ) {
        for g in 0..<KVec.scalarCount / 4 {
            let q0 = quad(v0, g), q1 = quad(v1, g), q2 = quad(v2, g), q3 = quad(v3, g)
            let q4 = quad(v4, g), q5 = quad(v5, g)
            let p = out + 4 * g * plane
            // Pixels 0-3 of channels 4g..4g+3: a 4x4 transpose in two rounds of interleaves. The clamp
            // comes after it: applied before, LLVM moved its selects into the shuffles, lane by lane.
            let lo01 = SIMD4(q0[0], q1[0], q0[1], q1[1]), hi01 = SIMD4(q0[2], q1[2], q0[3], q1[3])
            let lo23 = SIMD4(q2[0], q3[0], q2[1], q3[1]), hi23 = SIMD4(q2[2], q3[2], q2[3], q3[3])
            store4(act.apply(SIMD4(lowHalf: lo01.lowHalf, highHalf: lo23.lowHalf)), p)
            store4(act.apply(SIMD4(lowHalf: lo01.highHalf, highHalf: lo23.highHalf)), p + plane)
            store4(act.apply(SIMD4(lowHalf: hi01.lowHalf, highHalf: hi23.lowHalf)), p + 2 * plane)
            store4(act.apply(SIMD4(lowHalf: hi01.highHalf, highHalf: hi23.highHalf)), p + 3 * plane)
            // Pixels 4-5, as pairs.
            let lo45 = act.apply(SIMD4(q4[0], q5[0], q4[1], q5[1]))
            let hi45 = act.apply(SIMD4(q4[2], q5[2], q4[3], q5[3]))
            store2(lo45.lowHalf, p + 4)
            store2(lo45.highHalf, p + plane + 4)
            store2(hi45.lowHalf, p + 2 * plane + 4)
            store2(hi45.highHalf, p + 3 * plane + 4)
        }
    }

    /// Lanes 4g..4g+3 of `v`.
    @inline(__always)
    static func quad(_ v: KVec, _ g: Int) -> SIMD4<Float> {
        let l = 4 * g
        return SIMD4(v[l], v[l + 1], v[l + 2], v[l + 3])
    }

    @inline(__always)
    static func store4(_ v: SIMD4<Float>, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD4<Float>.self)
    }

    @inline(__always)
    static func store2(_ v: SIMD2<Float>, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD2<Float>.self)
    }
}
