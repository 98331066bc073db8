import Foundation
import IOPCore
import IOPModel
import IOPNet
import IOPNode
import IOPPlan
import IOPProgram
import IOPWire
import PlanTestSupport
import TestSupport
import Testing

/// A worker running on its own thread, as it would in its own process.
final class WorkerThread: @unchecked Sendable {
    let worker: Worker
    let done = DispatchSemaphore(value: 0)
    var error: NodeError?
    init(_ worker: Worker) {
        self.worker = worker
        Thread.detachNewThread { [self] in
            do throws(NodeError) { try self.worker.run() } catch { self.error = error }
            self.done.signal()
        }
    }
    @discardableResult func join(seconds: Double = 30) -> Bool { done.wait(timeout: .now() + seconds) == .success }
}

/// A plan compiled to a bundle, as `iop compile` writes it: the bytes and what they decode to.
func compiledBundle(_ plan: Plan, network: Network) throws -> (bytes: [UInt8], bundle: ProgramBundle) {
    let bytes = ProgramBundle.compile(plan, network: network)
    return (bytes, try bytes.withUnsafeBytes { try ProgramBundle.decode($0) })
}

/// A leader on a loopback port of its own and one worker thread per other board
/// (with the budget `budgets` gives it, or the cluster file's).
func startCluster(
    _ cluster: Cluster, plan: Plan, network: Network, context ctx: Context, budgets: [Int]? = nil,
    onServing: @escaping @Sendable () -> Void = {}
) throws -> (Leader, [WorkerThread]) {
    let (bytes, bundle) = try compiledBundle(plan, network: network)
    let leader = try Leader(context: ctx, listen: "tcp://127.0.0.1:*", bundle: bundle, timeoutMs: 20_000)
    var workers: [WorkerThread] = []
    for (i, d) in cluster.devices.enumerated() where i != cluster.leader {
        let w = try Worker(
            context: ctx, name: d.name, listen: "tcp://127.0.0.1:*", leader: leader.endpoint,
            budgetBytes: budgets?[i] ?? d.memoryBudgetBytes, threads: 1, timeoutMs: 20_000, idleTimeoutMs: 20_000)
        w.onServing = onServing
        workers.append(WorkerThread(w))
    }
    var started: Result<Void, NodeError> = .success(())
    bytes.withUnsafeBytes { b in
        do throws(NodeError) { try leader.start(threads: 1, bundleBytes: b) } catch { started = .failure(error) }
    }
    if case .failure(let error) = started {
        for w in workers { _ = w.join() }
        throw error
    }
    return (leader, workers)
}

