import ArgumentParser
import IOPModel
import IOPPlan

extension WireChoice: ExpressibleByArgument {}

extension ClusterOptions {
    func loadCluster() throws -> Cluster {
        if let cluster { return try Cluster.load(path: cluster) }
        guard let nodes, nodes >= 1 else { throw ValidationError("give --cluster FILE or --nodes N (N >= 1)") }
        // Identical local boards on loopback: generous budgets, a fast link.
        return Cluster(
            devices: (0..<nodes).map {
                DeviceSpec(
                    name: "node\($0)", endpoint: "tcp://127.0.0.1:0", gflops: 6, memoryBudgetBytes: 2 << 30,
                    bandwidthMbps: 10_000, setupMs: 0.1, threads: 1)
            }, leader: 0)
    }
}

struct ClusterOptions: ParsableArguments {
    @Option(name: .long, help: "Cluster file (JSON; see examples/clusters).")
    var cluster: String?
    @Option(name: .long, help: "Instead of --cluster: N identical local boards.")
    var nodes: Int?
}

/// How a command chooses its plan: a planner, a deadline, or both.
struct PlannerOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
            "single, oc, coedge, iop or optimal (default: optimal, or with --deadline-ms the plan with the most "
                + "memory headroom that meets it)."))
    var planner: PlannerKind?
    @Option(
        name: .long,
        help: ArgumentHelp(
            "A stream's deadline per window: only plans whose modelled latency meets it.",
            discussion: "Without --planner: among the plans that meet it, the one with the most memory headroom on its "
                + "fullest board. With --planner: that planner's plan, refused if it does not meet the deadline.",
            valueName: "ms"))
    var deadlineMs: Double?
    @Option(
        name: .long,
        help: ArgumentHelp(
            "How activations cross the wire: fp32, fp16 or auto.",
            discussion: "fp16 sends every segment's activations as IEEE half precision (half the bytes; each "
                + "receiver widens them, the leader's reduction stays fp32); auto chooses per segment, fp16 where "
                + "the cost model says the link time saved beats the conversions (docs/planner.md). fp16 "
                + "changes the outputs slightly: --check then allows a scaled error of "
                + "\(fp16CheckTolerance) (README, \"fp16 on the wire\")."))
    var wire: WireChoice = .fp32

    func validate() throws {
        if let d = deadlineMs, !(d > 0) { throw ValidationError("--deadline-ms must be positive, got \(d)") }
    }

    /// The name the plan is reported under.
    var label: String {
        if let planner { return planner.rawValue }
        return deadlineMs == nil ? PlannerKind.optimal.rawValue : "deadline"
    }

    func plan(_ network: Network, on cluster: Cluster) throws -> Plan {
        let plan = try choose(network, on: cluster)
        // After planning: a refusal stays one line.
        noteCostModel(cluster)
        return plan
    }

    func choose(_ network: Network, on cluster: Cluster) throws -> Plan {
        let planner = Planner(network: network, cluster: cluster, wire: wire)
        guard let deadlineMs else { return try planner.plan(self.planner ?? .optimal) }
        guard let kind = self.planner else { return try planner.plan(deadlineMs: deadlineMs) }
        let plan = try planner.plan(kind)
        if plan.modeledLatencyMs > deadlineMs {
            throw CommandFailure(
                description:
                    "the \(kind.rawValue) plan is modelled at \(String(format: "%.1f", plan.modeledLatencyMs)) "
                    + "ms, over the \(String(format: "%g", deadlineMs)) ms deadline; drop --planner to search every "
                    + "plan that meets it")
        }
        return plan
    }
}

/// Says on stderr which cost model plans for `cluster` use, and why (docs/planner.md).
func noteCostModel(_ cluster: Cluster) {
    let names = cluster.devices.map(\.name)
    let profiled = cluster.devices.filter { $0.profile != nil }.map(\.name)
    if cluster.isProfiled {
        note("cost model: calibrated, from the measured profiles of \(names.joined(separator: ", "))")
    } else if profiled.isEmpty {
        note("cost model: nominal (the cluster file's gflops, bandwidth_mbps, setup_ms; iop profile measures boards)")
    } else {
        let missing = names.filter { !profiled.contains($0) }
        note("cost model: nominal: \(missing.joined(separator: ", ")) have no profile (iop profile measures boards)")
    }
}

/// The largest scaled error `--check` allows, `max |y − y_ref| / max(1, max |y_ref|)` against single-board
/// fp32: 1e-4 when every activation crosses the wire in fp32 (only the summation order differs), and
/// `fp16CheckTolerance` when any segment sends fp16 (measured on every zoo model: README, "fp16 on the wire").
func checkTolerance(_ plan: Plan) -> Double {
    plan.costs.contains { $0.wire == .fp16 } ? fp16CheckTolerance : 1e-4
}
let fp16CheckTolerance = 1e-2

/// Each segment's wire precision as plans print it: "-" for a segment that sends nothing.
func wireName(_ c: SegmentCost) -> String { c.bytesSent.reduce(0, +) == 0 ? "-" : c.wire.name }

/// "calibrated" or "nominal", for JSON outputs and manifests.
func costModelName(_ cluster: Cluster) -> String { cluster.isProfiled ? "calibrated" : "nominal" }

/// A segment's modelled phases with the names `iop request --stats --json` gives the measured ones.
func phasesObject(_ p: SegmentPhases) -> [String: Double] {
    func ms(_ x: Double) -> Double { (x * 1000).rounded() / 1000 }
    return [
        "scatter_ms": ms(p.scatterMs), "own_ms": ms(p.ownMs), "gather_ms": ms(p.gatherMs), "reduce_ms": ms(p.reduceMs),
    ]
}
