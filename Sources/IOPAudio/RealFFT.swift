/// The magnitude spectrum of a real frame of n = 2m samples through one m-point complex FFT: the even samples as
/// real parts, the odd ones as imaginary parts, then the standard split into the two half-length spectra. Half the
/// work of an n-point complex FFT on real data, with no complex array type and no allocation: every buffer is a
/// pointer into the front end's memory.
///
/// The complex FFT is radix-2 decimation in frequency on split (separate real and imaginary) arrays, so every
/// butterfly stage down to a half-size of 4 runs on whole SIMD vectors with contiguous per-stage twiddles; the
/// last two stages are one scalar radix-4 pass that also writes its outputs to their bit-reversed places, so no
/// separate permutation pass (and no index table) is needed.
enum RealFFT {
    /// Floats of the complex stages' twiddle tables: for each half-size h = m/2, m/4, ..., 4, h cosines then h
    /// sines of 2 pi j / 2h.
    static func stageTwiddleCount(_ n: Int) -> Int { 2 * (n / 2 - 4) }

    /// Floats of the post-processing table: m/2 cosines then m/2 sines of 2 pi k / n.
    static func splitTwiddleCount(_ n: Int) -> Int { n / 2 }

    /// Fills both tables for an n-point real FFT (n a power of two, at least 16).
    static func makeTables(n: Int, stage: UnsafeMutablePointer<Float>, split: UnsafeMutablePointer<Float>) {
        let m = n / 2
        var t = stage, h = m / 2
        while h >= 4 {
            for j in 0..<h {
                let a = 2 * Double.pi * Double(j) / Double(2 * h)
                t[j] = Float(AudioMath.cos(a)); t[h + j] = Float(AudioMath.sin(a))
            }
            t += 2 * h; h /= 2
        }
        for k in 0..<(m / 2) {
            let a = 2 * Double.pi * Double(k) / Double(n)
            split[k] = Float(AudioMath.cos(a)); split[m / 2 + k] = Float(AudioMath.sin(a))
        }
    }

    /// In place over re/im[0..<m] (destroyed), then into zr/zi[0...m] in natural order (zr/zi[m] repeats [0] so
    /// the post-processing can read Z[m - k] for k = 0 without a branch).
    static func complexForward(
        m: Int, re: UnsafeMutablePointer<Float>, im: UnsafeMutablePointer<Float>, stage: UnsafePointer<Float>,
        zr: UnsafeMutablePointer<Float>, zi: UnsafeMutablePointer<Float>
    ) {
        var t = stage, h = m / 2
        while h >= 4 {
            var b = 0
            while b < m {
                if h >= 8 {
                    var j = 0
                    while j < h {
                        butterfly(SIMD8<Float>.self, re + b + j, im + b + j, h, t + j, t + h + j)
                        j += 8
                    }
                } else {
                    butterfly(SIMD4<Float>.self, re + b, im + b, h, t, t + h)
                }
                b += 2 * h
            }
            t += 2 * h; h /= 2
        }
        // Half-sizes 2 and 1 as one radix-4 pass; group g's outputs belong at bit-reversed places rev(4g) + q',
        // q' = 0, m/2, m/4, 3m/4 for its outputs 0...3. `r` is rev(4g), incremented in reversed order.
        let quarter = m / 4, half = m / 2
        var r = 0
        for g in 0..<quarter {
            let p = 4 * g
            let x0r = re[p], x1r = re[p + 1], x2r = re[p + 2], x3r = re[p + 3]
            let x0i = im[p], x1i = im[p + 1], x2i = im[p + 2], x3i = im[p + 3]
            // Half-size 2: twiddles 1 and -i.
            let y0r = x0r + x2r, y0i = x0i + x2i, y2r = x0r - x2r, y2i = x0i - x2i
            let y1r = x1r + x3r, y1i = x1i + x3i, y3r = x1i - x3i, y3i = x3r - x1r
            // Half-size 1.
            zr[r] = y0r + y1r; zi[r] = y0i + y1i
            zr[r + half] = y0r - y1r; zi[r + half] = y0i - y1i
            zr[r + quarter] = y2r + y3r; zi[r + quarter] = y2i + y3i
            zr[r + half + quarter] = y2r - y3r; zi[r + half + quarter] = y2i - y3i
            var bit = quarter >> 1
            while bit > 0 && r & bit != 0 { r ^= bit; bit >>= 1 }
            r |= bit
        }
        zr[m] = zr[0]; zi[m] = zi[0]
    }

