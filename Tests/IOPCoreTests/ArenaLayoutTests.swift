import Foundation
import IOPCore
import Testing

/// Buffer placement by lifetime, offsets worked out by hand (floats; sizes round up to 16-float lines).
@Suite struct ArenaLayoutTests {
    @Test func buffersShareFloatsOnlyWhenTheirLifetimesDoNotOverlap() {
        var layout = ArenaLayout()
        // A (20 -> 32 floats) lives through phases 0-2: offset 0.
        #expect(layout.place(20, phases: 0...2) == 0)
        // B (16) lives in phase 0 beside A: 32.
        #expect(layout.place(16, phases: 0...0) == 32)
        // C (16) lives in phase 1, when B is dead: B's floats, 32.
        #expect(layout.place(16, phases: 1...1) == 32)
        // D (40 -> 48) lives in phases 1-2 beside A and C: 48.
        #expect(layout.place(40, phases: 1...2) == 48)
        #expect(layout.activationFloats == 96)
        // E (10 -> 16, after 16 floats of room) in phase 2: the free gap 32..<48 is 16 floats,
        // too small for room + buffer, so it goes after D: 96 + 16.
        #expect(layout.place(10, room: 16, phases: 2...2) == 112)
        #expect(layout.activationFloats == 128)
        // A new step: nothing of the last one is alive.
        layout.beginStep()
        #expect(layout.place(200, phases: 0...0) == 0)
        #expect(layout.activationFloats == 208)
    }

    @Test func aChainPingPongsBetweenTwoBuffersAndParametersFollowTheActivations() {
        var layout = ArenaLayout()
        let conv = ConvGeometry(
            inChannels: 2, inHeight: 4, inWidth: 4, outChannels: 3, kernelH: 3, kernelW: 3,
            padTop: 1, padLeft: 1, padBottom: 1, padRight: 1)
        let kinds: [LayerKind] = [
            .conv(conv, .relu),
            .maxPool(
                PoolGeometry(
                    channels: 3, inHeight: 4, inWidth: 4, kernelH: 2, kernelW: 2,
                    strideH: 2, strideW: 2)),
            .linear(LinearGeometry(inFeatures: 12, outFeatures: 5), .none),
        ]
        let placed = layout.chain(kinds)
        // Input and largest output (48) share one buffer size: 48 each, at 0 and 48.
        #expect(placed.input == 0)
        #expect(layout.ops.map(\.input) == [0, 48, 0] && layout.ops.map(\.output) == [48, 0, 48])
        #expect(placed.output == 48)
        let (ops, arena) = layout.finish()
        // Parameters start where the activation region ends.
        #expect(ops[0].weights == layout.activationFloats)
        #expect(arena == layout.activationFloats + layout.parameterFloats)
    }
}

/// The stream's score: the logistic function without libm, against Foundation's exp: relative 5e-6
/// (exp's float range reduction); the far tails, below 1e-30, only to 1e-30 absolute (float denormals).
@Test func sigmoidMatchesFoundation() {
    for x in stride(from: Float(-100), through: 100, by: 0.37) {
        let expected = 1 / (1 + Foundation.exp(-Double(x)))
        let got = Double(ElementwiseKernel.sigmoid(x))
        #expect(abs(got - expected) <= 5e-6 * expected + 1e-30, "sigmoid(\(x)) = \(got), not \(expected)")
    }
}
