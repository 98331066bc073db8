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
        #expect(throws: WireError.unsupportedBundleVersion(found: 4, reads: 5)) {
            try old.withUnsafeBytes { try ProgramBundle.decode($0) }
        }
        #expect(
            WireError.unsupportedBundleVersion(found: 4, reads: 5).message
                == "bundle format version 4, but this iop reads version 5 (written by an older iop compile)")
    }
}
