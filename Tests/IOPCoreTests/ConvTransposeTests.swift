import IOPCore
import PropertyBased
import TestSupport
import Testing

/// ConvTranspose straight from the ONNX definition, in scatter form (the kernel gathers): every input
/// pixel adds its weighted kernel footprint at `iy * stride - padTop + ky * dilation`, the cropped pads
/// dropping what lands outside. Weights in the interchange layout, [out][in / group][kh][kw].
func referenceConvTranspose(
    _ g: ConvTransposeGeometry, input: [Float], weights: [Float], bias: [Float], low: Float = -.infinity
) -> [Float] {
    let icg = g.inGroupChannels, ocg = g.outGroupChannels, oh = g.outHeight, ow = g.outWidth
    var out = [Double](repeating: 0, count: g.outputCount)
    for oc in 0..<g.outChannels {
        let grp = oc / ocg
        for k in 0..<(oh * ow) { out[oc * oh * ow + k] = bias.isEmpty ? 0 : Double(bias[oc]) }
        for ic in 0..<icg {
            for iy in 0..<g.inHeight {
                for ix in 0..<g.inWidth {
                    let x = Double(input[((grp * icg + ic) * g.inHeight + iy) * g.inWidth + ix])
                    for ky in 0..<g.kernelH {
                        for kx in 0..<g.kernelW {
                            let oy = iy * g.strideH - g.padTop + ky * g.dilationH
                            let ox = ix * g.strideW - g.padLeft + kx * g.dilationW
                            if oy < 0 || oy >= oh || ox < 0 || ox >= ow { continue }
                            let w = weights[((oc * icg + ic) * g.kernelH + ky) * g.kernelW + kx]
                            out[(oc * oh + oy) * ow + ox] += x * Double(w)
                        }
                    }
                }
            }
        }
    }
    return out.map { max(Float($0), low) }
}

@Suite struct ConvTransposeTests {
    static let tolerance: Float = 1e-5

    /// Random shapes, strides 1-3, dilations 1-2, pads, output padding, groups (depthwise among them),
    /// with and without bias and ReLU, the weights loaded a run of output channels at a time as weight
    /// shards bring them, into the arena the layout reserves.
    @Test func matchesNaiveOnRandomGeometries() async throws {
        await propertyCheck(count: 300, input: Gen.uint64()) { seed in
            var r = TestRNG(state: seed)
            let depthwise = r.int(0...4) == 0
            let groups = depthwise ? r.int(2...6) : [1, 1, 1, 2, 3][r.int(0...4)]
            let icg = depthwise ? 1 : r.int(1...9), ocg = depthwise ? r.int(1...2) : r.int(1...40)
            let sh = r.int(1...3), sw = r.int(1...3), dh = r.int(1...2), dw = r.int(1...2)
            let g = ConvTransposeGeometry(
                inChannels: icg * groups, inHeight: r.int(1...9), inWidth: r.int(1...15), outChannels: ocg * groups,
                kernelH: r.int(1...4), kernelW: r.int(1...4), strideH: sh, strideW: sw, dilationH: dh,
                dilationW: dw, padTop: r.int(0...2), padLeft: r.int(0...2), padBottom: r.int(0...2),
                padRight: r.int(0...2), outputPaddingH: r.int(0...(max(sh, dh) - 1)),
                outputPaddingW: r.int(0...(max(sw, dw) - 1)), groups: groups)
            guard g.outHeight > 0, g.outWidth > 0 else { return }
            let x = r.floats(g.inputCount), w = r.floats(g.weightCount)
            let b = r.int(0...1) == 0 ? [] : r.floats(g.outChannels)
            let relu = r.int(0...1) == 0
            let kind = LayerKind.convTranspose(g, relu ? .relu : .none)
            let expected = referenceConvTranspose(g, input: x, weights: w, bias: b, low: relu ? 0 : -.infinity)
            var layout = ArenaLayout()
            let placed = layout.chain([kind])
            let (ops, floats) = layout.finish()
            #expect(ops.allSatisfy { $0.fits(arenaFloats: floats) })
            let engine = try Engine(arenaFloats: floats, threads: r.int(1...3))
            let channels = kind.parameterChannels, per = kind.weightsPerChannel
            var first = 0
            while first < channels {
                let count = min(channels - first, r.int(1...max(1, channels / 2)))
                w.withUnsafeBufferPointer { wp in
                    b.withUnsafeBufferPointer { bp in
                        engine.load(
                            ops[0], channels: first..<(first + count), weights: wp.baseAddress! + first * per,
                            bias: b.isEmpty ? nil : bp.baseAddress! + first)
                    }
                }
                first += count
            }
            engine.floats(at: placed.input).update(from: x, count: x.count)
            engine.run(ops[0])
            let got = Array(UnsafeBufferPointer(start: engine.floats(at: placed.output), count: expected.count))
            #expect(scaledError(got, expected) <= Self.tolerance, "\(g) relu \(relu)")
        }
    }

