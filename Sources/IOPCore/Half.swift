/// IEEE 754 binary16 ("half") conversions, for activations sent over the wire at half their bytes.
/// Narrowing rounds to nearest, ties to even; values beyond the largest half (65504, or from 65520 on
/// once rounded) become infinity, NaN stays NaN (quiet, with its top payload bits), and values below
/// 2^-14 become subnormal halves or zero. Widening is exact.
///
/// On arm64 and x86-64 the conversion is the hardware's (`fcvtn`/`fcvtl` on AArch64, F16C's
/// `vcvtps2ph`/`vcvtph2ps` on an x86 host built for its own CPU) through Swift's `Float16`. Elsewhere
/// (32-bit ARM: `Float16` there lowers to `__aeabi_f2h`, which the boards' libgcc lacks) it is the
/// exact bit manipulation below (`narrowExact`, `widenExact`), branch-free on 8 lanes. The tests
/// check both against hand-computed bit patterns. Nothing here allocates.
public enum Half {
    public typealias Lanes = SIMD8<Float>

    /// The half bits of 8 floats.
    @inline(__always) public static func narrow8(_ v: Lanes) -> SIMD8<UInt16> {
        #if arch(arm64) || arch(x86_64)
            return unsafeBitCast(SIMD8<Float16>(v), to: SIMD8<UInt16>.self)
        #else
            return narrowExact(v)
        #endif
    }

    /// The floats of 8 halves.
    @inline(__always) public static func widen8(_ h: SIMD8<UInt16>) -> Lanes {
        #if arch(arm64) || arch(x86_64)
            return Lanes(unsafeBitCast(h, to: SIMD8<Float16>.self))
        #else
            return widenExact(h)
        #endif
    }

    /// Round to nearest even by bit manipulation (after F. Giesen's `float_to_half_fast3_rtne`): every
    /// case is computed and the right one selected with integer masks, so there is no branch per lane
    /// (Swift's SIMD comparisons against a scalar compile to a loop over the lanes; these do not).
    @inline(__always) public static func narrowExact(_ v: Lanes) -> SIMD8<UInt16> {
        let f = unsafeBitCast(v, to: SIMD8<UInt32>.self)
        let sign = f & 0x8000_0000
        let a = f ^ sign
        // At least 2^16 (or inf, NaN): inf, or a quiet NaN keeping the payload's top bits.
        let special = select(above(a, 0x7F80_0000), 0x7E00 | ((a &>> 13) & 0x3FF), SIMD8(repeating: 0x7C00))
        // Normal halves: rebias the exponent, and round the 13 dropped bits to nearest even.
        let normal = (a &- (112 << 23) &+ 0xFFF &+ ((a &>> 13) & 1)) &>> 13
        // Below 2^-14: adding 0.5 lines the half's 10 bits up at the bottom of the float's, and the
        // float addition itself rounds to nearest even.
        let magic = SIMD8<UInt32>(repeating: 126 << 23)
        let sum = unsafeBitCast(a, to: Lanes.self) + unsafeBitCast(magic, to: Lanes.self)
        let subnormal = unsafeBitCast(sum, to: SIMD8<UInt32>.self) &- magic
        let o = select(below(a, 113 << 23), subnormal, select(below(a, 143 << 23), normal, special))
        return SIMD8<UInt16>(truncatingIfNeeded: o | (sign &>> 16))
    }

    /// Exact widening by bit manipulation (after F. Giesen's `half_to_float_fast5`), branch-free.
    @inline(__always) public static func widenExact(_ h: SIMD8<UInt16>) -> Lanes {
        let x = SIMD8<UInt32>(truncatingIfNeeded: h)
        let shifted = (x & 0x7FFF) &<< 13
        let exponent = shifted & (0x7C00 << 13)
        let o = shifted &+ (112 << 23)
        // Inf and NaN (the largest exponent): the float's exponent is all ones too.
        let special = o &+ (112 << 23)
        // Zero and subnormals: one more exponent step, then subtract the implicit bit's value (2^-14).
        let renormalized =
            unsafeBitCast(o &+ (1 << 23), to: Lanes.self)
            - unsafeBitCast(SIMD8<UInt32>(repeating: 113 << 23), to: Lanes.self)
        let r = select(
            below(exponent, 1), unsafeBitCast(renormalized, to: SIMD8<UInt32>.self),
            select(below(exponent, 0x7C00 << 13), o, special))
        return unsafeBitCast(r | ((x & 0x8000) &<< 16), to: Lanes.self)
    }

