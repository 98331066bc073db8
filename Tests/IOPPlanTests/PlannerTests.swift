import Foundation
import IOPCore
import IOPModel
import IOPPlan
import PlanTestSupport
import Testing

@Suite struct PlannerTests {
    struct Case: Sendable, CustomStringConvertible {
        let model: String, cluster: String
        var description: String { "\(model) on \(cluster)" }
    }
    static let cases = Zoo.names.flatMap { m in Examples.names.map { Case(model: m, cluster: $0) } }

    @Test(arguments: cases)
    func everyPlanIsWellFormedAndWithinBudget(_ c: Case) throws {
        let net = try Zoo.make(c.model, withWeights: false)
        let cluster = try Examples.cluster(c.cluster)
        let planner = Planner(network: net, cluster: cluster)
        let stageCount = Stage.split(net).count
        var latency: [PlannerKind: Double] = [:]
        for kind in PlannerKind.allCases {
            do {
                let plan = try planner.plan(kind)
                latency[kind] = plan.modeledLatencyMs
                // Each stage exactly once, in order; a partition per stage, or per branch stage of a residual block.
                #expect(plan.segments.flatMap(\.stages) == Array(0..<stageCount), "\(kind)")
                #expect(Set(plan.partitions.map(\.stage)) == Set(0..<stageCount), "\(kind)")
                #expect(zip(plan.partitions, plan.partitions.dropFirst()).allSatisfy { $0.stage <= $1.stage })
                for (segment, cost) in zip(plan.segments, plan.costs) {
                    for p in cost.partitions {
                        #expect(p.extents.count == cluster.devices.count)
                        #expect(p.extents.allSatisfy { $0 >= 0 })
                        guard case .fusedGrid(_, _, let c) = segment, let columns = p.columnExtents else {
                            #expect(p.extents.reduce(0, +) == p.fullExtent, "\(kind) \(p.layer) \(p.dimension)")
                            continue
                        }
                        // A grid's grid rows share a band each, the bands make the whole, and every grid row's
                        // columns make the same width.
                        let gridRows = stride(from: 0, to: columns.count, by: c)
                        let width = columns[0..<c].reduce(0, +)
                        #expect(gridRows.reduce(0) { $0 + p.extents[$1] } == p.fullExtent, "\(kind) \(p.layer)")
                        for r in gridRows {
                            #expect(
                                Set(p.extents[r..<(r + c)]).count == 1 && columns[r..<(r + c)].reduce(0, +) == width)
                        }
                    }
                }
                for (d, peak) in plan.peakMemoryBytes.enumerated() {
                    #expect(peak <= cluster.devices[d].memoryBudgetBytes, "\(kind) board \(d)")
                }
            } catch let e as PlanError {
                #expect(!e.overruns.isEmpty)
                for o in e.overruns { #expect(o.needs > o.budget) }
                #expect(e.description.contains("smallest budget that fits"))
            }
        }
        if let opt = latency[.optimal] {
            for (kind, l) in latency { #expect(opt <= l + 1e-9, "optimal \(opt) > \(kind) \(l)") }
        }
        if let iop = latency[.iop], let coedge = latency[.coedge] { #expect(iop <= coedge + 1e-9) }
    }

    @Test func smallMemoryClusterNeedsPartitionedWeights() throws {
        let planner = Planner(
            network: try Zoo.make("vgg11", withWeights: false), cluster: try Examples.cluster("small-memory"))
        #expect(throws: PlanError.self) { try planner.plan(.single) }
        #expect(throws: PlanError.self) { try planner.plan(.coedge) }
        let plan = try planner.plan(.optimal)
        #expect(plan.peakMemoryBytes.max()! <= 192 << 20)
        do { _ = try planner.plan(.single) } catch let e as PlanError {
            #expect(e.description.contains("board 'zero-a' needs"))
            #expect(e.description.contains("over its 192.0 MiB budget"))
            // The leader alone holds all of VGG11's 531 MB of weights.
            #expect(e.overruns.count == 1 && e.overruns[0].needs > 531_000_000)
        }
    }

    /// A stream's deadline: the chosen plan meets it and has no less headroom on its fullest board than
    /// any planner's plan that also meets it; below the fastest plan that fits, the error names that plan's latency.
    @Test(arguments: ["four-pi4-wifi", "mixed-pi4-pi3", "compute-bound-gige"])
    func deadlinePlansMeetTheDeadlineWithTheMostHeadroom(_ name: String) throws {
        let net = try Zoo.make("valve", withWeights: false)
        let cluster = try Examples.cluster(name)
        let planner = Planner(network: net, cluster: cluster)
        func fill(_ p: Plan) -> Double {
            zip(p.peakMemoryBytes, cluster.devices).map { Double($0) / Double($1.memoryBudgetBytes) }.max()!
        }
        let fastest = try planner.plan(.optimal)
        for deadline in [fastest.modeledLatencyMs * 1.05, fastest.modeledLatencyMs * 2, fastest.modeledLatencyMs * 10] {
            let chosen = try planner.plan(deadlineMs: deadline)
            #expect(chosen.modeledLatencyMs <= deadline)
            #expect(
                chosen.peakMemoryBytes.indices.allSatisfy {
                    chosen.peakMemoryBytes[$0] <= cluster.devices[$0].memoryBudgetBytes
                })
            for kind in PlannerKind.allCases {
                guard let other = try? planner.plan(kind), other.modeledLatencyMs <= deadline else { continue }
                #expect(fill(chosen) <= fill(other) + 1e-12, "\(kind) has more headroom at \(deadline) ms")
            }
        }
        #expect(throws: DeadlineError(deadlineMs: fastest.modeledLatencyMs * 0.9, fastestMs: fastest.modeledLatencyMs))
        {
            try planner.plan(deadlineMs: fastest.modeledLatencyMs * 0.9)
        }
    }

    /// Two boards, two linear layers (100→64, 64→10), figures worked out by hand:
    /// 1 GFLOP/s = 1e6 FLOP per ms; 8 Mbit/s = 1000 bytes per ms; 2 ms per message.
    @Test func handComputedTwoBoardCase() throws {
        func board(_ n: String) -> DeviceSpec {
            DeviceSpec(
                name: n, endpoint: "tcp://127.0.0.1:1", gflops: 1, memoryBudgetBytes: 1 << 20, bandwidthMbps: 8,
                setupMs: 2, threads: 1)
        }
        let cluster = Cluster(devices: [board("a"), board("b")], leader: 0)
        let net = Network(
            name: "two-fc", inputShape: [1, 100],
            layers: [
                Layer(name: "fc1", kind: .linear(LinearGeometry(inFeatures: 100, outFeatures: 64), .relu)),
                Layer(name: "fc2", kind: .linear(LinearGeometry(inFeatures: 64, outFeatures: 10), .none)),
            ])
        let planner = Planner(network: net, cluster: cluster)
        #expect(planner.canPair(0))

        // Leader alone: 12800 + 1280 FLOPs, nothing sent. Memory is the arena, in floats; regions are
        // 16-float lines and packed weights are reserved in blocks of 64 output channels.
        // Parameters: fc1 64x100 + bias 64 = 6464; fc2 (10 -> 64 channels) 64x64 + bias 64 = 4160.
        // Buffers, fc1's segment (the larger): current 100 -> 112, assembled 64, fc1's output 64 = 240.
        let single = try planner.plan(.single)
        #expect(abs(single.modeledLatencyMs - 0.01408) < 1e-12)
        #expect(single.peakMemoryBytes == [(6464 + 4160 + 240) * 4, 0])

        // IOP pair, 32 channels each: each board 7040 FLOPs (0.00704 ms), the leader then adds
        // 10 partial sums (0.00001 ms); scatter 400 B (2 + 0.4 ms), gather 40 B (2 + 0.04 ms).
        let pair = planner.model.cost(.pair(first: 0))
        #expect(pair.partitions.map(\.extents) == [[32, 32], [32, 32]])
        #expect(abs(pair.computeMs - 0.00705) < 1e-12)
        #expect(abs(pair.commMs - 4.44) < 1e-12)
        #expect(pair.bytesSent == [400, 40] && pair.messagesSent == [1, 1])
        // Parameters: 32 rows of fc1 (reserved as 64) 6400 + bias 64, half of fc2's columns (10 -> 64 channels
        // x 32) 2048 + bias 64; the leader also fc2's bias for the reduction, 10 -> 16.
        #expect(pair.weightBytes == [(6400 + 64 + 2048 + 64 + 16) * 4, (6400 + 64 + 2048 + 64) * 4])
        // Leader buffers: current 112, assembled 16, the outgoing frame (16 for its header + 112) and the
        // incoming one (16 + 16), then its own chain's fc1 slice 32 and partial sum 32 (16-float lines).
        // Worker: its input and its partial sum, each behind 16 floats for a message header: 16 + 112 + 16 + 32.
        #expect(pair.activationBytes == [(112 + 16 + 128 + 32 + 32 + 32) * 4, (16 + 112 + 16 + 32) * 4])

        // OC for fc1 alone: scatter 400 B, gather 32 outputs (128 B); compute 6400 FLOPs each.
        let oc = planner.model.cost(.single(stage: 0, .outputChannels))
        #expect(abs(oc.commMs - (2.4 + 2.128)) < 1e-12)
        #expect(abs(oc.computeMs - 0.0064) < 1e-12)

        // With 2 ms per message the leader alone wins, and optimal finds it.
        #expect(try planner.plan(.optimal).segments == single.segments)
    }

    @Test func hRowBandsCarryTheHalo() throws {
        let net = try Zoo.make("vgg11", inputSize: 32, withWeights: false)
        let stages = Stage.split(net)
        // features.0 (conv 3x3 pad 1) + pool 2x2: output rows 0..<8 need conv rows 0..<16 and input rows 0..<17.
        let need = stages[0].rowsNeeded(outputRows: 0, 8)
        #expect(need.main == 0..<16 && need.input == 0..<17)
        let middle = stages[0].rowsNeeded(outputRows: 4, 8)
        #expect(middle.main == 8..<16 && middle.input == 7..<17)
    }

    @Test func stagesGroupChannelLocalLayers() throws {
        let stages = Stage.split(try Zoo.make("vgg11", withWeights: false))
        #expect(stages.count == 11)  // 8 convs (4 with their pools) and 3 linear layers
        #expect(stages.map(\.name).prefix(3) == ["features.0", "features.3", "features.6"])
        #expect(stages[0].layers == 0..<2 && stages[0].pools.count == 1)
        #expect(stages[8].inputUnits == 512 && stages[8].inputUnitSize == 49)
    }
}

@Suite struct ClusterFileTests {
    func parse(_ json: String) -> String? {
        do { _ = try Cluster.parse(Data(json.utf8)); return nil } catch { return "\(error)" }
    }
    static let good =
        #"{"name": "a", "endpoint": "tcp://127.0.0.1:5555", "gflops": 4, "memory": "512MiB", "#
        + #""bandwidth_mbps": 100, "setup_ms": 2, "threads": 4}"#

