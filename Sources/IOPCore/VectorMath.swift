/// exp and log on whole vectors without libm, so the board runtime needs nothing beyond the stdlib:
/// the transcendental functions (Sigmoid, Tanh, LRN's power) run in registers, lane by lane.
enum VectorMath {
    /// e^x: x = k ln2 + r with k rounded by the 1.5 * 2^23 shifter (whose low mantissa bits are
    /// then k), e^r by the degree-7 polynomial of `ElementwiseKernel.exp`, and 2^k built in the
    /// exponent field. x is clamped to [-87.3, 88]: below, e^-87.3 (~1e-38) stands for 0, which no
    /// caller can tell apart; above, the float range ends.
    @inline(__always) static func exp(_ x: KVec) -> KVec {
        let x = Activation(low: -87.3, high: 88).apply(x)
        let shifter = KVec(repeating: 12_582_912)
        let t = x * KVec(repeating: 1.442_695_04) + shifter
        let k = t - shifter
        // ln2 in two parts, so k * ln2 is exact to float precision.
        let r = x - k * KVec(repeating: 0.693_359_375) + k * KVec(repeating: 2.121_944_4e-4)
        var p = KVec(repeating: 1.0 / 5040)
        p = p * r + KVec(repeating: 1.0 / 720)
        p = p * r + KVec(repeating: 1.0 / 120)
        p = p * r + KVec(repeating: 1.0 / 24)
        p = p * r + KVec(repeating: 1.0 / 6)
        p = p * r + KVec(repeating: 0.5)
        p = p * r + 1
        p = p * r + 1
        // t's bits are 0x4B40_0000 + k; 2^k's are (k + 127) << 23.
        let bits = (unsafeBitCast(t, to: KBits.self) &- KBits(repeating: 0x4B40_0000 - 127)) &<< 23
        return p * unsafeBitCast(bits, to: KVec.self)
    }

    /// ln x for positive normal x: x = m 2^e with m in [sqrt(1/2), sqrt(2)), and ln m from the
    /// atanh series in s = (m - 1) / (m + 1), |s| < 0.172, to s^9 (error ~1e-9).
    @inline(__always) static func log(_ x: KVec) -> KVec {
        let bits = unsafeBitCast(x, to: KBits.self)
        var m = unsafeBitCast((bits & KBits(repeating: 0x007F_FFFF)) | KBits(repeating: 0x3F80_0000), to: KVec.self)
        // The exponent field as a float: its bits placed in 2^23's mantissa, then 2^23 taken off.
        var e = unsafeBitCast((bits &>> 23) | KBits(repeating: 0x4B00_0000), to: KVec.self) - (8_388_608 + 127)
        let big = m .> KVec(repeating: 1.414_213_56)
        m = m.replacing(with: m * 0.5, where: big)
        e = e.replacing(with: e + 1, where: big)
        let s = (m - 1) / (m + 1), s2 = s * s
        var q = KVec(repeating: 1.0 / 9)
        q = q * s2 + KVec(repeating: 1.0 / 7)
        q = q * s2 + KVec(repeating: 1.0 / 5)
        q = q * s2 + KVec(repeating: 1.0 / 3)
        q = q * s2 + 1
        return e * KVec(repeating: 0.693_147_18) + 2 * s * q
    }
}
