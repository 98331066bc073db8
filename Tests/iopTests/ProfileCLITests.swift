import Foundation
import Testing

/// `iop profile` as a user runs it: board profiles into a cluster file, then plans that say so.
@Suite struct ProfileCLITests {
    static let boards = ["pi4-a", "pi4-b", "pi4-c", "pi4-d"]
    static let profile = """
        {"format": "iop-profile/1", "threads": 1, "seconds": 2.0,
         "cpu": {"share": 1, "burst_ms": 0, "period_ms": 0},
         "kernels": {"conv_3x3": {"unit": "flop", "overhead_us": 10, "giga_per_s": 5, "samples": []},
                     "linear": {"unit": "byte", "overhead_us": 0, "giga_per_s": 2, "samples": []},
                     "copy": {"unit": "byte", "overhead_us": 0, "giga_per_s": 4, "samples": []}}}
        """
    static let probe = """
        {"format": "iop-probe/1", "peer": "tcp://198.18.0.2:5700", "latency_ms": 0.5, "bandwidth_mbps": 90,
         "burst_bytes": 0, "local": {"send_cpu_ns_per_byte": 1, "receive_cpu_ns_per_byte": 2},
         "peer_cpu": {"send_cpu_ns_per_byte": 3, "receive_cpu_ns_per_byte": 4}, "bursts": []}
        """

    /// A cluster file copy and a directory of profiles, one board's probe among them.
    func scratch() throws -> (cluster: String, dir: String) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("iop-profile-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let cluster = dir.appendingPathComponent("cluster.json").path
        try FileManager.default.copyItem(atPath: PlanCLITests.clusters + "/four-pi4-wifi.json", toPath: cluster)
        for b in Self.boards { try Data(Self.profile.utf8).write(to: dir.appendingPathComponent("\(b).json")) }
        try Data(Self.probe.utf8).write(to: dir.appendingPathComponent("pi4-b.probe.json"))
        return (cluster, dir.path)
    }

    @Test func profilesLandInTheClusterFileAndPlansUseThem() throws {
        let (cluster, dir) = try scratch()
        let before = try runIOP(["plan", "--model", "lenet5", "--cluster", cluster, "--json"])
        #expect(before.stderr.contains("cost model: nominal"), "\(before.stderr)")
        let r = try runIOP(["profile", "--cluster", cluster, "--from", dir])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("4 board profiles; plans use the calibrated model"), "\(r.stdout)")
        // The probe of pi4-b gives pi4-b its link (its own CPU per byte) and the leader its end.
        let root = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: cluster)))
        let devices = (root as! [String: Any])["devices"] as! [[String: Any]]
        let b = (devices[1]["profile"] as! [String: Any])["link"] as! [String: Any]
        #expect(b["send_cpu_ns_per_byte"] as? Double == 3 && b["bandwidth_mbps"] as? Double == 90)
        let a = (devices[0]["profile"] as! [String: Any])["link"] as! [String: Any]
        #expect(a["send_cpu_ns_per_byte"] as? Double == 1 && a["receive_cpu_ns_per_byte"] as? Double == 2)
        #expect((devices[2]["profile"] as! [String: Any])["link"] == nil)

        let after = try runIOP(["plan", "--model", "lenet5", "--cluster", cluster, "--json"])
        #expect(after.status == 0, "\(after.stderr)")
        #expect(after.stderr.contains("cost model: calibrated, from the measured profiles of pi4-a"))
        let plan = try JSONSerialization.jsonObject(with: Data(after.stdout.utf8)) as! [String: Any]
        #expect(plan["cost_model"] as? String == "calibrated")
    }

    @Test func aBadProfileFileIsNamed() throws {
        let (cluster, dir) = try scratch()
        try Data(#"{"threads": 1, "kernels": {"conv_9x9": {"overhead_us": 1, "giga_per_s": 1}}}"#.utf8)
            .write(to: URL(fileURLWithPath: dir + "/pi4-c.json"))
        let r = try runIOP(["profile", "--cluster", cluster, "--from", dir])
        #expect(r.status != 0)
        #expect(r.stderr.contains("board 'pi4-c': profile: unknown kernel class 'conv_9x9'"), "\(r.stderr)")
        try FileManager.default.removeItem(atPath: dir + "/pi4-d.json")
        let missing = try runIOP(["profile", "--cluster", cluster, "--from", dir])
        #expect(missing.stderr.contains("pi4-d.json: cannot read board 'pi4-d''s profile"), "\(missing.stderr)")
    }
}
