import Foundation
import IOPModel
import IOPPlan

/// The example cluster files in examples/clusters, for tests of plans, bundles and clusters.
public enum Examples {
    public static var directory: URL {
        var dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while !FileManager.default.fileExists(atPath: dir.appendingPathComponent("examples/clusters").path) {
            dir.deleteLastPathComponent()
        }
        return dir.appendingPathComponent("examples/clusters")
    }
    public static let names = ["four-pi4-wifi", "mixed-pi4-pi3", "small-memory", "compute-bound-gige"]
    public static func cluster(_ name: String) throws -> Cluster {
        try Cluster.load(path: directory.appendingPathComponent(name + ".json").path)
    }

    /// Four identical boards with nominal figures, every link at `mbps`.
    public static func fourBoards(mbps: Double) -> Cluster {
        Cluster(
            devices: (0..<4).map {
                DeviceSpec(
                    name: "b\($0)", endpoint: "tcp://127.0.0.1:0", gflops: 6, memoryBudgetBytes: 2 << 30,
                    bandwidthMbps: mbps, setupMs: 0.5, threads: 1)
            }, leader: 0)
    }
}
