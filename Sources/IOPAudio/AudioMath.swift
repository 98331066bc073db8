/// sin, cos and log from the standard library alone. The board runtime links no libm module (it must build in
/// Embedded Swift for bare aarch64), yet the front end needs sin/cos for its window and FFT tables and log for its
/// mel scale and every output value. The Double versions build the tables once, so they favour accuracy (about an
/// ulp) over speed; the Float versions run 64 times per 10 ms frame, so they are short and vectorised.
public enum AudioMath {
    // MARK: - Double: tables

    /// sin(x). Accurate to about an ulp for |x| < 8e5; beyond, the three-part pi/2 reduction loses bits
    /// (the front end only asks for |x| <= 2 pi), and from 2^50 on the result is NaN.
    public static func sin(_ x: Double) -> Double {
        guard x.magnitude < 0x1p50 else { return .nan }
        let (r, q) = reduce(x)
        switch q {
        case 0: return sinKernel(r)
        case 1: return cosKernel(r)
        case 2: return -sinKernel(r)
        default: return -cosKernel(r)
        }
    }

    /// cos(x), with the same accuracy and range as `sin`.
    public static func cos(_ x: Double) -> Double {
        guard x.magnitude < 0x1p50 else { return .nan }
        let (r, q) = reduce(x)
        switch q {
        case 0: return cosKernel(r)
        case 1: return -sinKernel(r)
        case 2: return -cosKernel(r)
        default: return sinKernel(r)
        }
    }

    /// Natural logarithm: log(0) = -inf, negative or NaN arguments give NaN.
    public static func log(_ x: Double) -> Double {
        guard x > 0 else { return x == 0 ? -.infinity : .nan }
        guard x.isFinite else { return x }
        var v = x, e = 0
        if v < Double.leastNormalMagnitude {  // subnormal: scale into the normal range first
            v *= 0x1p54; e = -54
        }
        let bits = v.bitPattern
        e += Int((bits >> 52) & 0x7ff) - 1023
        var m = Double(bitPattern: (bits & 0x000F_FFFF_FFFF_FFFF) | 0x3FF0_0000_0000_0000)
        if m > 1.4142135623730951 { m *= 0.5; e += 1 }
        // log m = 2 atanh(s), s = (m - 1) / (m + 1), |s| <= 0.1716: eleven odd terms reach 1e-17.
        let s = (m - 1) / (m + 1), s2 = s * s
        var p = 0.043478260869565216
        p = p * s2 + 0.047619047619047616
        p = p * s2 + 0.05263157894736842
        p = p * s2 + 0.058823529411764705
        p = p * s2 + 0.06666666666666667
        p = p * s2 + 0.07692307692307693
        p = p * s2 + 0.09090909090909091
        p = p * s2 + 0.1111111111111111
        p = p * s2 + 0.14285714285714285
        p = p * s2 + 0.2
        p = p * s2 + 0.3333333333333333
        let logM = 2 * s + 2 * s * s2 * p
        // ln 2 in two parts (fdlibm's): e * ln2Hi is exact, so large exponents cost no accuracy.
        let de = Double(e)
        return de * 6.93147180369123816490e-01 + (de * 1.90821492927058770002e-10 + logM)
    }

    /// log(1 + x), accurate for small x too (the mel scale is 1127 log(1 + f / 700)): log(u) * x / (u - 1) with
    /// u = 1 + x cancels the rounding error of forming u (Goldberg, "What every computer scientist should know").
    public static func log1p(_ x: Double) -> Double {
        let u = 1 + x
        if u == 1 { return x }
        if !u.isFinite { return log(u) }
        return log(u) * x / (u - 1)
    }

    /// Splits x into r in [-pi/4, pi/4] and the quadrant q with x = q pi/2 + r (mod 2 pi). Cody-Waite: pi/2 in three
    /// parts of 33, 33 and 53 bits (fdlibm's), so n * part is exact for |n| < 2^20. Rounds through Int rather than
    /// `rounded()`, which is a libm call on x86 without SSE4.1.
    @inline(__always) static func reduce(_ x: Double) -> (Double, Int) {
        let q = x * 0.63661977236758134308
        let i = Int(q < 0 ? q - 0.5 : q + 0.5)
        let n = Double(i)
        let r = ((x - n * 1.57079632673412561417e+00) - n * 6.07710050630396597660e-11) - n * 2.02226624879595063154e-21
        return (r, i & 3)
    }