    /// One DIF stage's butterflies for one vector of j: top = a + c, bottom = (a - c) * (cos - i sin).
    @inline(__always) static func butterfly<V: SIMD>(
        _: V.Type, _ re: UnsafeMutablePointer<Float>, _ im: UnsafeMutablePointer<Float>, _ h: Int,
        _ cos: UnsafePointer<Float>, _ sin: UnsafePointer<Float>
    ) where V.Scalar == Float {
        let ar = load(V.self, re), ai = load(V.self, im), cr = load(V.self, re + h), ci = load(V.self, im + h)
        let wc = load(V.self, cos), ws = load(V.self, sin)
        let dr = ar - cr, di = ai - ci
        store(ar + cr, re); store(ai + ci, im)
        store(dr * wc + di * ws, re + h); store(di * wc - dr * ws, im + h)
    }

    /// |X[k]| for k = 0...m (n/2 + 1 bins) from Z = FFT(x[even] + i x[odd]). With Xe, Xo the spectra of the even
    /// and odd samples, Xe[k] = (Z[k] + conj Z[m-k]) / 2, Xo[k] = (Z[k] - conj Z[m-k]) / 2i and
    /// X[k] = Xe[k] + W^k Xo[k], X[m-k] = conj(Xe[k] - W^k Xo[k]) (W = e^(-2 pi i / n)): each k < m/2 gives two
    /// bins, four k per vector (Z[m-k] read as a reversed vector).
    static func magnitudes(
        m: Int, zr: UnsafePointer<Float>, zi: UnsafePointer<Float>, split: UnsafePointer<Float>,
        into mag: UnsafeMutablePointer<Float>
    ) {
        typealias V = SIMD4<Float>
        let half = m / 2
        var k = 0
        while k < half {
            let ar = load(V.self, zr + k), ai = load(V.self, zi + k)
            let br = reversed(load(V.self, zr + m - k - 3)), bi = reversed(load(V.self, zi + m - k - 3))
            let c = load(V.self, split + k), s = load(V.self, split + half + k)
            // Xe = ((ar + br) + i (ai - bi)) / 2; Xo = ((ai + bi) + i (br - ar)) / 2.
            let er = 0.5 * (ar + br), ei = 0.5 * (ai - bi)
            let or = 0.5 * (ai + bi), oi = 0.5 * (br - ar)
            // T = W Xo, W = cos - i sin.
            let tr = or * c + oi * s, ti = oi * c - or * s
            let sumR = er + tr, sumI = ei + ti, difR = er - tr, difI = ei - ti
            store((sumR * sumR + sumI * sumI).squareRoot(), mag + k)
            store(reversed((difR * difR + difI * difI).squareRoot()), mag + m - k - 3)
            k += 4
        }
        // k = m/2 is its own mirror: Xe and Xo are real there and W^(m/2) = -i, so X = conj Z.
        mag[half] = (zr[half] * zr[half] + zi[half] * zi[half]).squareRoot()
    }
}

@inline(__always) func load<V: SIMD>(_: V.Type, _ p: UnsafePointer<Float>) -> V where V.Scalar == Float {
    UnsafeRawPointer(p).loadUnaligned(as: V.self)
}

@inline(__always) func load<V: SIMD>(_: V.Type, _ p: UnsafeMutablePointer<Float>) -> V where V.Scalar == Float {
    UnsafeRawPointer(p).loadUnaligned(as: V.self)
}

@inline(__always) func store<V: SIMD>(_ v: V, _ p: UnsafeMutablePointer<Float>) where V.Scalar == Float {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self)
}

@inline(__always) func reversed(_ v: SIMD4<Float>) -> SIMD4<Float> { SIMD4(v[3], v[2], v[1], v[0]) }
