import IOPCore
import IOPModel
import IOPPlan
import PlanTestSupport
import TestSupport
import Testing

/// Fire modules (SqueezeNet): the two expands and their concat split as a unit by output channels.
@Suite struct FireModuleTests {
    /// A squeeze 1x1 (4 -> 2, ReLU), then expand1x1 and expand3x3 (2 -> 4 each, ReLU) concatenated: 4x2x2 in,
    /// 8x2x2 out.
    static func fire(weights: Bool = true) -> Network {
        var rng = SplitMix64(seed: 53)
        func r(_ n: Int) -> [Float] { weights ? (0..<n).map { _ in Float(rng.nextUnit() - 0.5) } : [] }
        let squeeze = ConvGeometry(inChannels: 4, inHeight: 2, inWidth: 2, outChannels: 2, kernelH: 1, kernelW: 1)
        let e1 = ConvGeometry(inChannels: 2, inHeight: 2, inWidth: 2, outChannels: 4, kernelH: 1, kernelW: 1)
        let e3 = ConvGeometry(
            inChannels: 2, inHeight: 2, inWidth: 2, outChannels: 4, kernelH: 3, kernelW: 3, padTop: 1, padLeft: 1,
            padBottom: 1, padRight: 1)
        return Network(
            name: "fire", inputShape: [1, 4, 2, 2],
            layers: [
                Layer(name: "f.squeeze", kind: .conv(squeeze, .relu), weights: r(squeeze.weightCount), bias: r(2)),
                Layer(name: "f.expand1x1", kind: .conv(e1, .relu), weights: r(e1.weightCount), bias: r(4)),
                Layer(
                    name: "f.expand3x3", kind: .conv(e3, .relu), weights: r(e3.weightCount), bias: r(4), inputs: [0]),
                Layer(name: "f.cat", kind: .concat(first: 16, second: 16), inputs: [1, 2]),
            ])
    }

    /// Figures by hand, on ChainTests' two boards (1e6 FLOP per ms, 1000 bytes per ms, 2 ms a message).
    /// The expands' 4 channels split 2 and 2: each board computes half of 64 + 576 FLOPs (0.00032 ms) from
    /// the whole 8-float squeeze output (32 B: 2.032 ms), and sends its 2 + 2 channels, 16 floats
    /// (64 B: 2.064 ms); the gather is the concat, no reduction.
    @Test func aFireModuleSplitsItsExpandsByOutputChannels() throws {
        let net = Self.fire(weights: false)
        let stages = Stage.split(net)
        #expect(stages.count == 2 && stages[1].concatenated == [1, 2] && stages[1].outputUnits == 4)
        #expect(stages[1].allowedDimensions == [.none, .outputChannels])
        let planner = Planner(network: net, cluster: ChainTests.twoBoards)
        #expect(planner.chainEnds(0).isEmpty && planner.chainEnds(1).isEmpty)
        let cost = planner.model.cost(.single(stage: 1, .outputChannels))
        #expect(cost.partitions.map(\.extents) == [[2, 2]])
        #expect(abs(cost.computeMs - 0.00032) < 1e-12, "\(cost.computeMs)")
        #expect(abs(cost.commMs - 4.096) < 1e-12, "\(cost.commMs)")
        #expect(cost.bytesSent == [32, 64] && cost.messagesSent == [1, 1])
    }

    /// Forced by output channels, a fire module's parts place their two runs where the concat has them.
    @Test func aForcedFireSplitExecutesExactly() throws {
        let net = Self.fire()
        for cluster in [ChainTests.twoBoards, try Examples.cluster("mixed-pi4-pi3")] {
            let planner = Planner(network: net, cluster: cluster)
            let segments: [Segment] = [.single(stage: 0, .none), .single(stage: 1, .outputChannels)]
            let plan = Plan(planner: .oc, segments: segments, costs: segments.map(planner.model.cost), cluster: cluster)
            var rng = SplitMix64(seed: 5)
            let x = (0..<net.inputCount).map { _ in Float(rng.nextUnit() * 2 - 1) }
            let err = scaledError(
                try LocalExecutor(plan: plan, network: net).run(x), try net.makeEngine(threads: 1).run(x))
            #expect(err <= 1e-5, "scaled error \(err)")
        }
    }

    /// SqueezeNet 1.1 with all eight fire modules split by output channels on four boards runs exactly.
    @Test func everySqueezeNetFireModuleSplitExecutesExactly() throws {
        let net = try Zoo.make("squeezenet1_1", inputSize: 32)
        let cluster = try Examples.cluster("mixed-pi4-pi3")
        let planner = Planner(network: net, cluster: cluster)
        let stages = Stage.split(net)
        #expect(stages.filter { $0.concatenated != nil }.count == 8)
        let segments: [Segment] = stages.indices.map {
            .single(stage: $0, stages[$0].concatenated != nil ? .outputChannels : .none)
        }
        let plan = Plan(planner: .oc, segments: segments, costs: segments.map(planner.model.cost), cluster: cluster)
        var rng = SplitMix64(seed: 11)
        let x = (0..<net.inputCount).map { _ in Float(rng.nextUnit() * 2 - 1) }
        let err = scaledError(try LocalExecutor(plan: plan, network: net).run(x), try net.makeEngine(threads: 1).run(x))
        #expect(err <= 1e-4, "scaled error \(err)")
    }
}
