import ArgumentParser
import IOPPlan

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
