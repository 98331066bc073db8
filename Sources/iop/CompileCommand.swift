import ArgumentParser
import Foundation
import IOPModel
import IOPPlan
import IOPProgram

struct Compile: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Plan a model for a cluster and write the bundle the leader runs: every board's program and weight shards.")
    @OptionGroup var model: ModelOptions
    @OptionGroup var clusterOptions: ClusterOptions
    @OptionGroup var plannerOptions: PlannerOptions
    @Option(name: .long, help: "Directory to write bundle.iop and manifest.json into (created if missing).")
    var out: String
    @Flag(
        name: .long,
        help: ArgumentHelp(
            "Skip the fallback plans.",
            discussion: "By default a plan is also compiled for the loss of each worker (fallback-NAME.iop: the "
                + "model on the boards that are left, within their budgets); the leader moves to it when the board "
                + "is lost, and back when it returns. The manifest lists them, or why one is impossible."))
    var noFallbacks = false

    func run() throws {
        try reportingErrors {
            let net = try model.load()
            let cluster = try clusterOptions.loadCluster()
            let plan = try plannerOptions.plan(net, on: cluster)
            let bytes = ProgramBundle.compile(plan, network: net)
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            try writeAtomically(Data(bytes), to: (out as NSString).appendingPathComponent("bundle.iop"))
            let fallbacks =
                noFallbacks ? [] : try writeFallbacks(net, cluster: cluster, planner: plannerOptions, into: out)
            if noFallbacks { removeFallbacks(in: out) }
            let manifest: [String: Any] = [
                "fallbacks": fallbacks,
                "format": "iop-bundle", "version": Int(ProgramBundle.version), "model": net.name,
                "planner": plannerOptions.label,
                "input_shape": net.inputShape, "output_shape": net.outputShape, "bundle_bytes": bytes.count,
                "modeled_latency_ms": plan.modeledLatencyMs, "cost_model": costModelName(cluster),
                "wire": plannerOptions.wire.rawValue, "segment_wire": plan.costs.map(wireName),
                "request_ms": plan.requestMs, "segment_ms": plan.costs.map { ($0.latencyMs * 1000).rounded() / 1000 },
                "segment_phases_ms": plan.costs.compactMap(\.phases).map(phasesObject),
                "leader": cluster.devices[cluster.leader].name,
                "boards": cluster.devices.enumerated().map { i, d in
                    var board: [String: Any] = [
                        "name": d.name, "endpoint": d.endpoint, "budget_bytes": d.memoryBudgetBytes,
                        "planned_peak_bytes": plan.peakMemoryBytes[i],
                    ]
                    if let cpu = plan.cpuMsPerInference { board["cpu_ms_per_inference"] = cpu[i] }
                    if let p = d.profile { board["cpu_scale"] = p.cpuScale }
                    return board
                },
            ]
            try writeAtomically(
                Data(try jsonString(manifest).utf8), to: (out as NSString).appendingPathComponent("manifest.json"))
            print(
                "wrote \(out)/bundle.iop (\(formatBytes(bytes.count))) and manifest.json: "
                    + "\(net.name), \(plannerOptions.label) plan, \(cluster.devices.count) boards"
            )
        }
    }
}

func writeAtomically(_ data: Data, to path: String) throws {
    do { try data.write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
        throw ModelError.io(path: path, reason: "cannot write: \(error.localizedDescription)")
    }
}

/// For each worker, the plan without it (fallback-NAME.iop in `directory`), or why there is none; the manifest's
/// `fallbacks` list: `{lost, file}` or `{lost, impossible}`.
func writeFallbacks(_ net: Network, cluster: Cluster, planner: PlannerOptions, into directory: String) throws
    -> [[String: Any]]
{
    removeFallbacks(in: directory)
    var listed: [[String: Any]] = []
    for (i, lost) in cluster.devices.enumerated() where i != cluster.leader {
        var devices = cluster.devices
        devices.remove(at: i)
        let survivors = Cluster(devices: devices, leader: cluster.leader - (i < cluster.leader ? 1 : 0))
        let file = "fallback-\(lost.name).iop"
        do {
            let plan = try planner.plan(net, on: survivors)
            try writeAtomically(
                Data(ProgramBundle.compile(plan, network: net)),
                to: (directory as NSString).appendingPathComponent(file))
            listed.append(["lost": lost.name, "file": file, "modeled_latency_ms": plan.modeledLatencyMs])
        } catch let e as PlanError {
            listed.append(["lost": lost.name, "impossible": e.description])
        } catch let e as CommandFailure {
            listed.append(["lost": lost.name, "impossible": e.description])
        }
    }
    return listed
}

/// A fallback left from an earlier compile would be another plan's: every write starts by removing them.
func removeFallbacks(in directory: String) {
    for old in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
    where old.hasPrefix("fallback-") && old.hasSuffix(".iop") {
        try? FileManager.default.removeItem(atPath: (directory as NSString).appendingPathComponent(old))
    }
}
