import IOPCore
import IOPModel
import IOPPlan
import PlanTestSupport
import TestSupport
import Testing

/// IOP chains through channel-local stages, and residual blocks split across the boards.
@Suite struct ChainTests {
    /// A pointwise conv (2 -> 4 channels, ReLU), a 3x3 depthwise conv on its 4 channels (ReLU6) and a
    /// pointwise conv back to 2, on a 2x4x4 input; with `residual`, the input added to the result.
    static func block(residual: Bool, weights: Bool = true) -> Network {
        var rng = SplitMix64(seed: 31)
        func r(_ n: Int) -> [Float] { weights ? (0..<n).map { _ in Float(rng.nextUnit() - 0.5) } : [] }
        let pw1 = ConvGeometry(inChannels: 2, inHeight: 4, inWidth: 4, outChannels: 4, kernelH: 1, kernelW: 1)
        let dw = ConvGeometry(
            inChannels: 4, inHeight: 4, inWidth: 4, outChannels: 4, kernelH: 3, kernelW: 3, padTop: 1, padLeft: 1,
            padBottom: 1, padRight: 1, groups: 4)
        let pw2 = ConvGeometry(inChannels: 4, inHeight: 4, inWidth: 4, outChannels: 2, kernelH: 1, kernelW: 1)
        var layers = [
            Layer(name: "b.expand", kind: .conv(pw1, .relu), weights: r(pw1.weightCount), bias: r(4)),
            Layer(name: "b.dw", kind: .conv(dw, Activation(low: 0, high: 6)), weights: r(dw.weightCount), bias: r(4)),
            Layer(name: "b.project", kind: .conv(pw2, .none), weights: r(pw2.weightCount), bias: r(2)),
        ]
        if residual { layers.append(Layer(name: "b.add", kind: .add(count: 32, .none), inputs: [2, -1])) }
        return Network(name: "block", inputShape: [1, 2, 4, 4], layers: layers)
    }

    /// A ResNet basic block with a downsample: conv1 3x3 stride 2 (2 -> 4 channels, ReLU), conv2 3x3 (4 -> 4),
    /// and the shortcut a 1x1 stride-2 conv of the block's input (2 -> 4), added with a ReLU; 2x4x4 in, 4x2x2 out.
    static func projectionBlock(weights: Bool = true) -> Network {
        var rng = SplitMix64(seed: 47)
        func r(_ n: Int) -> [Float] { weights ? (0..<n).map { _ in Float(rng.nextUnit() - 0.5) } : [] }
        let c1 = ConvGeometry(
            inChannels: 2, inHeight: 4, inWidth: 4, outChannels: 4, kernelH: 3, kernelW: 3, strideH: 2, strideW: 2,
            padTop: 1, padLeft: 1, padBottom: 1, padRight: 1)
        let c2 = ConvGeometry(
            inChannels: 4, inHeight: 2, inWidth: 2, outChannels: 4, kernelH: 3, kernelW: 3, padTop: 1, padLeft: 1,
            padBottom: 1, padRight: 1)
        let ds = ConvGeometry(
            inChannels: 2, inHeight: 4, inWidth: 4, outChannels: 4, kernelH: 1, kernelW: 1, strideH: 2, strideW: 2)
        return Network(
            name: "down", inputShape: [1, 2, 4, 4],
            layers: [
                Layer(name: "b.conv1", kind: .conv(c1, .relu), weights: r(c1.weightCount), bias: r(4)),
                Layer(name: "b.conv2", kind: .conv(c2, .none), weights: r(c2.weightCount), bias: r(4)),
                Layer(
                    name: "b.downsample.0", kind: .conv(ds, .none), weights: r(ds.weightCount), bias: r(4),
                    inputs: [-1]),
                Layer(name: "b.add", kind: .add(count: 16, .relu), inputs: [1, 2]),
            ])
    }

    /// Two boards of 1 GFLOP/s (1e6 FLOP per ms) on 8 Mbit/s links (1000 bytes per ms), 2 ms per message.
    static let twoBoards: Cluster = {
        func board(_ n: String) -> DeviceSpec {
            DeviceSpec(
                name: n, endpoint: "tcp://127.0.0.1:1", gflops: 1, memoryBudgetBytes: 1 << 20, bandwidthMbps: 8,
                setupMs: 2, threads: 1)
        }
        return Cluster(devices: [board("a"), board("b")], leader: 0)
    }()

