import IOPCore
import IOPModel
import IOPPlan
import IOPProgram
import PlanTestSupport
import TestSupport
import Testing

/// Residual blocks whose branch is no single chain but ends in one (ResNet-50's bottlenecks,
/// `Segment.bottleneck`): the leader runs the first 1x1 (and the projection), the boards the pair 3x3 -> 1x1.
@Suite struct BottleneckTests {
    /// A bottleneck on a 4x4x4 input: 1x1 4 -> 2 (ReLU), 3x3 2 -> 2 (ReLU), 1x1 2 -> 4, plus the input, ReLU.
    static func block(weights: Bool = true) -> Network {
        var rng = SplitMix64(seed: 53)
        func r(_ n: Int) -> [Float] { weights ? (0..<n).map { _ in Float(rng.nextUnit() - 0.5) } : [] }
        let c1 = ConvGeometry(inChannels: 4, inHeight: 4, inWidth: 4, outChannels: 2, kernelH: 1, kernelW: 1)
        let c2 = ConvGeometry(
            inChannels: 2, inHeight: 4, inWidth: 4, outChannels: 2, kernelH: 3, kernelW: 3, padTop: 1, padLeft: 1,
            padBottom: 1, padRight: 1)
        let c3 = ConvGeometry(inChannels: 2, inHeight: 4, inWidth: 4, outChannels: 4, kernelH: 1, kernelW: 1)
        return Network(
            name: "bottleneck", inputShape: [1, 4, 4, 4],
            layers: [
                Layer(name: "b.conv1", kind: .conv(c1, .relu), weights: r(c1.weightCount), bias: r(2)),
                Layer(name: "b.conv2", kind: .conv(c2, .relu), weights: r(c2.weightCount), bias: r(2)),
                Layer(name: "b.conv3", kind: .conv(c3, .none), weights: r(c3.weightCount), bias: r(4)),
                Layer(name: "b.add", kind: .add(count: 64, .relu), inputs: [2, -1]),
            ])
    }

    static func fixture() throws -> Network { try ONNXImporter.load(path: Fixtures.path("bottleneck_net.onnx")) }

    /// Every block of `net` that only a bottleneck splits, as one; every other stage on the leader.
    static func forced(_ planner: Planner) -> [Segment] {
        planner.model.stages.indices.map {
            planner.bottleneckHead($0) != nil && !planner.canSplitResidual($0)
                ? .bottleneck(stage: $0) : .single(stage: $0, .none)
        }
    }

    /// Figures by hand on two boards of 1e6 FLOP/ms, 1000 B/ms and 2 ms a message. FLOPs: conv1 2*32*4 = 256,
    /// conv2 2*32*18 = 1152, conv3 2*64*2 = 256. No chain covers the branch (conv2 reads all of conv1's
    /// channels); after conv1, conv2 by output channels and conv3 by input channels do: 1 channel each.
    /// Each board computes half of conv2 and conv3 (704 FLOPs); the leader first runs conv1 alone (256) and
    /// last adds one 64-float partial sum (64) and the shortcut (64): 0.000704 + 0.000384 ms. One scatter of
    /// conv1's 32-float output (128 B: 2.128 ms), not the 64-float block input, and one gather of a 64-float
    /// partial sum (256 B: 2.256 ms); the shortcut crosses no link.
    @Test func aBottleneckCostsTheLeadersHeadThenOneChain() throws {
        let net = Self.block(weights: false)
        let planner = Planner(network: net, cluster: ChainTests.twoBoards)
        #expect(planner.model.stages.count == 1 && !planner.canSplitResidual(0) && planner.bottleneckHead(0) == 1)
        let cost = planner.model.cost(.bottleneck(stage: 0))
        #expect(cost.partitions.map(\.layer) == ["b.conv2", "b.conv3", "b.conv1"])
        #expect(cost.partitions.map(\.dimension) == [.outputChannels, .inputChannels, .none])
        #expect(cost.partitions.map(\.extents) == [[1, 1], [1, 1], [2, 0]])
        #expect(abs(cost.computeMs - 0.001088) < 1e-12, "\(cost.computeMs)")
        #expect(abs(cost.commMs - 4.384) < 1e-12, "\(cost.commMs)")
        #expect(cost.bytesSent == [128, 256] && cost.messagesSent == [1, 1])
        // The leader keeps the 64-float block input in front of conv1's 32-float output through the chain.
        let plan = Plan(planner: .iop, segments: [.bottleneck(stage: 0)], costs: [cost], cluster: ChainTests.twoBoards)
        let programs = Slicer.programs(plan, network: Self.block(), stages: planner.model.stages)
        #expect(programs.map(\.inputCount) == [64, 96] && programs.map(\.outputCount) == [96, 64])
        #expect(programs[1].addsShortcut && programs[1].parts.allSatisfy { $0.input == .elements(64..<96) })
        #expect(cost.activationBytes[0] >= 4 * 96)
    }

