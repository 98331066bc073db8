import Foundation
import IOPAudio
import Testing

/// The stdlib-only math against glibc's libm (through Foundation), within stated bounds.
@Suite struct AudioMathTests {
    /// Arguments spread over a range, plus every table angle the front end uses (2 pi k / n).
    static func arguments(_ range: ClosedRange<Double>, count: Int, seed: UInt64) -> [Double] {
        var state = seed
        var xs = (0..<count).map { _ -> Double in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return range.lowerBound + (range.upperBound - range.lowerBound) * Double(state >> 11) / Double(1 << 53)
        }
        for n in [16, 400, 512, 1024] { xs += (0..<n).map { 2 * Double.pi * Double($0) / Double(n) } }
        return xs
    }

    /// sin and cos within 2 ulp of 1 (4.4e-16) absolute for |x| <= 2 pi (the tables' range: an absolute bound,
    /// since float32 tables care about absolute error) and 1e-15 relative to |x| out to 1e5.
    @Test func sinCosMatchLibm() {
        var worst = 0.0
        for x in Self.arguments(-2 * Double.pi...2 * Double.pi, count: 20000, seed: 1) {
            worst = max(worst, abs(AudioMath.sin(x) - Foundation.sin(x)), abs(AudioMath.cos(x) - Foundation.cos(x)))
        }
        print("IOPAudio: sin/cos max abs error on [-2pi, 2pi] = \(worst)")
        #expect(worst <= 4.4e-16)
        var worstFar = 0.0
        for x in Self.arguments(-1e5...1e5, count: 20000, seed: 2) {
            let e = max(abs(AudioMath.sin(x) - Foundation.sin(x)), abs(AudioMath.cos(x) - Foundation.cos(x)))
            worstFar = max(worstFar, e / max(1, abs(x)))
        }
        #expect(worstFar <= 1e-15)
        #expect(AudioMath.sin(.infinity).isNaN && AudioMath.cos(.nan).isNaN)
    }

    /// log within 2 ulp relative over the whole double range, subnormals included; log1p within 2 ulp for the
    /// mel scale's arguments (f / 700, f up to 24 kHz) and tiny ones.
    @Test func logMatchesLibm() {
        var worst = 0.0
        var xs = Self.arguments(-700...700, count: 20000, seed: 3).map { Foundation.exp($0) }
        xs += [
            1, 2, 0.5, 1 + 1e-15, 1 - 1e-16, Double.leastNonzeroMagnitude, 0x1p-1060, Double.greatestFiniteMagnitude,
        ]
        for x in xs {
            let expected = Foundation.log(x)
            worst = max(worst, abs(AudioMath.log(x) - expected) / max(abs(expected), Double.leastNormalMagnitude))
        }
        print("IOPAudio: log max relative error = \(worst)")
        #expect(worst <= 4.5e-16)
        var worst1p = 0.0
        for x in Self.arguments(0...35, count: 20000, seed: 4) + [1e-300, 1e-12, -0.5, 125.0 / 700, 7500.0 / 700] {
            let expected = Foundation.log1p(x)
            worst1p = max(worst1p, abs(AudioMath.log1p(x) - expected) / abs(expected))
        }
        print("IOPAudio: log1p max relative error = \(worst1p)")
        #expect(worst1p <= 4.5e-16)
        #expect(AudioMath.log(0.0) == -.infinity && AudioMath.log(-1.0).isNaN && AudioMath.log(Double.nan).isNaN)
        #expect(AudioMath.log(Double.infinity) == .infinity && AudioMath.log1p(-1) == -.infinity)
    }

    /// The per-frame Float log, scalar and vector alike, within 2 ulp of logf (plus 2 ulp of 1 near log = 0, where a
    /// relative bound means nothing), over every binade; log(mel + offset) is always a positive normal float.
    @Test func floatLogMatchesLibm() {
        var xs: [Float] = Self.arguments(-87...88, count: 40000, seed: 5).map { Float(Foundation.exp($0)) }
        xs += [1, 2, 0.01, 1.0000001, 0.99999994, Float.leastNormalMagnitude, Float.greatestFiniteMagnitude, 1.4142135]
        xs = xs.filter { $0.isNormal }
        while xs.count % 8 != 0 { xs.append(1) }
        var worstUlps: Float = 0
        for i in stride(from: 0, to: xs.count, by: 8) {
            let v = SIMD8<Float>(xs[i..<(i + 8)])
            let vector = AudioMath.log(v)
            for j in 0..<8 {
                let expected = Foundation.log(v[j])
                let ulp = max(expected.ulp, Float(1).ulp)
                let scalar = AudioMath.log(v[j])
                worstUlps = max(worstUlps, abs(scalar - expected) / ulp, abs(vector[j] - expected) / ulp)
            }
        }
        print("IOPAudio: Float log max error = \(worstUlps) ulp")
        #expect(worstUlps <= 2)
        #expect(AudioMath.log(Float(0)) == -.infinity && AudioMath.log(Float(-1)).isNaN)
        #expect(abs(AudioMath.log(Float.leastNonzeroMagnitude) - Foundation.log(Float.leastNonzeroMagnitude)) < 1e-5)
    }
}