    @Test func readsSizesAndTheLeader() throws {
        let c = try Cluster.parse(Data(#"{"leader": "a", "devices": [\#(Self.good)]}"#.utf8))
        #expect(c.devices[0].memoryBudgetBytes == 512 * 1024 * 1024 && c.leader == 0)
        #expect(
            Cluster.parseSize("1GiB") == 1 << 30 && Cluster.parseSize("1.5GiB") == 3 << 29
                && Cluster.parseSize("300MB") == 300_000_000)
        #expect(Cluster.parseSize("lots") == nil && Cluster.parseSize("-1GiB") == nil)
    }

    @Test(arguments: [
        (#""gflops": 4"#, #""gflops": 0"#, "board 'a': field 'gflops' must be positive"),
        (#""gflops": 4"#, #""gflops": -3"#, "board 'a': field 'gflops' must be positive"),
        (#""memory": "512MiB""#, #""memory": "lots""#, "board 'a': field 'memory' must be a positive size"),
        (#""threads": 4"#, #""threads": 4, "colour": "red""#, "board 'a': unknown field 'colour'"),
        (#""setup_ms": 2, "#, "", "board 'a': missing numeric field 'setup_ms'"),
        (#""tcp://127.0.0.1:5555""#, #""127.0.0.1""#, "board 'a': field 'endpoint' must look like tcp://host:port"),
    ])
    func namesTheFieldAndBoard(from: String, to: String, message: String) {
        let error = parse(#"{"leader": "a", "devices": [\#(Self.good.replacingOccurrences(of: from, with: to))]}"#)
        #expect(error?.contains(message) == true, "\(error ?? "accepted")")
    }

    @Test func rejectsBadLeadersAndDuplicates() {
        #expect(parse(#"{"leader": "z", "devices": [\#(Self.good)]}"#)?.contains("'leader' names 'z'") == true)
        #expect(parse(#"{"devices": [\#(Self.good)]}"#)?.contains("missing field 'leader'") == true)
        #expect(
            parse(#"{"leader": "a", "devices": [\#(Self.good), \#(Self.good)]}"#)?.contains("appears twice") == true)
        #expect(parse(#"{"leader": "a", "devices": []}"#)?.contains("'devices'") == true)
        #expect(parse(#"{"leader": "a", "devices": [], "extra": 1}"#)?.contains("unknown field 'extra'") == true)
    }

    @Test func examplesLoad() throws {
        for name in Examples.names { #expect(try Examples.cluster(name).devices.count == 4) }
    }
}
