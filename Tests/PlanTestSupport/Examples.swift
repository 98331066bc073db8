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
}
