import ArgumentParser
import Foundation
import IOPModel
import IOPPlan

extension PlannerKind: ExpressibleByArgument {}

/// Architecture only: planning needs geometry, not weights.
func loadForPlanning(_ options: ModelOptions) throws -> Network {
    if Zoo.names.contains(options.model) {
        return try Zoo.make(options.model, inputSize: options.inputSize, withWeights: false)
    }
    return try options.load()
}

func pad(_ s: String, _ n: Int) -> String {
    s.count >= n ? s + " " : s.padding(toLength: n, withPad: " ", startingAt: 0)
}

func planJSON(_ p: Plan, label: String, wire: WireChoice = .fp32) -> [String: Any] {
    let cpu = p.cpuMsPerInference
    let devices = p.cluster.devices.enumerated().map { i, d -> [String: Any] in
        var o: [String: Any] = [
            "name": d.name, "peak_memory_bytes": p.peakMemoryBytes[i], "budget_bytes": d.memoryBudgetBytes,
            "bytes_sent_per_inference": p.bytesSentPerInference[i], "messages_per_inference": p.messagesPerInference[i],
        ]
        if let cpu { o["cpu_ms_per_inference"] = cpu[i] }
        return o
    }
    let segments = zip(p.segments, p.costs).map { segment, c -> [String: Any] in
        var s: [String: Any] = [
            "compute_ms": c.computeMs, "comm_ms": c.commMs, "bytes": c.bytesSent.reduce(0, +), "wire": wireName(c),
            "partitions": c.partitions.map { p -> [String: Any] in
                var o: [String: Any] = [
                    "layer": p.layer, "dim": p.dimension.rawValue, "extents": p.extents, "full_extent": p.fullExtent,
                ]
                // A grid's tile per board: `extents` rows by `column_extents` columns, `grid_columns` boards a row.
                if let columns = p.columnExtents, case .fusedGrid(_, _, let gridColumns) = segment {
                    o["column_extents"] = columns
                    o["grid_columns"] = gridColumns
                }
                return o
            },
        ]
        if let phases = c.phases { s["phases"] = phasesObject(phases) }
        return s
    }
    return [
        "planner": label, "modeled_latency_ms": p.modeledLatencyMs, "devices": devices,
        "cost_model": costModelName(p.cluster), "wire": wire.rawValue,
        "segments": segments,
    ]
}

struct PlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Choose how every operator is split across the cluster's boards, and show the modelled cost.",
        discussion:
            "Planners: single (leader only), oc (all by output channels), coedge (convs by rows), "
            + "iop (the paper's greedy pairing, with chains through channel-local ops and residual branches), "
            + "optimal (exact search under the memory budgets), ftp (DeepThings' fused tiles: runs of convs by rows "
            + "with their halos). "
            + "The cost model is described in docs/planner.md: nominal (the cluster file's gflops, bandwidth_mbps, "
            + "setup_ms), or calibrated when every board has a measured profile (iop profile); the command says which."
    )

    @OptionGroup var model: ModelOptions

    @OptionGroup var clusterOptions: ClusterOptions

    @OptionGroup var plannerOptions: PlannerOptions

    @Flag(name: .long, help: "Print one JSON object instead of a table.")
    var json = false

    func run() throws {
        try reportingErrors {
            let net = try loadForPlanning(model)
            let c = try clusterOptions.loadCluster()
            let plan = try plannerOptions.plan(net, on: c)
            if json {
                print(try jsonString(planJSON(plan, label: plannerOptions.label, wire: plannerOptions.wire))); return
            }
            let names = c.devices.map(\.name)
            print(
                "\(net.name) on \(names.count) boards (\(names.joined(separator: ", ")); leader \(names[c.leader])), "
                    + "planner \(plannerOptions.label)"
            )
            print(
                pad("seg", 5) + pad("operator", 16) + pad("dim", 6) + pad("extents / full", 26) + pad("compute ms", 12)
                    + pad("comm ms", 10) + pad("wire", 6) + "bytes")
            for (i, cost) in plan.costs.enumerated() {
                for (k, part) in cost.partitions.enumerated() {
                    // A grid's tile per board: rows x columns.
                    let ext =
                        (part.columnExtents.map { zip(part.extents, $0).map { "\($0)x\($1)" } }
                        ?? part.extents.map(String.init)).joined(separator: ",") + " / \(part.fullExtent)"
                    let tail =
                        k == 0
                        ? pad(String(format: "%.2f", cost.computeMs), 12) + pad(String(format: "%.2f", cost.commMs), 10)
                            + pad(wireName(cost), 6) + formatBytes(cost.bytesSent.reduce(0, +)) : ""
                    print(
                        pad(k == 0 ? "\(i + 1)" : "", 5) + pad(part.layer, 16) + pad(part.dimension.rawValue, 6)
                            + pad(ext, 26) + tail)
                }
            }
            print(String(format: "modelled latency %.2f ms", plan.modeledLatencyMs))
            for (i, d) in c.devices.enumerated() {
                print(
                    "  \(pad(d.name, 12)) arena \(pad(formatBytes(plan.peakMemoryBytes[i]), 11))"
                        + " of \(pad(formatBytes(d.memoryBudgetBytes), 10))"
                        + " sends \(formatBytes(plan.bytesSentPerInference[i]))"
                        + " in \(plan.messagesPerInference[i]) messages"
                )
            }
        }
    }
}

