import IOPCore
import IOPModel
import IOPPlan
import IOPProgram
import IOPWire
import PlanTestSupport
import TestSupport
import Testing

/// Bundles and board programs: what `iop compile` lays out is what the planner counted.
@Suite struct BundleTests {
    struct Case: Sendable, CustomStringConvertible {
        let model: String, size: Int?, cluster: String, conv: ConvChoice
        var description: String { "\(model) \(cluster) \(conv.rawValue)" }
    }
    static let cases = [("lenet5", nil), ("alexnet", 67), ("vgg11", 32)].flatMap { m, s in
        ["four-pi4-wifi", "mixed-pi4-pi3", "small-memory", "compute-bound-gige"].flatMap { c in
            [ConvChoice.direct, .winograd].map { Case(model: m, size: s, cluster: c, conv: $0) }
        }
    }

    /// Every board's arena, as compiled into its program, is the plan's memory
    /// figure for that board, for every planner; and every op and the leader's
    /// schedule stay inside their arena.
    @Test(arguments: cases)
    func compiledArenasAreThePlannersFigures(_ c: Case) throws {
        let net = try Zoo.make(c.model, inputSize: c.size).withConvs(c.conv)
        let cluster = try Examples.cluster(c.cluster)
        for kind in PlannerKind.allCases {
            guard let plan = try? Planner(network: net, cluster: cluster).plan(kind) else { continue }
            let bytes = ProgramBundle.compile(plan, network: net)
            let bundle = try bytes.withUnsafeBytes { try ProgramBundle.decode($0) }
            #expect(bundle.programs.map(\.arenaBytes) == plan.peakMemoryBytes, "\(kind)")
            #expect(bundle.programs.allSatisfy { $0.isWithinArena })
            // Every weight travels in some board's shards: once, or once per band or tile when a stage is split by
            // rows (alone, or in a fused-tile run or grid).
            let shipped = bundle.shards.enumerated().reduce(0) { total, e in
                total
                    + e.element.reduce(0) {
                        $0 + $1.channels * bundle.programs[e.offset].ops[$1.op].kind.weightsPerChannel
                    }
            }
            let stages = Stage.split(net)
            let expected = zip(plan.segments, plan.costs).reduce(0) { total, sc in
                let p = sc.1.partitions[0]
                let copies =
                    [.rows, .tiles].contains(p.dimension)
                    ? zip(p.extents, p.columnExtents ?? p.extents).filter { $0 > 0 && $1 > 0 }.count : 1
                return total + copies * sc.0.stages.reduce(0) { $0 + stages[$1].weightCount }
            }
            #expect(shipped == expected, "\(kind): weights in shards")
        }
    }

    /// The graphs with their residual blocks (identity and projection shortcuts) and fire modules split,
    /// forced and as every planner chooses: each board's compiled arena is the plan's figure for it.
    @Test(arguments: ["resnet18", "squeezenet1_1"])
    func splitBlocksAndFireModulesCompileToThePlannersFigures(_ model: String) throws {
        try expectCompiledArenasArePlanned(try Zoo.make(model, inputSize: 32)) { planner in
            let stages = planner.model.stages
            return stages.indices.map {
                planner.canSplitResidual($0)
                    ? .residual(stage: $0)
                    : .single(stage: $0, stages[$0].concatenated != nil ? .outputChannels : .none)
            }
        }
    }

    /// Bottlenecks (an identity and a projection shortcut) split, forced and as every planner chooses: the
    /// leader keeps each block's shortcut across its two programs, and each board's compiled arena is still
    /// the plan's figure for it.
    @Test func splitBottlenecksCompileToThePlannersFigures() throws {
        try expectCompiledArenasArePlanned(try ONNXImporter.load(path: Fixtures.path("bottleneck_net.onnx"))) {
            planner in
            let forced: [Segment] = planner.model.stages.indices.map {
                planner.bottleneckHead($0) != nil ? .bottleneck(stage: $0) : .single(stage: $0, .none)
            }
            #expect(forced.filter { if case .bottleneck = $0 { true } else { false } }.count == 2)
            return forced
        }
    }

