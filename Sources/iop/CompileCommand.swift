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

    func run() throws {
        try reportingErrors {
            let net = try model.load()
            let cluster = try clusterOptions.loadCluster()
            let plan = try plannerOptions.plan(net, on: cluster)
            let bytes = ProgramBundle.compile(plan, network: net)
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            try writeAtomically(Data(bytes), to: (out as NSString).appendingPathComponent("bundle.iop"))
            let manifest: [String: Any] = [
                "format": "iop-bundle", "version": Int(ProgramBundle.version), "model": net.name,
                "planner": plannerOptions.label,
                "input_shape": net.inputShape, "output_shape": net.outputShape, "bundle_bytes": bytes.count,
                "modeled_latency_ms": plan.modeledLatencyMs, "cost_model": costModelName(cluster),
                "leader": cluster.devices[cluster.leader].name,
                "boards": cluster.devices.enumerated().map { i, d in
                    [
                        "name": d.name, "endpoint": d.endpoint, "budget_bytes": d.memoryBudgetBytes,
                        "planned_peak_bytes": plan.peakMemoryBytes[i],
                    ] as [String: Any]
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