    /// A leader too slow to get any of the chain's channels: its part of the tail is the shortcut, the
    /// head's output and the messages, less than the head's buffers, so its arena is the head's. Each
    /// board's compiled arena is the plan's figure for it, the larger of the two programs' buffers.
    @Test func theLeadersArenaHoldsTheLargerOfHeadAndTail() throws {
        var cluster = ChainTests.twoBoards
        cluster.devices.append(cluster.devices[1])
        cluster.devices[2].name = "c"
        cluster.devices[0].gflops = 1e-3
        let net = Self.block()
        let planner = Planner(network: net, cluster: cluster)
        let cost = planner.model.cost(.bottleneck(stage: 0))
        #expect(cost.partitions[0].extents == [0, 1, 1])
        let plan = Plan(planner: .iop, segments: [.bottleneck(stage: 0)], costs: [cost], cluster: cluster)
        let programs = Slicer.programs(plan, network: net, stages: planner.model.stages)
        let head = BoardLayout.footprint(programs[0], board: 0, leader: 0).activationBytes
        let tail = BoardLayout.footprint(programs[1], board: 0, leader: 0).activationBytes
        #expect(head > tail && cost.activationBytes[0] == head, "head \(head), tail \(tail)")
        let bundle = try ProgramBundle.compile(plan, network: net).withUnsafeBytes { try ProgramBundle.decode($0) }
        #expect(bundle.programs.map(\.arenaBytes) == plan.peakMemoryBytes)
    }

    /// With measured profiles the two programs' timelines run one after the other: the segment's phases,
    /// as the leader clocks them, add up to its latency, the leader's own phase holds the head as well as its
    /// share of the chain, and the forced plan still runs exactly. Three boards whose convs run at 10 MFLOP/s
    /// (1e4 FLOP per ms): the 2 channels split 1, 1, 0, so the leader runs conv1 (256 FLOPs, 0.0256 ms)
    /// and then a channel of conv2 and of conv3 (576 + 128 FLOPs, 0.0704 ms).
    @Test func theCalibratedModelTimesTheHeadThenTheChain() throws {
        let link = LinkProfile(latencyMs: 0.1, bandwidthMbps: 1000, sendCpuNsPerByte: 0, receiveCpuNsPerByte: 0)
        let cluster = Cluster(
            devices: ["a", "b", "c"].map { ProfileTests.board($0, ProfileTests.profile(rate: 0.01, link: link)) },
            leader: 0)
        let net = Self.block()
        let planner = Planner(network: net, cluster: cluster)
        let cost = planner.model.cost(.bottleneck(stage: 0))
        let phases = try #require(cost.phases)
        let sum = phases.scatterMs + phases.ownMs + phases.gatherMs + phases.reduceMs
        #expect(abs(sum - cost.latencyMs) < 1e-9, "\(phases) against \(cost.latencyMs)")
        #expect(cost.partitions[0].extents == [1, 1, 0])
        #expect(phases.ownMs >= 0.0256 + 0.0704, "\(phases)")
        let plan = Plan(planner: .iop, segments: [.bottleneck(stage: 0)], costs: [cost], cluster: cluster)
        var rng = SplitMix64(seed: 17)
        let x = (0..<net.inputCount).map { _ in Float(rng.nextUnit() * 2 - 1) }
        #expect(
            scaledError(try LocalExecutor(plan: plan, network: net).run(x), try net.makeEngine(threads: 1).run(x))
                <= 1e-5)
    }

    /// Forced bottlenecks (an identity and a projection shortcut) run exactly: against ONNX Runtime's
    /// output for the fixture and against one board, on two and on four boards.
    @Test func forcedBottlenecksEqualOneBoardAndONNXRuntime() throws {
        let net = try Self.fixture()
        let x = try NPY.read(path: Fixtures.path("bottleneck_net.input.npy")).values
        let expected = try NPY.read(path: Fixtures.path("bottleneck_net.output.npy")).values
        for cluster in [ChainTests.twoBoards, try Examples.cluster("mixed-pi4-pi3")] {
            let planner = Planner(network: net, cluster: cluster)
            let segments = Self.forced(planner)
            let blocks = segments.compactMap { s -> Int? in
                if case .bottleneck(let i) = s { return i }
                return nil
            }
            #expect(blocks.count == 2 && blocks.filter { planner.model.stages[$0].projection != nil }.count == 1)
            let plan = Plan(
                planner: .iop, segments: segments, costs: segments.map(planner.model.cost), cluster: cluster)
            let y = try LocalExecutor(plan: plan, network: net).run(x)
            #expect(scaledError(y, expected) <= 1e-4, "against ONNX Runtime: \(scaledError(y, expected))")
            #expect(scaledError(y, try net.makeEngine(threads: 1).run(x)) <= 1e-5)
        }
    }

    /// Boards slow next to their links: `iop` and `optimal` split both bottlenecks, `optimal` is no slower
    /// than any other planner, and its plan runs exactly.
    @Test func thePlannersSplitBottlenecksWhereItPays() throws {
        let net = try Self.fixture()
        var cluster = try Examples.cluster("mixed-pi4-pi3")
        for d in cluster.devices.indices {
            cluster.devices[d].gflops = 0.05; cluster.devices[d].setupMs = 0.05; cluster.devices[d].bandwidthMbps = 1e4
        }
        let planner = Planner(network: net, cluster: cluster)
        let optimal = try planner.plan(.optimal)
        for kind in PlannerKind.allCases {
            let plan = try planner.plan(kind)
            #expect(optimal.modeledLatencyMs <= plan.modeledLatencyMs + 1e-9, "\(kind)")
            if kind == .iop || kind == .optimal {
                let blocks = plan.segments.filter { if case .bottleneck = $0 { true } else { false } }
                #expect(blocks.count == 2, "\(kind): \(plan.segments)")
            }
        }
        let x = try NPY.read(path: Fixtures.path("bottleneck_net.input.npy")).values
        let y = try LocalExecutor(plan: optimal, network: net).run(x)
        #expect(scaledError(y, try net.makeEngine(threads: 1).run(x)) <= 1e-5)
    }
}
