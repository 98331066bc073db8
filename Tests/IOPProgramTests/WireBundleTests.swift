import IOPModel
import IOPPlan
import IOPProgram
import IOPWire
import PlanTestSupport
import Testing

@Suite struct WireBundleTests {
    /// The choice travels: a compiled bundle carries each segment's precision to the leader's schedule
    /// and the workers' steps.
    @Test func theBundleCarriesEachSegmentsPrecision() throws {
        let net = try Zoo.make("alexnet", inputSize: 67)
        let plan = try Planner(network: net, cluster: Examples.fourBoards(mbps: 100), wire: .auto).plan(.oc)
        let bytes = ProgramBundle.compile(plan, network: net)
        let bundle = try bytes.withUnsafeBytes { try ProgramBundle.decode($0) }
        #expect(bundle.schedule.map(\.wire) == plan.costs.map(\.wire))
        #expect(bundle.schedule.contains { $0.wire == .fp16 })
        for (d, program) in bundle.programs.enumerated() where d != bundle.leaderIndex {
            for step in program.steps { #expect(step.wire == plan.costs[step.segment].wire) }
        }
        // A bundle of the format before (version 4) is refused, saying why.
        var old = bytes
        old[4] = 4
        old[5] = 0
        #expect(throws: WireError.unsupportedBundleVersion(found: 4, reads: 7)) {
            try old.withUnsafeBytes { try ProgramBundle.decode($0) }
        }
        #expect(
            WireError.unsupportedBundleVersion(found: 4, reads: 7).message
                == "bundle format version 4, but this iop reads version 7 (written by an older iop compile)")
    }

    /// A fused grid's tiles travel: the leader's schedule decoded from a bundle scatters and gathers exactly
    /// the rectangles the slicer cut (region tag 4), and every arena is the plan's figure.
    @Test func theBundleCarriesAGridsTiles() throws {
        let net = try Zoo.make("vgg11", inputSize: 32)
        let cluster = try Examples.cluster("mixed-pi4-pi3")
        let planner = Planner(network: net, cluster: cluster)
        let stages = Stage.split(net)
        let segments: [Segment] =
            [.fusedGrid(first: 0, last: 3, columns: 2)] + (4..<stages.count).map { .single(stage: $0, .none) }
        let plan = Plan(planner: .ftp, segments: segments, costs: segments.map(planner.model.cost), cluster: cluster)
        let bundle = try ProgramBundle.compile(plan, network: net).withUnsafeBytes { try ProgramBundle.decode($0) }
        #expect(bundle.programs.map(\.arenaBytes) == plan.peakMemoryBytes)
        let parts = Slicer.programs(plan, network: net, stages: stages)[0].parts
        #expect(parts.count == 4)
        for part in parts {
            guard case .tile(let rows, let columns, _, _, _) = part.output else {
                Issue.record("a grid part writes a tile: \(part.output)")
                continue
            }
            #expect(!rows.isEmpty && columns.count < 32)
            if part.board == bundle.leaderIndex {
                #expect(bundle.schedule[0].own?.input == part.input && bundle.schedule[0].own?.output == part.output)
            } else {
                let remote = try #require(bundle.schedule[0].remote.first { $0.board == part.board })
                #expect(remote.input == part.input && remote.output == part.output)
            }
        }
    }
}
