import IOPCore
import Testing

/// fp16 on the wire: both conversions (the hardware's through `Float16` on this host, and the exact bit
/// manipulation 32-bit ARM boards use) against IEEE 754 binary16 bit patterns worked out by hand.
@Suite struct HalfTests {
    /// (float, its half bits), each worked out from the binary16 layout: sign, 5 exponent bits (bias 15), 10 bits.
    static let narrowing: [(Float, UInt16)] = [
        (1.0, 0x3C00), (-2.0, 0xC000), (0.0, 0x0000), (-0.0, 0x8000),
        (0.5, 0x3800), (65504, 0x7BFF),  // the largest half: exponent 30, mantissa all ones
        (0.1, 0x2E66),  // 0.1 = 1.6 x 2^-4: mantissa 0.6 x 1024 = 614.4 -> 614 (0x266)
        (1.0 / 3.0, 0x3555),  // 1.333 x 2^-2: 0.333 x 1024 = 341.33 -> 341 (0x155)
        // Ties to even between 1 and 1 + 2^-10 (0x3C01, odd): down; between 0x3C01 and 0x3C02: up.
        (1 + 0x1p-11, 0x3C00), (1 + 3 * 0x1p-11, 0x3C02), (1 + 0x1p-11 + 0x1p-20, 0x3C01),
        // Spacing 2 from 2048: 2049 is a tie, to 2048 (even); 2051 to 2052.
        (2049, 0x6800), (2051, 0x6802),
        // Overflow: 65519.99 still rounds down; 65520, the tie with 2^16, rounds to even: infinity.
        (65519.99, 0x7BFF), (65520, 0x7C00), (1e5, 0x7C00), (-1e9, 0xFC00), (.infinity, 0x7C00),
        (-.infinity, 0xFC00),
        // Subnormals: 2^-14 is the smallest normal, 2^-24 the smallest subnormal; 2^-25 ties to 0,
        // 1.5 x 2^-24 ties to 2 x 2^-24; 1023 x 2^-24 is the largest subnormal.
        (0x1p-14, 0x0400), (0x1p-24, 0x0001), (0x1p-25, 0x0000), (3 * 0x1p-25, 0x0002),
        (1023 * 0x1p-24, 0x03FF), (-0x1p-24, 0x8001), (0x1p-30, 0x0000), (Float.leastNonzeroMagnitude, 0x0000),
    ]

    /// (half bits, its value).
    static let widening: [(UInt16, Float)] = [
        (0x3C00, 1), (0xC000, -2), (0x7BFF, 65504), (0x3555, 0.333251953125), (0x2E66, 0.0999755859375),
        (0x0001, 0x1p-24), (0x03FF, 1023 * 0x1p-24), (0x0400, 0x1p-14), (0x7C00, .infinity),
        (0xFC00, -.infinity), (0x0000, 0),
    ]

    static func isHalfNaN(_ h: UInt16) -> Bool { h & 0x7C00 == 0x7C00 && h & 0x03FF != 0 }

    @Test func narrowingMatchesHandComputedBits() {
        for (x, bits) in Self.narrowing {
            #expect(Half.bits(x) == bits, "hardware path: \(x)")
            #expect(Half.narrowExact(SIMD8(repeating: x))[3] == bits, "exact path: \(x)")
        }
        // NaN stays NaN (quiet), negative or with a payload too.
        for x in [Float.nan, -Float.nan, Float(bitPattern: 0x7F80_0001), Float(bitPattern: 0xFFC1_2345)] {
            #expect(Self.isHalfNaN(Half.bits(x)), "hardware path: \(x.bitPattern)")
            #expect(Self.isHalfNaN(Half.narrowExact(SIMD8(repeating: x))[0]), "exact path: \(x.bitPattern)")
        }
    }

    @Test func wideningMatchesHandComputedValues() {
        for (bits, x) in Self.widening {
            #expect(Half.float(bits).bitPattern == x.bitPattern, "hardware path: \(bits)")
            #expect(Half.widenExact(SIMD8(repeating: bits))[5].bitPattern == x.bitPattern, "exact path: \(bits)")
        }
        #expect(Half.float(0x8000).bitPattern == 0x8000_0000)  // -0 keeps its sign
        #expect(Half.float(0x7E00).isNaN && Half.widenExact(SIMD8(repeating: 0xFE01))[0].isNaN)
    }

    /// Every one of the 65,536 halves widens alike on both paths, and every half that is a number
    /// narrows back to itself (widening is exact, so narrowing must return the same half).
    @Test func everyHalfRoundTripsOnBothPaths() {
        var mismatches = 0
        for b in 0...0xFFFF {
            let h = UInt16(b)
            let hardware = Half.float(h), exact = Half.widenExact(SIMD8(repeating: h))[0]
            if Self.isHalfNaN(h) {
                if !(hardware.isNaN && exact.isNaN) { mismatches += 1 }
                continue
            }
            if hardware.bitPattern != exact.bitPattern || Half.bits(hardware) != h
                || Half.narrowExact(SIMD8(repeating: exact))[0] != h
            {
                mismatches += 1
            }
        }
        #expect(mismatches == 0)
    }

    /// The bulk conversions, in place as the nodes use them, at lengths with and without a tail of
    /// fewer than 8; a partial sum widened onto fp32.
    @Test(arguments: [1, 7, 8, 19, 64, 1003])
    func bulkConversionsInPlaceEqualElementByElement(_ n: Int) {
        let values: [Float] = (0..<n).map { i -> Float in Float(i) * 0.37 - 50 }
        var buffer = values
        buffer.withUnsafeMutableBytes { b in Half.narrow(b.baseAddress!, count: n, into: b.baseAddress!) }
        let halves = buffer.withUnsafeBytes { b in (0..<n).map { b.load(fromByteOffset: 2 * $0, as: UInt16.self) } }
        #expect(halves == values.map(Half.bits))
        buffer.withUnsafeMutableBytes { b in Half.widen(b.baseAddress!, count: n, into: b.baseAddress!) }
        #expect(buffer == values.map { Half.float(Half.bits($0)) })
        // Each value within half a unit in the last place of fp16 (2^-11 relative).
        for (x, y) in zip(values, buffer) { #expect(abs(x - y) <= abs(x) * Float(0x1p-11)) }
        var sums = [Float](repeating: 1, count: n)
        halves.withUnsafeBytes { h in
            sums.withUnsafeMutableBufferPointer { Half.widenAdding(h.baseAddress!, count: n, onto: $0.baseAddress!) }
        }
        #expect(sums == values.map { 1 + Half.float(Half.bits($0)) })
    }
}
