import CAllocCounter
import Foundation
import IOPCore
import IOPModel
import IOPNet
import IOPNode
import IOPPlan
import IOPProgram
import PlanTestSupport
import Testing

/// Steady-state inference on every node, counted with the malloc interposer on
/// the leader's thread and every worker's serving thread: iop itself allocates
/// nothing. libzmq does: `zmq_send` copies each message of more than 33 bytes
/// into one buffer it mallocs (and the receiver frees), so the bound is one
/// allocation per message sent, and the test shows the counter sees them.
/// (`zmq_send_const` would not copy, but libzmq then reads the arena later from
/// its I/O thread, after a stop signal may already have freed it.)
@Suite(.serialized) struct NodeAllocationTests {
    /// With fp16 on the wire too: the conversions run in the arena's frames.
    @Test(arguments: [WireChoice.fp32, .fp16])
    func steadyStateInferenceAllocatesOnlyLibzmqsMessageBuffers(_ wire: WireChoice) throws {
        let net = try Zoo.make("alexnet", inputSize: 67)
        let cluster = try Examples.cluster("mixed-pi4-pi3")
        let plan = try Planner(network: net, cluster: cluster, wire: wire).plan(.oc)
        #expect(plan.costs.contains { $0.wire == (wire == .fp16 ? .fp16 : .fp32) })
        let ctx = try Context()
        // The session spans the cluster's life: each serving thread enrols in it once its arena is allocated
        // and loaded, and the session ends after the cluster has shut down.
        iop_alloc_counter_reset_rendezvous()
        defer { iop_alloc_counter_leave() }
        let (leader, threads) = try startCluster(
            cluster, plan: plan, network: net, context: ctx, onServing: { iop_alloc_counter_enroll(1) })
        defer {
            leader.shutdown()
            for t in threads { t.join() }
        }
        let x = UnsafeMutablePointer<Float>.allocate(capacity: leader.inputCount)
        let y = UnsafeMutablePointer<Float>.allocate(capacity: leader.outputCount)
        defer { x.deallocate(); y.deallocate() }
        for i in 0..<leader.inputCount { x[i] = Float(i % 13) / 13 - 0.5 }
        iop_alloc_counter_enroll(1)
        for _ in 0..<2 { try leader.infer(input: x, output: y) }  // warm-up: every worker has served and enrolled
        let messagesBefore = leader.messagesSent.reduce(0, +)
        iop_alloc_counter_start()
        for _ in 0..<5 { try leader.infer(input: x, output: y) }
        let allocations = iop_alloc_counter_stop()
        let messages = leader.messagesSent.reduce(0, +) - messagesBefore
        #expect(messages > 0)
        #expect(allocations <= messages, "\(allocations) heap allocations for \(messages) messages in 5 inferences")
        // Sanity: the counter does see allocations on enrolled threads.
        iop_alloc_counter_start()
        let probe = [Float](repeating: 1, count: 1000)
        #expect(iop_alloc_counter_stop() >= 1 && probe.count == 1000)
        print("node allocations: \(allocations) for \(messages) messages in 5 inferences")
    }
}
