import IOPCore
import IOPModel
import IOPPlan
import IOPProgram
import PlanTestSupport
import TestSupport
import Testing

/// Inception blocks (three or more branches concatenated, `Stage.inception`) split by output channels as a
/// unit: each board runs a run of whole branches.
@Suite struct InceptionTests {
    /// Three branches on a 2x4x4 input: a 1x1 2 -> 2; a 1x1 2 -> 1 then a 3x3 1 -> 2; a 1x1 2 -> 1; their
    /// concat (5x4x4).
    static func block(weights: Bool = true) -> Network {
        var rng = SplitMix64(seed: 61)
        func r(_ n: Int) -> [Float] { weights ? (0..<n).map { _ in Float(rng.nextUnit() - 0.5) } : [] }
        func conv(_ name: String, _ g: ConvGeometry, inputs: [Int]) -> Layer {
            Layer(name: name, kind: .conv(g, .relu), weights: r(g.weightCount), bias: r(g.outChannels), inputs: inputs)
        }
        let one = ConvGeometry(inChannels: 2, inHeight: 4, inWidth: 4, outChannels: 2, kernelH: 1, kernelW: 1)
        let reduce = ConvGeometry(inChannels: 2, inHeight: 4, inWidth: 4, outChannels: 1, kernelH: 1, kernelW: 1)
        let three = ConvGeometry(
            inChannels: 1, inHeight: 4, inWidth: 4, outChannels: 2, kernelH: 3, kernelW: 3, padTop: 1, padLeft: 1,
            padBottom: 1, padRight: 1)
        return Network(
            name: "inception", inputShape: [1, 2, 4, 4],
            layers: [
                conv("i.b1", one, inputs: [-1]), conv("i.b2.reduce", reduce, inputs: [-1]),
                conv("i.b2", three, inputs: []), conv("i.b3", reduce, inputs: [-1]),
                Layer(name: "i.cat", kind: .concat(first: 32, second: 32), inputs: [0, 2]),
                Layer(name: "i.cat", kind: .concat(first: 64, second: 16), inputs: [4, 3]),
            ])
    }

    /// Figures by hand on two boards of 1e6 FLOP/ms, 1000 B/ms and 2 ms a message. FLOPs per branch: 2*32*2 =
    /// 128; 2*16*2 + 2*32*9 = 640; 2*16*2 = 64. Of the cuts in branch order, the first branch alone on the
    /// leader and the other two on the second board makes the slower of the two fastest (704 against 128
    /// FLOPs, where the others give 832 or 768): 2 and 3 channels. The second board gets the 32-float input
    /// (128 B: 2.128 ms) and sends its 3 channels (48 floats, 192 B: 2.192 ms); nothing is reduced.
    @Test func anInceptionBlockSplitsByWholeBranches() throws {
        let planner = Planner(network: Self.block(weights: false), cluster: ChainTests.twoBoards)
        let stage = try #require(planner.model.stages.first)
        #expect(planner.model.stages.count == 1 && stage.inception?.map(\.layers) == [[0], [1, 2], [3]])
        #expect(stage.inception?.map(\.channels) == [2, 2, 1] && stage.outputUnits == 5)
        #expect(planner.chainEnds(0).isEmpty && planner.model.branchExtents(0) == [2, 3])
        let cost = planner.model.cost(.single(stage: 0, .outputChannels))
        #expect(cost.partitions.map(\.extents) == [[2, 3]])
        #expect(abs(cost.computeMs - 0.000704) < 1e-12, "\(cost.computeMs)")
        #expect(abs(cost.commMs - 4.32) < 1e-12, "\(cost.commMs)")
        #expect(cost.bytesSent == [128, 192] && cost.messagesSent == [1, 1])
    }

    /// The block split by branches runs exactly, against one board; the fixture's four-branch block (a 1x1,
    /// 1x1 -> 3x3, 1x1 -> 5x5, pool -> 1x1) against ONNX Runtime, on two and on four boards.
    @Test func splitInceptionBlocksEqualOneBoardAndONNXRuntime() throws {
        let block = Self.block()
        var rng = SplitMix64(seed: 5)
        let x = (0..<block.inputCount).map { _ in Float(rng.nextUnit() * 2 - 1) }
        let planner = Planner(network: block, cluster: ChainTests.twoBoards)
        let segment = Segment.single(stage: 0, .outputChannels)
        let plan = Plan(
            planner: .oc, segments: [segment], costs: [planner.model.cost(segment)], cluster: planner.model.cluster)
        #expect(
            scaledError(try LocalExecutor(plan: plan, network: block).run(x), try block.makeEngine(threads: 1).run(x))
                <= 1e-6)

        let net = try ONNXImporter.load(path: Fixtures.path("inception_block.onnx"))
        let input = try NPY.read(path: Fixtures.path("inception_block.input.npy")).values
        let expected = try NPY.read(path: Fixtures.path("inception_block.output.npy")).values
        for cluster in [ChainTests.twoBoards, try Examples.cluster("mixed-pi4-pi3")] {
            let planner = Planner(network: net, cluster: cluster)
            let segments: [Segment] = planner.model.stages.indices.map {
                planner.model.stages[$0].inception != nil
                    ? .single(stage: $0, .outputChannels) : .single(stage: $0, .none)
            }
            let split = zip(segments, segments.map(planner.model.cost)).filter {
                $0.0 != .single(stage: $0.0.stages[0], .none)
            }
            // The block's 15 channels, in whole branches (4, 6, 3 and 2 channels), on at least two boards.
            let extents = split.first?.1.partitions[0].extents ?? []
            #expect(split.count == 1 && extents.reduce(0, +) == 15 && extents.filter { $0 > 0 }.count >= 2)
            var edges = Set([0]), run = 0
            for e in extents { run += e; edges.insert(run) }
            #expect(edges.isSubset(of: [0, 4, 10, 13, 15]), "\(extents)")
            let plan = Plan(planner: .oc, segments: segments, costs: segments.map(planner.model.cost), cluster: cluster)
            let y = try LocalExecutor(plan: plan, network: net).run(input)
            #expect(scaledError(y, expected) <= 1e-4, "against ONNX Runtime: \(scaledError(y, expected))")
            #expect(scaledError(y, try net.makeEngine(threads: 1).run(input)) <= 1e-5)
        }
    }
}
