import Foundation
import IOPCore
import TestSupport
import Testing

/// The pointwise functions against their ONNX definitions written with Foundation's exp and tanh, over
/// counts that leave a partial vector and values that reach every tail.
@Suite struct PointwiseTests {
    static let functions: [PointwiseFunction] = [
        .leakyRelu(alpha: 0.01), .leakyRelu(alpha: -0.7), .prelu, .sigmoid, .hardSigmoid(alpha: 0.2, beta: 0.5),
        .hardSigmoid(alpha: 0.5, beta: 0.4), .hardSwish, .tanh,
    ]

    static func reference(_ f: PointwiseFunction, _ x: Float, slope: Float) -> Float {
        let d = Double(x)
        switch f {
        case .leakyRelu(let a): return x < 0 ? a * x : x
        case .prelu: return x < 0 ? slope * x : x
        case .sigmoid: return Float(1 / (1 + Foundation.exp(-d)))
        case .hardSigmoid(let a, let b): return Float(max(0, min(1, Double(a) * d + Double(b))))
        case .hardSwish: return Float(d * max(0, min(1, d / 6 + 0.5)))
        case .tanh: return Float(Foundation.tanh(d))
        }
    }

    @Test(arguments: functions)
    func matchesTheDefinition(_ f: PointwiseFunction) throws {
        var r = TestRNG(state: 31)
        for (channels, plane) in [(1, 1), (3, 5), (2, 17), (7, 33), (16, 64)] {
            // Most values in +-8, some far into the tails (exp underflows below -87), and exact zeros.
            var x = r.floats(channels * plane).map { $0 * 8 }
            for i in stride(from: 0, to: x.count, by: 5) { x[i] *= 30 }
            for i in stride(from: 3, to: x.count, by: 11) { x[i] = 0 }
            let slopes = f.hasSlopes ? r.floats(channels) : []
            let layer = Layer(name: "f", kind: .pointwise(channels: channels, plane: plane, f), weights: slopes)
            let got = try runEngine([layer], input: x, threads: 1)
            for i in x.indices {
                let want = Self.reference(f, x[i], slope: slopes.isEmpty ? 0 : slopes[i / plane])
                // Absolute for values of order one, relative for the unbounded ones.
                let err = abs(got[i] - want) / max(1, abs(want))
                #expect(err <= 3e-7, "\(f) at \(x[i]): \(got[i]) != \(want)")
            }
        }
    }
}