    /// A band of output rows (what a board computes when the planner splits by rows) equals those rows of the
    /// whole: the band's geometry on its input rows, against the ONNX-definition reference on the whole, over
    /// random strides, dilations, pads, output padding and bands (some of them only output padding).
    @Test func aBandOfOutputRowsEqualsThoseRowsOfTheWhole() async throws {
        await propertyCheck(count: 400, input: Gen.uint64()) { seed in
            var r = TestRNG(state: seed)
            let sh = r.int(1...3), dh = r.int(1...2)
            let g = ConvTransposeGeometry(
                inChannels: r.int(1...3), inHeight: r.int(1...9), inWidth: r.int(1...5), outChannels: r.int(1...3),
                kernelH: r.int(1...4), kernelW: r.int(1...3), strideH: sh, strideW: r.int(1...2), dilationH: dh,
                padTop: r.int(0...3), padLeft: r.int(0...1), padBottom: r.int(0...3),
                outputPaddingH: r.int(0...(max(sh, dh) - 1)))
            guard g.outHeight > 0, g.outWidth > 0 else { return }
            let lo = r.int(0...(g.outHeight - 1)), hi = r.int((lo + 1)...g.outHeight)
            let x = r.floats(g.inputCount), w = r.floats(g.weightCount), b = r.floats(g.outChannels)
            let whole = referenceConvTranspose(g, input: x, weights: w, bias: b)
            let band = g.band(outputRows: lo..<hi), rows = g.inputRows(forOutputRows: lo..<hi)
            #expect(band.outHeight == hi - lo && band.inHeight == rows.count && band.padTop >= 0, "\(g) \(lo)..<\(hi)")
            var input: [Float] = []
            for c in 0..<g.inChannels {
                input +=
                    x[
                        ((c * g.inHeight + rows.lowerBound) * g.inWidth)..<((c * g.inHeight + rows.upperBound)
                            * g.inWidth)]
            }
            let got = referenceConvTranspose(band, input: input, weights: w, bias: b)
            var expected: [Float] = []
            for c in 0..<g.outChannels {
                expected += whole[((c * g.outHeight + lo) * g.outWidth)..<((c * g.outHeight + hi) * g.outWidth)]
            }
            #expect(scaledError(got, expected) <= Self.tolerance, "\(g) rows \(lo)..<\(hi) from \(rows)")
        }
    }

    /// A hand-computed case: 1-D along W, stride 2, kernel [1, 10, 100], the first output column cropped.
    @Test func handComputedStride2() throws {
        let g = ConvTransposeGeometry(
            inChannels: 1, inHeight: 1, inWidth: 3, outChannels: 1, kernelH: 1, kernelW: 3, strideW: 2, padLeft: 1)
        #expect(g.outWidth == 6)
        let layer = Layer(name: "up", kind: .convTranspose(g, .none), weights: [1, 10, 100], bias: [0.5])
        #expect(try runEngine([layer], input: [1, 2, 3], threads: 1) == [10.5, 102.5, 20.5, 203.5, 30.5, 300.5])
    }
}
