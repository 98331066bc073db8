import IOPCore
import IOPModel
import IOPPlan
import PlanTestSupport
import TestSupport
import Testing

/// Every planner's plan, run slice by slice, gives single-board inference's output.
@Suite struct ExecutionTests {
    struct Case: Sendable, CustomStringConvertible {
        let model: String, size: Int?, cluster: String, planner: PlannerKind
        var description: String { "\(model)@\(size.map(String.init) ?? "default") \(cluster) \(planner.rawValue)" }
    }
    static let cases: [Case] =
        [
            ("lenet5", nil), ("alexnet", 67), ("vgg11", 32), ("resnet18", 32), ("mobilenet_v2", 32),
            ("squeezenet1_1", 32),
        ]
        .flatMap { m, s in
            ["four-pi4-wifi", "mixed-pi4-pi3", "compute-bound-gige"].flatMap { c in
                PlannerKind.allCases.map { Case(model: m, size: s, cluster: c, planner: $0) }
            }
        }

    @Test(arguments: cases)
    func planExecutesExactly(_ c: Case) throws {
        let net = try Zoo.make(c.model, inputSize: c.size)
        let plan = try Planner(network: net, cluster: try Examples.cluster(c.cluster)).plan(c.planner)
        var rng = SplitMix64(seed: 17)
        let x = (0..<net.inputCount).map { _ in Float(rng.nextUnit() * 2 - 1) }
        let expected = try net.makeEngine(threads: 1).run(x)
        let err = scaledError(try LocalExecutor(plan: plan, network: net).run(x), expected)
        #expect(err <= 1e-4, "scaled error \(err)")
    }

    /// With Winograd convs, slices of transformed weights (oc, ic) and row bands with their halo
    /// give single-board inference's output on every planner.
    @Test(arguments: cases.filter { $0.model != "lenet5" })
    func winogradPlanExecutesExactly(_ c: Case) throws {
        let net = try Zoo.make(c.model, inputSize: c.size).withConvs(.winograd)
        let plan = try Planner(network: net, cluster: try Examples.cluster(c.cluster)).plan(c.planner)
        var rng = SplitMix64(seed: 19)
        let x = (0..<net.inputCount).map { _ in Float(rng.nextUnit() * 2 - 1) }
        let expected = try net.makeEngine(threads: 1).run(x)
        let err = scaledError(try LocalExecutor(plan: plan, network: net, threads: 2).run(x), expected)
        #expect(err <= 1e-4, "scaled error \(err)")
    }

    /// Forced dimensions on every stage, so oc, ic, h and pairs all run on every layer type.
    @Test(arguments: [Dimension.outputChannels, .inputChannels, .rows], ConvChoice.allCases)
    func everyDimensionExecutesExactly(_ dim: Dimension, _ conv: ConvChoice) throws {
        let net = try Zoo.make("alexnet", inputSize: 67).withConvs(conv)
        let cluster = try Examples.cluster("mixed-pi4-pi3")
        let planner = Planner(network: net, cluster: cluster)
        let stages = Stage.split(net)
        var segments: [Segment] = []
        var i = 0
        while i < stages.count {
            if dim == .inputChannels, planner.canPair(i) { segments.append(.pair(first: i)); i += 2; continue }
            segments.append(.single(stage: i, stages[i].allowedDimensions.contains(dim) ? dim : .none)); i += 1
        }
        let plan = Plan(
            planner: .optimal, segments: segments, costs: segments.map(planner.model.cost), cluster: cluster)
        var rng = SplitMix64(seed: 5)
        let x = (0..<net.inputCount).map { _ in Float(rng.nextUnit()) }
        let err = scaledError(
            try LocalExecutor(plan: plan, network: net, threads: 2).run(x), try net.makeEngine(threads: 1).run(x))
        #expect(err <= 1e-4, "\(dim): scaled error \(err)")
    }
}

/// Row bands through padded, ceil-mode max and average pools (count_include_pad),
/// which no zoo model has.
@Test(arguments: ["four-pi4-wifi", "mixed-pi4-pi3"])
func rowBandsThroughPaddedPools(cluster name: String) throws {
    var rng = SplitMix64(seed: 23)
    func r(_ n: Int) -> [Float] { (0..<n).map { _ in Float(rng.nextUnit() - 0.5) } }
    let c1 = ConvGeometry(
        inChannels: 3, inHeight: 29, inWidth: 21, outChannels: 8, kernelH: 3, kernelW: 3, padTop: 1, padLeft: 1,
        padBottom: 1, padRight: 1)
    let p1 = PoolGeometry(
        channels: 8, inHeight: 29, inWidth: 21, kernelH: 3, kernelW: 3, strideH: 2, strideW: 2,
        padTop: 1, padLeft: 1, padBottom: 1, padRight: 1, ceilMode: true)
    let c2 = ConvGeometry(
        inChannels: 8, inHeight: p1.outHeight, inWidth: p1.outWidth, outChannels: 16, kernelH: 3, kernelW: 3,
        strideH: 1, strideW: 1, dilationH: 2, padTop: 2, padLeft: 1, padBottom: 1, padRight: 1)
    let p2 = PoolGeometry(
        channels: 16, inHeight: c2.outHeight, inWidth: c2.outWidth, kernelH: 3, kernelW: 2, strideH: 2, strideW: 2,
        padTop: 1, padLeft: 0, padBottom: 2, padRight: 1, ceilMode: true, countIncludePad: true)
    let net = Network(
        name: "padded-pools", inputShape: [1, 3, 29, 21],
        layers: [
            Layer(name: "c1", kind: .conv(c1, .relu), weights: r(c1.weightCount), bias: r(8)),
            Layer(name: "p1", kind: .maxPool(p1)),
            Layer(name: "c2", kind: .conv(c2, .none), weights: r(c2.weightCount), bias: r(16)),
            Layer(name: "relu", kind: .clamp(count: c2.outputCount, .relu)),
            Layer(name: "p2", kind: .averagePool(p2)),
            Layer(
                name: "fc", kind: .linear(LinearGeometry(inFeatures: p2.outputCount, outFeatures: 10), .none),
                weights: r(p2.outputCount * 10), bias: r(10)),
        ])
    let cluster = try Examples.cluster(name)
    let planner = Planner(network: net, cluster: cluster)
    let segments: [Segment] = [.single(stage: 0, .rows), .single(stage: 1, .rows), .single(stage: 2, .none)]
    let plan = Plan(planner: .coedge, segments: segments, costs: segments.map(planner.model.cost), cluster: cluster)
    let x = r(net.inputCount)
    let err = scaledError(try LocalExecutor(plan: plan, network: net).run(x), try net.makeEngine(threads: 1).run(x))
    #expect(err <= 1e-4, "scaled error \(err)")
}