    /// On every example cluster, the plan `forced` makes and every planner's own plan compile to bundles whose
    /// arenas are the plans' figures, board by board.
    func expectCompiledArenasArePlanned(_ net: Network, forced: (Planner) -> [Segment]) throws {
        for name in ["mixed-pi4-pi3", "four-pi4-wifi", "compute-bound-gige"] {
            let cluster = try Examples.cluster(name)
            let planner = Planner(network: net, cluster: cluster)
            let segments = forced(planner)
            var plans = [
                Plan(planner: .iop, segments: segments, costs: segments.map(planner.model.cost), cluster: cluster)
            ]
            plans += PlannerKind.allCases.compactMap { try? planner.plan($0) }
            for plan in plans {
                let bundle = try ProgramBundle.compile(plan, network: net).withUnsafeBytes {
                    try ProgramBundle.decode($0)
                }
                #expect(bundle.programs.map(\.arenaBytes) == plan.peakMemoryBytes, "\(name) \(plan.planner)")
                #expect(bundle.programs.allSatisfy { $0.isWithinArena })
            }
        }
    }

    /// An Inception block split by whole branches, as every planner chooses on every example cluster: each
    /// board's compiled arena is the plan's figure for it.
    @Test func splitInceptionBlocksCompileToThePlannersFigures() throws {
        let net = try ONNXImporter.load(path: Fixtures.path("inception_block.onnx"))
        for name in ["mixed-pi4-pi3", "four-pi4-wifi", "compute-bound-gige"] {
            let cluster = try Examples.cluster(name)
            let planner = Planner(network: net, cluster: cluster)
            for kind in PlannerKind.allCases {
                let plan = try planner.plan(kind)
                if kind == .oc {
                    #expect(plan.partitions.contains { $0.dimension == .outputChannels && $0.fullExtent == 15 })
                }
                let bundle = try ProgramBundle.compile(plan, network: net).withUnsafeBytes {
                    try ProgramBundle.decode($0)
                }
                #expect(bundle.programs.map(\.arenaBytes) == plan.peakMemoryBytes, "\(name) \(kind)")
                #expect(bundle.programs.allSatisfy { $0.isWithinArena })
            }
        }
    }

    static func workerProgram() throws -> BoardProgram {
        let net = try Zoo.make("alexnet", inputSize: 67)
        let plan = try Planner(network: net, cluster: try Examples.cluster("mixed-pi4-pi3")).plan(.oc)
        return try ProgramBundle.compile(plan, network: net).withUnsafeBytes { try ProgramBundle.decode($0) }.programs[
            1]
    }

    /// A decoder (a ConvTranspose up to a concatenated skip): every planner's compiled arenas are its figures,
    /// and the ConvTranspose travels in a program and its shards whole.
    @Test func convTransposeDecoderArenasAreThePlannersFigures() throws {
        let net = try ONNXImporter.load(path: Fixtures.path("convtranspose_decoder.onnx"))
        let cluster = try Examples.cluster("mixed-pi4-pi3")
        for kind in PlannerKind.allCases {
            let plan = try Planner(network: net, cluster: cluster).plan(kind)
            let bundle = try ProgramBundle.compile(plan, network: net).withUnsafeBytes { try ProgramBundle.decode($0) }
            #expect(bundle.programs.map(\.arenaBytes) == plan.peakMemoryBytes, "\(kind)")
            #expect(bundle.programs.allSatisfy { $0.isWithinArena })
            let ops = bundle.programs.flatMap(\.ops).filter { if case .convTranspose = $0.kind { true } else { false } }
            #expect(ops.count == 1, "\(kind)")
        }
    }

    /// Pointwise ops (and a PRelu's sliced slopes) travel in programs and shards, for every planner.
    @Test func pointwiseOpsRoundTripInEveryPlannersBundle() throws {
        let net = try ONNXImporter.load(path: Fixtures.path("activations_net.onnx"))
        let cluster = try Examples.cluster("mixed-pi4-pi3")
        for kind in PlannerKind.allCases {
            let plan = try Planner(network: net, cluster: cluster).plan(kind)
            let bundle = try ProgramBundle.compile(plan, network: net).withUnsafeBytes { try ProgramBundle.decode($0) }
            #expect(bundle.programs.map(\.arenaBytes) == plan.peakMemoryBytes, "\(kind)")
            for program in bundle.programs {
                let decoded = try ProgramCodec.encode(program).withUnsafeBytes { try ProgramCodec.decode($0) }
                #expect(decoded == program)
            }
            let functions = bundle.programs.flatMap(\.ops).compactMap { op -> PointwiseFunction? in
                if case .pointwise(_, _, let f) = op.kind { return f }
                return nil
            }
            #expect(functions.contains(.prelu) && functions.contains(.hardSwish), "\(kind)")
        }
    }