@Suite(.timeLimit(.minutes(10))) struct ClusterTests {
    struct Case: Sendable, CustomStringConvertible {
        let model: String, size: Int?, planner: PlannerKind, conv: ConvChoice
        var description: String { "\(model) \(planner.rawValue) \(conv.rawValue)" }
    }
    static let cases =
        [("lenet5", nil), ("alexnet", 67), ("vgg11", 32)].flatMap { m, s in
            PlannerKind.allCases.map { Case(model: m, size: s, planner: $0, conv: .direct) }
        } + PlannerKind.allCases.map { Case(model: "vgg11", size: 32, planner: $0, conv: .winograd) }

    /// A leader and three workers over ZeroMQ on loopback TCP run the plan; outputs equal single-board inference.
    @Test(arguments: cases)
    func loopbackClusterMatchesSingleBoard(_ c: Case) throws {
        let net = try Zoo.make(c.model, inputSize: c.size).withConvs(c.conv)
        let cluster = try Examples.cluster("mixed-pi4-pi3")
        let plan = try Planner(network: net, cluster: cluster).plan(c.planner)
        let ctx = try Context()
        let (leader, workers) = try startCluster(cluster, plan: plan, network: net, context: ctx)
        // Every board's arena, as the board itself reported it, is the planner's memory figure for it.
        #expect(leader.arenaBytes == plan.peakMemoryBytes)
        let single = try net.makeEngine(threads: 1)
        var rng = SplitMix64(seed: 31)
        for _ in 0..<3 {
            let x = (0..<net.inputCount).map { _ in Float(rng.nextUnit() * 2 - 1) }
            let y = try leader.infer(x)
            let err = scaledError(y, single.run(x))
            #expect(err <= 1e-4, "scaled error \(err)")
        }
        #expect(leader.inferences == 3)
        // Boards with work sent results; a single-board plan sends nothing.
        if c.planner == .single { #expect(leader.messagesSent.reduce(0, +) == 0) }
        // Under oc every board computes a slice of every partitionable stage, so every worker answered.
        if c.planner == .oc { #expect(leader.messagesSent.allSatisfy { $0 > 0 }, "\(leader.messagesSent)") }
        leader.shutdown()
        for w in workers {
            #expect(w.join(), "a worker did not stop")
            #expect(w.error == nil, "\(w.error?.message ?? "")")
        }
    }

    @Test func overBudgetWorkerIsRefusedAndEveryoneStops() throws {
        let net = try Zoo.make("alexnet", inputSize: 67)
        let cluster = try Examples.cluster("mixed-pi4-pi3")
        let plan = try Planner(network: net, cluster: cluster).plan(.oc)
        var budgets = cluster.devices.map(\.memoryBudgetBytes)
        budgets[2] = 1 << 20  // pi3-a says it has 1 MiB, far too small for its slices
        let ctx = try Context()
        do {
            _ = try startCluster(cluster, plan: plan, network: net, context: ctx, budgets: budgets)
            Issue.record("the leader accepted an over-budget board")
        } catch {
            // startCluster waits for every worker to stop before it rethrows.
            if case .refused(let board, .overBudget, let needed, let budget)? = error as? NodeError {
                #expect(board == "pi3-a" && budget == 1 << 20 && needed > budget)
                #expect((error as! NodeError).message.contains("board 'pi3-a' refused its program"))
            } else {
                Issue.record("\(error)")
            }
        }
    }
}

/// The worker's own budget check, without a leader that checks first: sent a
/// program bigger than its budget, it answers `refuse` with the bytes it needs.
// Bounded by its sockets' 10 s timeouts rather than a wall-clock limit, which parallel load can exceed.
@Test func workerRefusesAProgramOverItsBudget() throws {
    let ctx = try Context()
    let fakeLeader = try Socket(ctx, .pull)
    try fakeLeader.setTimeouts(sendMs: 10_000, receiveMs: 10_000)
    try fakeLeader.bind("tcp://127.0.0.1:*")
    let g = ConvGeometry(
        inChannels: 64, inHeight: 16, inWidth: 16, outChannels: 64, kernelH: 3, kernelW: 3, padTop: 1, padLeft: 1,
        padBottom: 1, padRight: 1)
    let layers = [Layer(name: "conv", kind: .conv(g, .relu), weights: [Float](repeating: 0.01, count: g.weightCount))]
    // The program a leader would send a board running this conv alone (board 1 of 2).
    let segment = SegmentProgram(
        parts: [BoardPart(board: 1, layers: layers, input: .all, output: .all)], reduceLayers: [],
        inputCount: g.inputCount, outputCount: g.outputCount, partialCount: 0)
    let program = BoardLayout.compile([segment], boards: 2, leader: 0).programs[1]
    let needed = program.arenaBytes
    #expect(needed > 4 * (g.weightCount + g.inputCount + g.outputCount))
    let worker = try Worker(
        context: ctx, name: "small", listen: "tcp://127.0.0.1:*", leader: try fakeLeader.boundEndpoint(),
        budgetBytes: needed - 1, threads: 1, timeoutMs: 10_000, idleTimeoutMs: 10_000)
    let thread = WorkerThread(worker)
    let hello = try fakeLeader.receiveMessage()
    #expect(hello.count > MessageHeader.size && hello[6] == MessageKind.hello.rawValue)
    let toWorker = try Socket(ctx, .push)
    try toWorker.setTimeouts(sendMs: 10_000, receiveMs: 10_000)
    try toWorker.connect(worker.endpoint)
    // Only the program: the worker refuses before any weights would be sent.
    let body = ProgramCodec.encode(program)
    var frame = [UInt8](repeating: 0, count: MessageHeader.size + body.count)
    _ = try body.withUnsafeBytes { b in
        try frame.withUnsafeMutableBytes { try Wire.encode(kind: .program, requestID: 1, payload: b, into: $0) }
    }
    try frame.withUnsafeBytes { try toWorker.send($0) }
    let answer = try fakeLeader.receiveMessage()
    let header = try answer.withUnsafeBytes { try Wire.decode($0, maxPayload: 1024) }
    #expect(header.kind == .refuse && header.requestID == 1)
    let refuse = try Array(answer[MessageHeader.size...]).withUnsafeBytes { try Refuse.decode($0) }
    #expect(refuse == Refuse(reason: .overBudget, bytesNeeded: UInt64(needed), budgetBytes: UInt64(needed - 1)))
    #expect(thread.join(seconds: 10) && thread.error == nil)
}