    /// Taylor series to x^19 on |x| <= pi/4: the next term is below 1e-22.
    @inline(__always) static func sinKernel(_ x: Double) -> Double {
        let x2 = x * x
        var p = -8.22063524662433e-18
        p = p * x2 + 2.8114572543455206e-15
        p = p * x2 - 7.647163731819816e-13
        p = p * x2 + 1.6059043836821613e-10
        p = p * x2 - 2.505210838544172e-08
        p = p * x2 + 2.7557319223985893e-06
        p = p * x2 - 0.0001984126984126984
        p = p * x2 + 0.008333333333333333
        p = p * x2 - 0.16666666666666666
        return x + x * x2 * p
    }

    /// Taylor series to x^20 on |x| <= pi/4.
    @inline(__always) static func cosKernel(_ x: Double) -> Double {
        let x2 = x * x
        var p = 4.110317623312165e-19
        p = p * x2 - 1.5619206968586225e-16
        p = p * x2 + 4.779477332387385e-14
        p = p * x2 - 1.1470745597729725e-11
        p = p * x2 + 2.08767569878681e-09
        p = p * x2 - 2.755731922398589e-07
        p = p * x2 + 2.48015873015873e-05
        p = p * x2 - 0.001388888888888889
        p = p * x2 + 0.041666666666666664
        p = p * x2 - 0.5
        return 1 + x2 * p
    }

    // MARK: - Float: per frame

    /// log of eight positive normal floats at once (what log(mel + offset) always is, the offset being a positive
    /// normal float): about 2 ulp. Zero, negative, subnormal, infinite or NaN lanes give meaningless values; the
    /// scalar `log(_: Float)` handles those.
    @inline(__always) public static func log(_ x: SIMD8<Float>) -> SIMD8<Float> {
        let bits = unsafeBitCast(x, to: SIMD8<Int32>.self)
        var e = (bits &>> 23) &- 127
        var m = unsafeBitCast((bits & 0x007F_FFFF) | 0x3F80_0000, to: SIMD8<Float>.self)
        let big = m .> 1.41421356
        m.replace(with: m * 0.5, where: big)
        e.replace(with: e &+ 1, where: big)
        let s = (m - 1) / (m + 1), s2 = s * s
        // Five odd terms of 2 atanh(s): the sixth is 2e-9 relative.
        var p = SIMD8<Float>(repeating: 0.11111111) * s2 + 0.14285715
        p = p * s2 + 0.2
        p = p * s2 + 0.33333334
        let logM = 2 * s + 2 * s * s2 * p
        let fe = SIMD8<Float>(e)
        return fe * 0.69313812256 + (fe * 9.0580006145e-06 + logM)
    }

    /// Scalar log, the same method as the vector one, for the tail of a row and for arguments outside its domain.
    public static func log(_ x: Float) -> Float {
        guard x > 0 else { return x == 0 ? -.infinity : .nan }
        guard x.isFinite else { return x }
        var v = x, e: Int32 = 0
        if v < Float.leastNormalMagnitude { v *= 0x1p24; e = -24 }
        let bits = Int32(bitPattern: v.bitPattern)
        e += (bits &>> 23) &- 127
        var m = Float(bitPattern: UInt32(bitPattern: (bits & 0x007F_FFFF) | 0x3F80_0000))
        if m > 1.41421356 { m *= 0.5; e += 1 }
        let s = (m - 1) / (m + 1), s2 = s * s
        var p: Float = 0.11111111 * s2 + 0.14285715
        p = p * s2 + 0.2
        p = p * s2 + 0.33333334
        let logM = 2 * s + 2 * s * s2 * p
        let fe = Float(e)
        return fe * 0.69313812256 + (fe * 9.0580006145e-06 + logM)
    }
}