    /// All ones in the lanes where `a < b`; both must be below 2^31 (the borrow is the top bit).
    @inline(__always) static func below(_ a: SIMD8<UInt32>, _ b: UInt32) -> SIMD8<UInt32> {
        0 &- ((a &- b) &>> 31)
    }

    /// All ones in the lanes where `a > b`; both must be below 2^31.
    @inline(__always) static func above(_ a: SIMD8<UInt32>, _ b: UInt32) -> SIMD8<UInt32> {
        0 &- ((SIMD8(repeating: b) &- a) &>> 31)
    }

    /// `x` where `mask` is all ones, else `y`.
    @inline(__always) static func select(_ mask: SIMD8<UInt32>, _ x: SIMD8<UInt32>, _ y: SIMD8<UInt32>)
        -> SIMD8<UInt32>
    {
        (x & mask) | (y & ~mask)
    }

    /// One float's half bits.
    public static func bits(_ x: Float) -> UInt16 { narrow8(Lanes(repeating: x))[0] }
    /// One half's value.
    public static func float(_ bits: UInt16) -> Float { widen8(SIMD8(repeating: bits))[0] }

    /// Narrows `count` floats at `x` into `count` halves at `out`. `out` may be `x` itself: each
    /// group of 8 floats is read before its halves are written, and halves never pass the floats ahead.
    public static func narrow(_ x: UnsafeRawPointer, count: Int, into out: UnsafeMutableRawPointer) {
        var i = 0
        while i + 8 <= count {
            let v = x.loadUnaligned(fromByteOffset: 4 * i, as: Lanes.self)
            out.storeBytes(of: narrow8(v), toByteOffset: 2 * i, as: SIMD8<UInt16>.self)
            i += 8
        }
        let rest = count - i
        guard rest > 0 else { return }
        var v = Lanes(repeating: 0)
        for k in 0..<rest { v[k] = x.loadUnaligned(fromByteOffset: 4 * (i + k), as: Float.self) }
        let h = narrow8(v)
        for k in 0..<rest { out.storeBytes(of: h[k], toByteOffset: 2 * (i + k), as: UInt16.self) }
    }

    /// Widens `count` halves at `h` into `count` floats at `out`. `out` may be `h` itself (a message
    /// received where its floats belong): it runs from the end, where the floats outgrow the halves
    /// they came from, so no half is overwritten before it is read.
    public static func widen(_ h: UnsafeRawPointer, count: Int, into out: UnsafeMutableRawPointer) {
        let whole = count & ~7
        let rest = count - whole
        if rest > 0 {
            var v = SIMD8<UInt16>(repeating: 0)
            for k in 0..<rest { v[k] = h.loadUnaligned(fromByteOffset: 2 * (whole + k), as: UInt16.self) }
            let f = widen8(v)
            for k in 0..<rest { out.storeBytes(of: f[k], toByteOffset: 4 * (whole + k), as: Float.self) }
        }
        var i = whole
        while i > 0 {
            i -= 8
            let v = h.loadUnaligned(fromByteOffset: 2 * i, as: SIMD8<UInt16>.self)
            out.storeBytes(of: widen8(v), toByteOffset: 4 * i, as: Lanes.self)
        }
    }

    /// Adds `count` halves at `h`, widened, onto the floats at `out` (a partial sum reduced in fp32).
    public static func widenAdding(_ h: UnsafeRawPointer, count: Int, onto out: UnsafeMutablePointer<Float>) {
        let raw = UnsafeMutableRawPointer(out)
        var i = 0
        while i + 8 <= count {
            let v = widen8(h.loadUnaligned(fromByteOffset: 2 * i, as: SIMD8<UInt16>.self))
            raw.storeBytes(
                of: raw.loadUnaligned(fromByteOffset: 4 * i, as: Lanes.self) + v, toByteOffset: 4 * i, as: Lanes.self)
            i += 8
        }
        while i < count {
            out[i] += float(h.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
            i += 1
        }
    }
}
