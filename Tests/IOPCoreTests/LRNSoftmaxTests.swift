import Foundation
import IOPCore
import TestSupport
import Testing

/// LRN and Softmax along an axis against their ONNX definitions computed in Double with Foundation.
@Suite struct LRNSoftmaxTests {
    @Test(arguments: [
        (1, 1, 1, 1e-4, 0.75, 1.0), (5, 9, 3, 0.5, 0.75, 2.0), (8, 13, 5, 0.9, 0.6, 0.4), (6, 4, 4, 2.0, 1.5, 1.0),
    ])
    func lrnMatchesTheDefinition(
        _ channels: Int, _ plane: Int, _ size: Int, _ alpha: Double, _ beta: Double, _ bias: Double
    ) throws {
        var r = TestRNG(state: 41)
        let x = r.floats(channels * plane).map { $0 * 3 }
        let kind = LayerKind.lrn(
            channels: channels, plane: plane, size: size, alpha: Float(alpha), beta: Float(beta), bias: Float(bias))
        let got = try runEngine([Layer(name: "lrn", kind: kind)], input: x, threads: 1)
        for c in 0..<channels {
            for i in 0..<plane {
                var s = 0.0
                for j in max(0, c - (size - 1) / 2)...min(channels - 1, c + size / 2) {
                    s += Double(x[j * plane + i]) * Double(x[j * plane + i])
                }
                let want = Double(x[c * plane + i]) / pow(bias + alpha / Double(size) * s, beta)
                let err = abs(Double(got[c * plane + i]) - want) / max(1, abs(want))
                #expect(err <= 2e-6, "channel \(c) pixel \(i): \(got[c * plane + i]) != \(want)")
            }
        }
    }

    @Test(arguments: [(1, 10, 1), (3, 5, 4), (1, 6, 20), (4, 1, 3), (2, 7, 1)])
    func softmaxAlongTheMiddleAxis(_ outer: Int, _ count: Int, _ inner: Int) throws {
        var r = TestRNG(state: 43)
        let x = r.floats(outer * count * inner).map { $0 * 10 }
        let layer = Layer(name: "sm", kind: .softmax(count: count, outer: outer, inner: inner))
        let got = try runEngine([layer], input: x, threads: 1)
        for o in 0..<outer {
            for i in 0..<inner {
                let at = (0..<count).map { (o * count + $0) * inner + i }
                let m = at.map { Double(x[$0]) }.max()!
                let sum = at.reduce(0.0) { $0 + Foundation.exp(Double(x[$1]) - m) }
                for k in at {
                    let want = Foundation.exp(Double(x[k]) - m) / sum
                    #expect(abs(Double(got[k]) - want) <= 1e-6, "\(o), \(i): \(got[k]) != \(want)")
                }
            }
        }
    }
}