    /// The ops issue 15 added (and the older forms they extend) decode to what was encoded.
    @Test func newOpKindsRoundTrip() throws {
        let dilated = PoolGeometry(
            channels: 3, inHeight: 11, inWidth: 9, kernelH: 3, kernelW: 2, strideH: 2, strideW: 1, padTop: 2,
            padLeft: 1, padBottom: 1, padRight: 0, dilationH: 2, dilationW: 3, ceilMode: true)
        let kinds: [LayerKind] = [
            .maxPool(dilated), .globalMaxPool(channels: 4, plane: 9), .softmax(count: 10),
            .softmax(count: 5, outer: 3, inner: 4),
            .lrn(channels: 6, plane: 4, size: 5, alpha: 1e-4, beta: 0.75, bias: 2),
            .lrn(channels: 6, plane: 4, size: 4, alpha: 0.8, beta: 0.6, bias: 0.3),
            .pointwise(channels: 3, plane: 5, .leakyRelu(alpha: 0.2)), .pointwise(channels: 3, plane: 5, .prelu),
            .pointwise(channels: 3, plane: 5, .sigmoid),
            .pointwise(channels: 3, plane: 5, .hardSigmoid(alpha: 0.3, beta: 0.6)),
            .pointwise(channels: 3, plane: 5, .hardSwish), .pointwise(channels: 3, plane: 5, .tanh),
            .pad(
                PadGeometry(
                    channels: 2, inHeight: 5, inWidth: 4, top: 1, left: 0, bottom: 2, right: 3, mode: .reflect,
                    value: 0)),
            .pad(
                PadGeometry(
                    channels: 2, inHeight: 5, inWidth: 4, top: 1, left: 2, bottom: 0, right: 1, mode: .constant,
                    value: -1.5)),
            .upsample(channels: 3, inHeight: 4, inWidth: 5, scaleH: 2, scaleW: 3),
            .channelShuffle(groups: 3, channels: 12, plane: 5),
            .convTranspose(
                ConvTransposeGeometry(
                    inChannels: 4, inHeight: 5, inWidth: 6, outChannels: 6, kernelH: 3, kernelW: 2, strideH: 3,
                    strideW: 2, dilationH: 2, dilationW: 1, padTop: 1, padLeft: 0, padBottom: 2, padRight: 1,
                    outputPaddingH: 1, outputPaddingW: 1, groups: 2), Activation(low: 0, high: 6)),
        ]
        for kind in kinds {
            var layout = ArenaLayout()
            _ = layout.chain([kind])
            let (ops, floats) = layout.finish()
            let program = BoardProgram(arenaFloats: floats, activationFloats: 0, ops: ops, steps: [])
            let decoded = try ProgramCodec.encode(program).withUnsafeBytes { try ProgramCodec.decode($0) }
            #expect(decoded == program, "\(kind)")
        }
    }

    @Test func programsRoundTripAndOutOfArenaOffsetsAreRefused() throws {
        let program = try Self.workerProgram()
        #expect(!program.ops.isEmpty && !program.steps.isEmpty)
        let bytes = ProgramCodec.encode(program)
        let decoded = try bytes.withUnsafeBytes { try ProgramCodec.decode($0) }
        #expect(decoded == program)

        // One op writing one float past the arena's end is refused, not run.
        var bad = program
        bad.ops[0].output = program.arenaFloats - bad.ops[0].kind.outputCount + 1
        #expect(throws: WireError.malformedPayload) {
            try ProgramCodec.encode(bad).withUnsafeBytes { try ProgramCodec.decode($0) }
        }
        // So is a step whose input would not fit the activation region.
        bad = program
        bad.steps[0].input = program.activationFloats
        #expect(throws: WireError.malformedPayload) {
            try ProgramCodec.encode(bad).withUnsafeBytes { try ProgramCodec.decode($0) }
        }
    }

    /// Truncated and bit-flipped programs never trap: each decodes to an error or to a program inside its arena.
    @Test func corruptedProgramsNeverTrap() throws {
        let bytes = ProgramCodec.encode(try Self.workerProgram())
        var rng = SplitMix64(seed: 77)
        var refused = 0
        for i in 0..<20_000 {
            var b = bytes
            if i % 4 == 0 {
                b = Array(b[0..<Int(rng.next() % UInt64(b.count))])
            } else {
                for _ in 0..<(1 + Int(rng.next() % 3)) {
                    b[Int(rng.next() % UInt64(b.count))] ^= UInt8(1 << (rng.next() % 8))
                }
            }
            if let p = try? b.withUnsafeBytes({ try ProgramCodec.decode($0) }) {
                #expect(p.isWithinArena)
            } else {
                refused += 1
            }
        }
        #expect(refused > 5_000)
    }
}