    /// Figures by hand. FLOPs: expand 2*64*2 = 256, depthwise 2*64*9 = 1152, project 2*32*4 = 256.
    @Test func aChainThroughADepthwiseConvCostsOneReduction() throws {
        let planner = Planner(network: Self.block(residual: false, weights: false), cluster: Self.twoBoards)
        #expect(Stage.split(Self.block(residual: false)).count == 3)
        #expect(planner.chainEnds(0) == [2] && !planner.canPair(0) && planner.chainEnds(1).isEmpty)
        let chain = planner.model.cost(.chain(first: 0, last: 2))
        // One split of the 4 channels, 2 each, kept by the depthwise stage; the project conv by input channels.
        #expect(chain.partitions.map(\.dimension) == [.outputChannels, .outputChannels, .inputChannels])
        #expect(chain.partitions.map(\.extents) == [[2, 2], [2, 2], [2, 2]])
        // Each board computes half of 1664 FLOPs (0.000832 ms); the leader then adds one 32-float partial
        // sum (0.000032 ms). One scatter of the 32-float input (128 B: 2 + 0.128 ms) and one gather of a
        // 32-float partial sum (the same): no message between the three convs.
        #expect(abs(chain.computeMs - 0.000864) < 1e-12)
        #expect(abs(chain.commMs - 4.256) < 1e-12)
        #expect(chain.bytesSent == [128, 128] && chain.messagesSent == [1, 1])
        // At 2 ms a message the leader alone (0.001664 ms) wins; iop and optimal keep it.
        #expect(
            try planner.plan(.optimal).segments == [
                .single(stage: 0, .none), .single(stage: 1, .none), .single(stage: 2, .none),
            ])
    }

    /// The same block with its input added back: one stage, whose branch is the chain. The shortcut never
    /// crosses a link (the leader holds the block's input): the chain's figures plus 32 FLOPs of add.
    @Test func aResidualBlockSplitsItsBranchAndAddsTheShortcutAtTheLeader() throws {
        let planner = Planner(network: Self.block(residual: true, weights: false), cluster: Self.twoBoards)
        let stages = Stage.split(Self.block(residual: true))
        #expect(stages.count == 1 && stages[0].branch?.map(\.layers) == [0..<1, 1..<2, 2..<3])
        #expect(planner.canSplitResidual(0))
        let residual = planner.model.cost(.residual(stage: 0))
        #expect(residual.partitions.map(\.stage) == [0, 0, 0])
        #expect(abs(residual.computeMs - 0.000896) < 1e-12)
        #expect(abs(residual.commMs - 4.256) < 1e-12)
        #expect(residual.bytesSent == [128, 128])
    }

    /// Figures by hand for a projection shortcut split by input channels. FLOPs: conv1 2*16*18 = 576,
    /// conv2 2*16*36 = 1152, downsample 2*16*2 = 64. The branch's 4 channels split 2 and 2, so the
    /// downsample's 2 input channels split 1 and 1: each board computes 864 + 32 FLOPs and adds its 16
    /// shortcut floats into its partial sum (0.000912 ms); the leader adds one partial sum (0.000016 ms).
    /// The shortcut costs no byte: one scatter of the 32-float input (128 B: 2.128 ms) and one gather of a
    /// 16-float partial sum (64 B: 2.064 ms), the sum of branch and shortcut.
    @Test func aProjectionShortcutSplitsByInputChannelsIntoTheOneReduction() throws {
        let net = Self.projectionBlock(weights: false)
        let stages = Stage.split(net)
        #expect(stages.count == 1 && stages[0].branch?.map(\.layers) == [0..<1, 1..<2] && stages[0].projection == 2)
        let planner = Planner(network: net, cluster: Self.twoBoards)
        #expect(planner.canSplitResidual(0))
        let cost = planner.model.cost(.residual(stage: 0))
        #expect(cost.partitions.map(\.layer) == ["b.conv1", "b.conv2", "b.downsample.0"])
        #expect(cost.partitions.map(\.dimension) == [.outputChannels, .inputChannels, .inputChannels])
        #expect(cost.partitions.map(\.extents) == [[2, 2], [2, 2], [1, 1]])
        #expect(abs(cost.computeMs - 0.000928) < 1e-12, "\(cost.computeMs)")
        #expect(abs(cost.commMs - 4.192) < 1e-12, "\(cost.commMs)")
        #expect(cost.bytesSent == [128, 64] && cost.messagesSent == [1, 1])
        // The leader adds both biases once, then the block's ReLU: no add of a shortcut after the reduction.
        let plan = Plan(planner: .iop, segments: [.residual(stage: 0)], costs: [cost], cluster: Self.twoBoards)
        let program = Slicer.programs(plan, network: Self.projectionBlock(), stages: stages)[0]
        #expect(!program.addsShortcut && program.reduceLayers.count == 1)
        #expect(program.parts.map { $0.layers.map(\.inputOffset) } == [[nil, nil, 0, nil], [nil, nil, 16, nil]])
    }

    /// Forced chains and residual segments (identity and projection shortcuts) run exactly, against
    /// single-board inference.
    @Test(arguments: ["chain", "residual", "projection"])
    func forcedChainsExecuteExactly(_ form: String) throws {
        let net = form == "projection" ? Self.projectionBlock() : Self.block(residual: form == "residual")
        for cluster in [Self.twoBoards, try Examples.cluster("mixed-pi4-pi3")] {
            let planner = Planner(network: net, cluster: cluster)
            let segment: Segment = form == "chain" ? .chain(first: 0, last: 2) : .residual(stage: 0)
            let plan = Plan(planner: .iop, segments: [segment], costs: [planner.model.cost(segment)], cluster: cluster)
            var rng = SplitMix64(seed: 3)
            let x = (0..<net.inputCount).map { _ in Float(rng.nextUnit() * 2 - 1) }
            let err = scaledError(
                try LocalExecutor(plan: plan, network: net).run(x), try net.makeEngine(threads: 1).run(x))
            #expect(err <= 1e-5, "scaled error \(err)")
        }
    }

    /// Every chain and every splittable residual block of the zoo's graphs, forced on a four-board cluster,
    /// runs exactly; MobileNetV2 has both (inverted residuals, and chains in its blocks without a shortcut),
    /// ResNet-18 residual pairs in all eight blocks (five identity shortcuts, three projections).
    @Test(arguments: ["mobilenet_v2", "resnet18"])
    func everyZooChainAndResidualExecutesExactly(_ model: String) throws {
        let net = try Zoo.make(model, inputSize: 32)
        let cluster = try Examples.cluster("mixed-pi4-pi3")
        let planner = Planner(network: net, cluster: cluster)
        let stages = Stage.split(net)
        var segments: [Segment] = []
        var i = 0, chains = 0, residuals = 0
        while i < stages.count {
            if let last = planner.chainEnds(i).last {
                segments.append(.chain(first: i, last: last)); chains += 1
            } else if planner.canSplitResidual(i) {
                segments.append(.residual(stage: i)); residuals += 1
            } else {
                segments.append(.single(stage: i, .none))
            }
            i += segments.last!.stages.count
        }
        // ResNet-18: its eight blocks, three of them projecting their shortcut; no chain between regions.
        let expected = model == "resnet18" ? (0, 8) : (7, 10)
        if model == "resnet18" { #expect(stages.filter { $0.projection != nil }.count == 3) }
        #expect(chains >= expected.0 && residuals == expected.1, "\(chains) chains, \(residuals) residuals")
        let plan = Plan(planner: .iop, segments: segments, costs: segments.map(planner.model.cost), cluster: cluster)
        var rng = SplitMix64(seed: 9)
        let x = (0..<net.inputCount).map { _ in Float(rng.nextUnit() * 2 - 1) }
        let err = scaledError(try LocalExecutor(plan: plan, network: net).run(x), try net.makeEngine(threads: 1).run(x))
        #expect(err <= 1e-4, "scaled error \(err)")
    }
}
