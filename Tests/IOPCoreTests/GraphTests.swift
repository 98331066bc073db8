import IOPCore
import TestSupport
import Testing

/// Graphs of layers (`Layer.inputs`): residual adds, channel concatenation and per-channel scales,
/// against naive references, their buffers placed by lifetime, and no allocation per inference.
@Suite(.serialized) struct GraphTests {
    static let c = 6, h = 5, w = 5

    static func conv(_ cin: Int, _ cout: Int, k: Int) -> ConvGeometry {
        ConvGeometry(
            inChannels: cin, inHeight: h, inWidth: w, outChannels: cout, kernelH: k, kernelW: k, padTop: k / 2,
            padLeft: k / 2, padBottom: k / 2, padRight: k / 2)
    }

    /// A fire module with a residual around it, a scale and a concat of the input:
    ///     x -> a (conv 1x1, relu) -> b (conv 3x3) ; cat(a, b) -> d (conv 1x1) ; x + d (relu) -> scale -> cat(., x)
    static func layers(_ r: inout TestRNG) -> [Layer] {
        let a = conv(c, 4, k: 1), b = conv(4, 5, k: 3), d = conv(9, c, k: 1)
        let n = c * h * w
        return [
            Layer(name: "a", kind: .conv(a, .relu), weights: r.floats(a.weightCount), bias: r.floats(4)),
            Layer(name: "b", kind: .conv(b, .none), weights: r.floats(b.weightCount), bias: r.floats(5)),
            Layer(name: "cat", kind: .concat(first: 4 * h * w, second: 5 * h * w), inputs: [0, 1]),
            Layer(name: "d", kind: .conv(d, .none), weights: r.floats(d.weightCount), bias: r.floats(c)),
            Layer(name: "add", kind: .add(count: n, .relu), inputs: [3, -1]),
            Layer(
                name: "scale", kind: .scale(channels: c, plane: h * w, .none), weights: r.floats(c), bias: r.floats(c)),
            Layer(name: "cat2", kind: .concat(first: n, second: n), inputs: [5, -1]),
        ]
    }

    /// The same graph, written out with the naive kernels.
    static func reference(_ l: [Layer], _ x: [Float]) -> [Float] {
        func geometry(_ i: Int) -> ConvGeometry {
            guard case .conv(let g, _) = l[i].kind else { fatalError() }
            return g
        }
        let a = referenceConv(geometry(0), input: x, weights: l[0].weights, bias: l[0].bias, low: 0)
        let b = referenceConv(geometry(1), input: a, weights: l[1].weights, bias: l[1].bias)
        let d = referenceConv(geometry(3), input: a + b, weights: l[3].weights, bias: l[3].bias)
        let sum = zip(d, x).map { max(0, $0 + $1) }
        let plane = h * w
        let scaled = sum.indices.map { sum[$0] * l[5].weights[$0 / plane] + l[5].bias[$0 / plane] }
        return scaled + x
    }

    @Test(arguments: [1, 3])
    func aGraphMatchesTheNaiveReference(threads: Int) throws {
        var r = TestRNG(state: 21)
        let layers = Self.layers(&r)
        let x = r.floats(Self.c * Self.h * Self.w)
        let got = try runEngine(layers, input: x, threads: threads)
        let want = Self.reference(layers, x)
        #expect(got.count == want.count)
        #expect(scaledError(got, want) <= 1e-5)
    }

    /// A buffer lives from its producer to its last reader: the shortcut around a long chain keeps its
    /// floats, the chain's own buffers reuse each other's, and the arena is smaller than every buffer apart.
    @Test func buffersLiveFromProducerToLastReader() {
        var r = TestRNG(state: 3)
        let layers = Self.layers(&r)
        var layout = ArenaLayout()
        let placed = layout.graph(layers)
        let (ops, _) = layout.finish()
        let n = Self.c * Self.h * Self.w
        // The input is read by the add and the last concat, so nothing may sit on it until then.
        for op in ops[placed.ops] where op.output != placed.input {
            let out = op.output..<(op.output + op.kind.outputCount)
            #expect(!out.overlaps(placed.input..<(placed.input + n)), "an op writes over the live input")
        }
        // The concat's inputs are distinct buffers, both alive when it runs.
        let cat = ops[2]
        #expect(!(cat.input..<(cat.input + 100)).overlaps(cat.other..<(cat.other + 125)))
        let separate = layers.reduce(n) { $0 + ($1.outputCount + arenaAlignment - 1) / arenaAlignment * arenaAlignment }
        #expect(layout.activationFloats < separate)
    }

    @Test func refusesAnInPlaceLayerOnASharedTensorAndAWrongSize() {
        var r = TestRNG(state: 4)
        var layers = Self.layers(&r)
        // The scale would overwrite the sum the second concat also reads.
        layers[6].inputs = [4, -1]
        #expect(throws: CoreError.self) { try Engine(layers: layers, threads: 1) }
        layers = Self.layers(&r)
        layers[4].inputs = [3, 0]  // a's output has 4 channels, not 6
        #expect(throws: CoreError.self) { try Engine(layers: layers, threads: 1) }
    }

    @Test func steadyStateGraphInferenceAllocatesNothing() throws {
        var r = TestRNG(state: 5)
        expectNoAllocationsAfterWarmUp(try Engine(layers: Self.layers(&r), threads: 2))
    }
}
