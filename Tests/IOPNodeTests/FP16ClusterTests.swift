import Foundation
import IOPModel
import IOPNet
import IOPNode
import IOPPlan
import IOPProgram
import PlanTestSupport
import TestSupport
import Testing

/// Activations as fp16 on the wire, over ZeroMQ on loopback, against single-board fp32 inference.
@Suite(.timeLimit(.minutes(10))) struct FP16ClusterTests {
    /// README, "fp16 on the wire": the largest scaled error measured on the zoo, with headroom.
    static let tolerance: Float = 1e-2

    /// Every planner's fp16 plan answers within the tolerance, but not exactly as fp32 does (so the
    /// halves really crossed the wire), and sends exactly the bytes its plan models: 2 per element.
    /// (`optimal` is left out: on these boards it keeps everything on the leader, sending nothing.)
    @Test(arguments: [PlannerKind.oc, .coedge, .iop])
    func fp16OutputsAreCloseToSingleBoardButNotIdentical(_ kind: PlannerKind) throws {
        let net = try Zoo.make("alexnet", inputSize: 67)
        let cluster = try Examples.cluster("mixed-pi4-pi3")
        let single = try net.makeEngine(threads: 1)
        var rng = SplitMix64(seed: 77)
        let inputs = (0..<3).map { _ in (0..<net.inputCount).map { _ in Float(rng.nextUnit() * 2 - 1) } }
        for wire in [WireChoice.fp32, .fp16] {
            let plan = try Planner(network: net, cluster: cluster, wire: wire).plan(kind)
            let ctx = try Context()
            let (leader, workers) = try startCluster(cluster, plan: plan, network: net, context: ctx)
            #expect(leader.arenaBytes == plan.peakMemoryBytes)
            var worst: Float = 0
            for x in inputs {
                let err = scaledError(try leader.infer(x), single.run(x))
                worst = max(worst, err)
                #expect(err <= (wire == .fp16 ? Self.tolerance : 1e-4), "\(wire) scaled error \(err)")
            }
            if wire == .fp16 && plan.costs.contains(where: { $0.wire == .fp16 }) {
                #expect(worst > 1e-6, "fp16 answers as exactly as fp32: were halves sent?")
            }
            // The plan's bytes per inference are payload elements; each frame adds its 28-byte header, and
            // each result its board's 4-byte index and 8-byte CPU time.
            let messages = leader.messagesSent.reduce(0, +), results = messages - leader.messagesSent[cluster.leader]
            #expect(messages > 0)
            let modelled = inputs.count * plan.bytesSentPerInference.reduce(0, +) + 28 * messages + 12 * results
            #expect(leader.bytesSent.reduce(0, +) == modelled, "\(wire)")
            leader.shutdown()
            for w in workers {
                #expect(w.join(), "a worker did not stop")
                #expect(w.error == nil, "\(w.error?.message ?? "")")
            }
        }
    }
}
