import IOPCore
import TestSupport
import Testing

// Naive kernels written straight from the ONNX operator definitions, with
// none of the packing, blocking or padding tricks of the real ones.

func referenceConv(
    _ g: ConvGeometry, input: [Float], weights: [Float], bias: [Float], low: Float = -.infinity, high: Float = .infinity
) -> [Float] {
    var out = [Float](repeating: 0, count: g.outputCount)
    let icg = g.inChannels / g.groups, ocg = g.outChannels / g.groups
    for oc in 0..<g.outChannels {
        let grp = oc / ocg
        for oy in 0..<g.outHeight {
            for ox in 0..<g.outWidth {
                var s: Double = bias.isEmpty ? 0 : Double(bias[oc])
                for ic in 0..<icg {
                    for ky in 0..<g.kernelH {
                        for kx in 0..<g.kernelW {
                            let iy = oy * g.strideH - g.padTop + ky * g.dilationH
                            let ix = ox * g.strideW - g.padLeft + kx * g.dilationW
                            if iy < 0 || iy >= g.inHeight || ix < 0 || ix >= g.inWidth { continue }
                            let x = input[((grp * icg + ic) * g.inHeight + iy) * g.inWidth + ix]
                            let w = weights[((oc * icg + ic) * g.kernelH + ky) * g.kernelW + kx]
                            s += Double(x) * Double(w)
                        }
                    }
                }
                out[(oc * g.outHeight + oy) * g.outWidth + ox] = min(max(Float(s), low), high)
            }
        }
    }
    return out
}

func referenceLinear(input: [Float], weights: [Float], bias: [Float], outFeatures: Int) -> [Float] {
    let k = input.count
    return (0..<outFeatures).map { o in
        var s: Double = bias.isEmpty ? 0 : Double(bias[o])
        for i in 0..<k { s += Double(input[i]) * Double(weights[o * k + i]) }
        return Float(s)
    }
}

/// Pools by enumerating every window position in the padded coordinate space.
func referencePool(_ g: PoolGeometry, input: [Float], isMax: Bool) -> [Float] {
    var out = [Float](repeating: 0, count: g.outputCount)
    for c in 0..<g.channels {
        for oy in 0..<g.outHeight {
            for ox in 0..<g.outWidth {
                var best = -Float.infinity, sum: Double = 0, valid = 0, inPadded = 0
                for ky in 0..<g.kernelH {
                    for kx in 0..<g.kernelW {
                        let iy = oy * g.strideH - g.padTop + ky, ix = ox * g.strideW - g.padLeft + kx
                        if iy < g.inHeight + g.padBottom && ix < g.inWidth + g.padRight { inPadded += 1 }
                        if iy < 0 || iy >= g.inHeight || ix < 0 || ix >= g.inWidth { continue }
                        let v = input[(c * g.inHeight + iy) * g.inWidth + ix]
                        best = max(best, v); sum += Double(v); valid += 1
                    }
                }
                out[(c * g.outHeight + oy) * g.outWidth + ox] =
                    isMax ? best : Float(sum / Double(g.countIncludePad ? inPadded : valid))
            }
        }
    }
    return out
}

struct TestRNG {
    var state: UInt64
    mutating func next() -> UInt64 {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return state >> 11
    }
    mutating func int(_ r: ClosedRange<Int>) -> Int { r.lowerBound + Int(next() % UInt64(r.count)) }
    mutating func floats(_ n: Int) -> [Float] { (0..<n).map { _ in Float(Double(next() % 2_000_001) / 1_000_000 - 1) } }
}

func runEngine(_ layers: [Layer], input: [Float], threads: Int) throws -> [Float] {
    try Engine(layers: layers, threads: threads).run(input)
}

/// One conv of geometry `g` on random input, weights, bias (or none) and ReLU (or none), against
/// `referenceConv` at 1 and 3 threads.
func expectConvMatchesReference(_ g: ConvGeometry, _ r: inout TestRNG, tolerance: Float, label: String) throws {
    let x = r.floats(g.inputCount), w = r.floats(g.weightCount)
    let b = r.int(0...1) == 0 ? [] : r.floats(g.outChannels)
    let relu = r.int(0...1) == 0
    let layer = Layer(name: "conv", kind: .conv(g, relu ? .relu : .none), weights: w, bias: b)
    let expected = referenceConv(g, input: x, weights: w, bias: b, low: relu ? 0 : -.infinity)
    for threads in [1, 3] {
        let err = scaledError(try runEngine([layer], input: x, threads: threads), expected)
        #expect(err <= tolerance, "\(label) \(g) threads \(threads): error \(err)")
    }
}