/// A depthwise-separable chain with every conv in row bands, depthwise ones included (a band once
/// lost its conv's groups), and the planners' own plans: ONNX Runtime's output every time.
@Test func depthwiseSeparableChainMatchesONNXRuntimeInRowBandsAndEveryPlan() throws {
    let net = try ONNXImporter.load(path: Fixtures.path("mobilenet_block.onnx"))
    let x = try NPY.read(path: Fixtures.path("mobilenet_block.input.npy")).values
    let ort = try NPY.read(path: Fixtures.path("mobilenet_block.output.npy")).values
    let cluster = try Examples.cluster("compute-bound-gige")
    let planner = Planner(network: net, cluster: cluster)
    let stages = Stage.split(net)
    let rows = stages.indices.map {
        Segment.single(stage: $0, stages[$0].allowedDimensions.contains(.rows) ? .rows : .none)
    }
    #expect(rows.filter { $0 == .single(stage: $0.stages[0], .rows) }.count == 5)
    var plans = [Plan(planner: .coedge, segments: rows, costs: rows.map(planner.model.cost), cluster: cluster)]
    for kind in PlannerKind.allCases { plans.append(try planner.plan(kind)) }
    for plan in plans {
        let err = scaledError(try LocalExecutor(plan: plan, network: net).run(x), ort)
        #expect(err <= 1e-4, "\(plan.planner): scaled error \(err) against ONNX Runtime")
    }
}

/// activations_net: LeakyRelu, PRelu, Sigmoid, HardSigmoid, HardSwish and Tanh after convs and a linear
/// layer; lrn_pools_net: LRN, a dilated max pool, Softmax over channels and GlobalMaxPool. Every stage
/// inception_block: four branches concatenated; pad_resize_net: a reflect Pad and a nearest Resize;
/// channel_shuffle_net: ShuffleNet's Reshape-Transpose-Reshape; convtranspose_decoder: a ConvTranspose up to a
/// skip it is concatenated with; convtranspose_chain: a ConvTranspose split by output channels, and by input
/// channels when it ends a pair (the pair's partial sums reduced at the leader). Every stage
/// forced into each dimension (PRelu's slopes sliced by channel, the functions cut to row bands, run
/// after a reduction, the others on the leader) and the planners' own plans: ONNX Runtime's output
/// every time.
@Test(arguments: [
    "activations_net", "lrn_pools_net", "inception_block", "pad_resize_net", "channel_shuffle_net",
    "convtranspose_decoder", "convtranspose_chain",
])
func newOperatorsMatchONNXRuntimeInEveryDimensionAndPlan(_ name: String) throws {
    let net = try ONNXImporter.load(path: Fixtures.path(name + ".onnx"))
    let x = try NPY.read(path: Fixtures.path(name + ".input.npy")).values
    let ort = try NPY.read(path: Fixtures.path(name + ".output.npy")).values
    let cluster = try Examples.cluster("mixed-pi4-pi3")
    let planner = Planner(network: net, cluster: cluster)
    let stages = Stage.split(net)
    if name == "activations_net" {
        #expect(stages.filter { $0.layers.count > 1 }.count >= 5, "the functions ride along with their conv")
    }
    var plans: [Plan] = []
    for dim in [Dimension.outputChannels, .inputChannels, .rows] {
        var segments: [Segment] = []
        var i = 0
        while i < stages.count {
            if dim == .inputChannels, planner.canPair(i) { segments.append(.pair(first: i)); i += 2; continue }
            segments.append(.single(stage: i, stages[i].allowedDimensions.contains(dim) ? dim : .none)); i += 1
        }
        if name == "convtranspose_chain", dim == .inputChannels {
            let reducedTransposes = segments.filter { seg in
                guard case .chain(_, let last) = seg, case .convTranspose = stages[last].main else { return false }
                return true
            }
            #expect(reducedTransposes.count == 1, "the ConvTranspose ends an OC->IC pair: \(segments)")
        }
        if name == "convtranspose_chain", dim == .rows {
            let transposeBands = segments.filter { seg in
                guard case .single(let k, .rows) = seg, case .convTranspose = stages[k].main else { return false }
                return true
            }
            #expect(transposeBands.count == 1, "the ConvTranspose in row bands: \(segments)")
        }
        plans.append(
            Plan(planner: .optimal, segments: segments, costs: segments.map(planner.model.cost), cluster: cluster))
    }
    for kind in PlannerKind.allCases { plans.append(try planner.plan(kind)) }
    for plan in plans {
        let err = scaledError(try LocalExecutor(plan: plan, network: net, threads: 2).run(x), ort)
        #expect(err <= 1e-4, "\(plan.segments): scaled error \(err) against ONNX Runtime")
    }
}
