import IOPCore
import PropertyBased
import TestSupport
import Testing

/// Winograd F(4x4, 3x3) against the naive conv, on random shapes and on the slices partitions make.
@Suite struct WinogradTests {
    /// F(4x4, 3x3) in fp32 rounds more than the direct sum (its transforms scale values by up to
    /// 8x and back): on the ONNX fixtures its worst scaled error is 1.6e-6 (`ONNXFixtureTests`
    /// prints each). The bound leaves room for that without hiding a wrong transform (off by O(1)).
    static let tolerance: Float = 1e-5

    static func randomGeometry(_ r: inout TestRNG) -> ConvGeometry {
        ConvGeometry(
            inChannels: r.int(1...48), inHeight: r.int(1...21), inWidth: r.int(1...21), outChannels: r.int(1...40),
            kernelH: 3, kernelW: 3, padTop: r.int(0...2), padLeft: r.int(0...2), padBottom: r.int(0...2),
            padRight: r.int(0...2), algorithm: .winograd)
    }

    @Test func matchesNaiveOnRandomGeometries() async throws {
        await propertyCheck(count: 200, input: Gen.uint64()) { seed in
            var r = TestRNG(state: seed)
            let g = Self.randomGeometry(&r)
            guard g.outHeight > 0, g.outWidth > 0 else { return }
            try expectConvMatchesReference(g, &r, tolerance: Self.tolerance, label: "winograd")
        }
    }

    /// An output-channel slice, an input-channel slice (partial sums, no bias) and a row band with
    /// its halo, each a conv of its own, as `IOPPlan.Slicing` makes them.
    @Test func partitionSlicesMatchNaive() async throws {
        await propertyCheck(count: 100, input: Gen.uint64()) { seed in
            var r = TestRNG(state: seed)
            let g = Self.randomGeometry(&r)
            guard g.outHeight > 0, g.outWidth > 0 else { return }
            let x = r.floats(g.inputCount), w = r.floats(g.weightCount), b = r.floats(g.outChannels)
            let full = referenceConv(g, input: x, weights: w, bias: b)
            let plane = g.outHeight * g.outWidth, taps = 9, inPlane = g.inHeight * g.inWidth

            let oc0 = r.int(0...(g.outChannels - 1)), oc1 = r.int((oc0 + 1)...g.outChannels)
            let ocSlice = g.sliced(outChannels: oc1 - oc0)
            #expect(ocSlice.usesWinograd)
            let ocLayer = Layer(
                name: "oc", kind: .conv(ocSlice, .none),
                weights: Array(w[(oc0 * g.inChannels * taps)..<(oc1 * g.inChannels * taps)]), bias: Array(b[oc0..<oc1]))
            let ocErr = scaledError(
                try runEngine([ocLayer], input: x, threads: 2), Array(full[(oc0 * plane)..<(oc1 * plane)]))
            #expect(ocErr <= Self.tolerance, "oc slice \(oc0)..<\(oc1) of \(g): error \(ocErr)")

            let ic0 = r.int(0...(g.inChannels - 1)), ic1 = r.int((ic0 + 1)...g.inChannels)
            let icSlice = g.sliced(inChannels: ic1 - ic0)
            var icWeights: [Float] = []
            for oc in 0..<g.outChannels {
                icWeights += w[((oc * g.inChannels + ic0) * taps)..<((oc * g.inChannels + ic1) * taps)]
            }
            let icInput = Array(x[(ic0 * inPlane)..<(ic1 * inPlane)])
            let icLayer = Layer(name: "ic", kind: .conv(icSlice, .none), weights: icWeights)
            let icErr = scaledError(
                try runEngine([icLayer], input: icInput, threads: 2),
                referenceConv(icSlice, input: icInput, weights: icWeights, bias: []))
            #expect(icErr <= Self.tolerance, "ic slice \(ic0)..<\(ic1) of \(g): error \(icErr)")

            let y0 = r.int(0...(g.outHeight - 1)), y1 = r.int((y0 + 1)...g.outHeight)
            let top = y0 - g.padTop, bottom = y1 + 2 - g.padTop
            let rows = max(0, top)..<min(g.inHeight, bottom)
            let band = g.sliced(inHeight: rows.count, padTop: max(0, -top), padBottom: max(0, bottom - g.inHeight))
            guard band.outHeight == y1 - y0, !rows.isEmpty else { return }
            var bandInput: [Float] = []
            for c in 0..<g.inChannels {
                bandInput +=
                    x[(c * inPlane + rows.lowerBound * g.inWidth)..<(c * inPlane + rows.upperBound * g.inWidth)]
            }
            var bandExpected: [Float] = []
            for c in 0..<g.outChannels {
                bandExpected += full[(c * plane + y0 * g.outWidth)..<(c * plane + y1 * g.outWidth)]
            }
            let bandLayer = Layer(name: "band", kind: .conv(band, .none), weights: w, bias: b)
            let bandErr = scaledError(try runEngine([bandLayer], input: bandInput, threads: 2), bandExpected)
            #expect(bandErr <= Self.tolerance, "rows \(y0)..<\(y1) of \(g): error \(bandErr)")
        }
    }

    /// The VGG layer shapes at reduced size: many chunks, channel counts past one block, and input
    /// channels past one and two of the products' passes (`productDepth`).
    @Test func vggShapedLayersMatchNaive() throws {
        var r = TestRNG(state: 14)
        for (ic, oc, size) in [(64, 70, 19), (130, 20, 9), (3, 64, 30), (300, 6, 35)] {
            let g = ConvGeometry(
                inChannels: ic, inHeight: size, inWidth: size, outChannels: oc, kernelH: 3, kernelW: 3, padTop: 1,
                padLeft: 1, padBottom: 1, padRight: 1, algorithm: .winograd)
            let x = r.floats(g.inputCount), w = r.floats(g.weightCount), b = r.floats(oc)
            let layer = Layer(name: "conv", kind: .conv(g, .relu), weights: w, bias: b)
            let err = scaledError(
                try runEngine([layer], input: x, threads: 2), referenceConv(g, input: x, weights: w, bias: b, low: 0))
            #expect(err <= Self.tolerance, "\(g): error \(err)")
        }
    }

    @Test func onlyThreeByThreeStrideOneConvsTakeWinograd() {
        let strided = ConvGeometry(
            inChannels: 4, inHeight: 8, inWidth: 8, outChannels: 4, kernelH: 3, kernelW: 3, strideH: 2, strideW: 2,
            algorithm: .winograd)
        #expect(throws: CoreError.self) { try strided.validate() }
        let plain = ConvGeometry(inChannels: 4, inHeight: 8, inWidth: 8, outChannels: 4, kernelH: 3, kernelW: 3)
        #expect(plain.isWinogradEligible && !plain.usesWinograd)
    }
}
