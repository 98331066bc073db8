import IOPCore
import IOPModel
import IOPPlan
import PlanTestSupport
import TestSupport
import Testing

/// DeepThings' fused tile partitioning (`ftp`): a run of convs by rows, halos through every layer.
@Suite struct FusedTileTests {
    /// Two 3x3 pad-1 convs (1 -> 2 -> 1 channels) on an 8x4 input, two equal boards (as in ChainTests).
    @Test func twoConvsNeedTheHaloOfBoth() throws {
        let c1 = ConvGeometry(
            inChannels: 1, inHeight: 8, inWidth: 4, outChannels: 2, kernelH: 3, kernelW: 3, padTop: 1, padLeft: 1,
            padBottom: 1, padRight: 1)
        let c2 = ConvGeometry(
            inChannels: 2, inHeight: 8, inWidth: 4, outChannels: 1, kernelH: 3, kernelW: 3, padTop: 1, padLeft: 1,
            padBottom: 1, padRight: 1)
        var rng = SplitMix64(seed: 41)
        func r(_ n: Int) -> [Float] { (0..<n).map { _ in Float(rng.nextUnit() - 0.5) } }
        let net = Network(
            name: "two-convs", inputShape: [1, 1, 8, 4],
            layers: [
                Layer(name: "c1", kind: .conv(c1, .relu), weights: r(c1.weightCount), bias: r(2)),
                Layer(name: "c2", kind: .conv(c2, .none), weights: r(c2.weightCount), bias: r(1)),
            ])
        let stages = Stage.split(net)
        // Rows 0..<4 of c2 need rows 0..<5 of c1, which need input rows 0..<6; rows 4..<8 need 3..<8 and 2..<8.
        #expect(Stage.bands(stages, outputRows: 0..<4) == [0..<5, 0..<4])
        #expect(stages[0].rowsNeeded(outputRows: 0, 5).input == 0..<6)
        #expect(Stage.bands(stages, outputRows: 4..<8) == [3..<8, 4..<8])
        let planner = Planner(network: net, cluster: ChainTests.twoBoards)
        #expect(planner.fusedRuns(0) == [.fusedTiles(first: 0, last: 1)])
        let cost = planner.model.cost(.fusedTiles(first: 0, last: 1))
        #expect(cost.partitions.map(\.dimension) == [.tiles, .tiles] && cost.partitions[0].extents == [4, 4])
        // Board b: input rows 2..<8 (6 rows x 4 = 24 floats, 96 B: 2 + 0.096 ms), its 4 output rows back
        // (16 floats, 64 B: 2 + 0.064 ms). FLOPs: c1 2*64*9 = 1152 for 8 rows, 5 of them 720; c2 2*32*18 = 1152,
        // 4 rows 576: 1296 on each board (0.001296 ms), no exchange between c1 and c2 and no reduction.
        #expect(cost.bytesSent == [96, 64] && cost.messagesSent == [1, 1])
        #expect(abs(cost.commMs - 4.16) < 1e-12)
        #expect(abs(cost.computeMs - 0.001296) < 1e-12)
        let plan = Plan(
            planner: .ftp, segments: [.fusedTiles(first: 0, last: 1)], costs: [cost], cluster: planner.model.cluster)
        let x = r(32)
        let err = scaledError(try LocalExecutor(plan: plan, network: net).run(x), try net.makeEngine(threads: 1).run(x))
        #expect(err <= 1e-5, "scaled error \(err)")
    }

    /// The longest fused runs the planner offers, forced from every stage where one starts, run exactly:
    /// pools and strides (VGG-11), depthwise convs (MobileNetV2's blocks without a shortcut).
    @Test(arguments: ["vgg11", "mobilenet_v2"])
    func forcedLongestRunsExecuteExactly(_ model: String) throws {
        let net = try Zoo.make(model, inputSize: 32)
        let cluster = try Examples.cluster("mixed-pi4-pi3")
        let planner = Planner(network: net, cluster: cluster)
        let stages = Stage.split(net)
        var segments: [Segment] = []
        var i = 0
        while i < stages.count {
            segments.append(planner.fusedRuns(i).last ?? .single(stage: i, .none))
            i += segments.last!.stages.count
        }
        #expect(segments.contains { $0.stages.count >= (model == "vgg11" ? Planner.maxFusedStages : 6) })
        let plan = Plan(planner: .ftp, segments: segments, costs: segments.map(planner.model.cost), cluster: cluster)
        var rng = SplitMix64(seed: 13)
        let x = (0..<net.inputCount).map { _ in Float(rng.nextUnit() * 2 - 1) }
        let err = scaledError(try LocalExecutor(plan: plan, network: net).run(x), try net.makeEngine(threads: 1).run(x))
        #expect(err <= 1e-4, "scaled error \(err)")
    }
}