struct Simulate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Compare every planner's modelled latency and peak memory, per model, in the layout of the paper's table.")

    @Option(name: .long, help: "Comma-separated zoo models or .onnx files.")
    var model: String

    @Option(name: .long, help: "Spatial input size for zoo models.")
    var inputSize: Int?

    @Option(name: .long, help: "Cluster file (JSON; see examples/clusters).")
    var cluster: String

    @Option(
        name: .long,
        help: "Comma-separated per-message setup times (ms) that replace the cluster file's, one comparison each.")
    var setupMs: String?

    @Option(name: .long, help: "How activations cross the wire: fp32, fp16 or auto (as iop plan --wire).")
    var wire: WireChoice = .fp32

    @Flag(name: .long, help: "Print one JSON array instead of tables.")
    var json = false

    func run() throws {
        try reportingErrors {
            let base = try Cluster.load(path: cluster)
            var setups: [Double?] = [nil]
            if let setupMs {
                setups = try setupMs.split(separator: ",").map { t in
                    guard let v = Double(t.trimmingCharacters(in: .whitespaces)), v >= 0 else {
                        throw ValidationError("--setup-ms takes comma-separated non-negative numbers, got '\(t)'")
                    }
                    return v
                }
            }
            var rows: [[String: Any]] = []
            for name in model.split(separator: ",").map(String.init) {
                var options = try ModelOptions.parse(["--model", name])
                options.inputSize = inputSize
                let net = try loadForPlanning(options)
                for setup in setups {
                    var c = base
                    if let setup { for i in c.devices.indices { c.devices[i].setupMs = setup } }
                    let planner = Planner(network: net, cluster: c, wire: wire)
                    var results: [PlannerKind: Plan] = [:]
                    var failures: [PlannerKind: String] = [:]
                    for kind in PlannerKind.allCases {
                        do { results[kind] = try planner.plan(kind) } catch let e as PlanError {
                            failures[kind] = e.description
                        }
                    }
                    func saved(_ a: PlannerKind, _ b: PlannerKind, _ value: (Plan) -> Double) -> Double? {
                        guard let x = results[a], let y = results[b] else { return nil }
                        return 100 * (1 - value(x) / value(y))
                    }
                    let peak = { (p: Plan) in Double(p.peakMemoryBytes.max()!) }
                    let latency = { (p: Plan) in p.modeledLatencyMs }
                    var row: [String: Any] = [
                        "model": net.name,
                        "planners": PlannerKind.allCases.map { k -> [String: Any] in
                            if let p = results[k] {
                                return [
                                    "planner": k.rawValue, "modeled_latency_ms": p.modeledLatencyMs,
                                    "peak_memory_bytes": p.peakMemoryBytes.max()!,
                                ]
                            }
                            return ["planner": k.rawValue, "error": failures[k]!]
                        },
                    ]
                    if let setup { row["setup_ms"] = setup }
                    for (key, a, b, f) in [
                        ("iop_latency_saved_vs_oc_pct", PlannerKind.iop, PlannerKind.oc, latency),
                        ("iop_latency_saved_vs_coedge_pct", .iop, .coedge, latency),
                        ("iop_peak_memory_saved_vs_coedge_pct", .iop, .coedge, peak),
                        ("optimal_latency_saved_vs_oc_pct", .optimal, .oc, latency),
                        ("optimal_latency_saved_vs_coedge_pct", .optimal, .coedge, latency),
                        ("optimal_peak_memory_saved_vs_coedge_pct", .optimal, .coedge, peak),
                    ] {
                        if let v = saved(a, b, f) { row[key] = v }
                    }
                    rows.append(row)
                    if !json { printRow(row, net: net.name, setup: setup) }
                }
            }
            noteCostModel(base)
            if json { print(try jsonString(rows)) }
        }
    }

    func printRow(_ row: [String: Any], net: String, setup: Double?) {
        print("\(net)" + (setup.map { String(format: ", setup %.1f ms", $0) } ?? ""))
        for p in row["planners"] as! [[String: Any]] {
            if let ms = p["modeled_latency_ms"] as? Double {
                print(
                    "  \(pad(p["planner"] as! String, 9)) \(String(format: "%9.2f ms", ms))   "
                        + "peak \(formatBytes(p["peak_memory_bytes"] as! Int))"
                )
            } else {
                print("  \(pad(p["planner"] as! String, 9)) does not fit: \(p["error"] as! String)")
            }
        }
        func pct(_ k: String) -> String { (row[k] as? Double).map { String(format: "%6.2f %%", $0) } ?? "   n/a" }
        print(
            "  latency saved: iop vs oc \(pct("iop_latency_saved_vs_oc_pct")),"
                + " vs coedge \(pct("iop_latency_saved_vs_coedge_pct"));"
                + " optimal vs oc \(pct("optimal_latency_saved_vs_oc_pct")),"
                + " vs coedge \(pct("optimal_latency_saved_vs_coedge_pct"))"
        )
        print(
            "  peak memory saved vs coedge: iop \(pct("iop_peak_memory_saved_vs_coedge_pct")),"
                + " optimal \(pct("optimal_peak_memory_saved_vs_coedge_pct"))"
        )
    }
}
