import Foundation
import IOPModel
import TestSupport
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
         "burst_bytes": 0, "local": {"send_cpu_ns_per_byte": 1, "receive_cpu_ns_per_byte": 2, "message_cpu_us": 25},
         "peer_cpu": {"send_cpu_ns_per_byte": 3, "receive_cpu_ns_per_byte": 4, "message_cpu_us": 35}, "bursts": []}
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
        #expect(b["message_cpu_us"] as? Double == 35)
        let a = (devices[0]["profile"] as! [String: Any])["link"] as! [String: Any]
        #expect(a["send_cpu_ns_per_byte"] as? Double == 1 && a["receive_cpu_ns_per_byte"] as? Double == 2)
        #expect(a["message_cpu_us"] as? Double == 25)
        #expect((devices[2]["profile"] as! [String: Any])["link"] == nil)

        let after = try runIOP(["plan", "--model", "lenet5", "--cluster", cluster, "--json"])
        #expect(after.status == 0, "\(after.stderr)")
        #expect(after.stderr.contains("cost model: calibrated, from the measured profiles of pi4-a"))
        let plan = try JSONSerialization.jsonObject(with: Data(after.stdout.utf8)) as! [String: Any]
        #expect(plan["cost_model"] as? String == "calibrated")
    }

    /// CPU time read from the kernel's own counter for a process: the on-CPU time of every thread
    /// (/proc/PID/task/*/schedstat), in nanoseconds.
    static func onCPUNs(_ pid: Int32) throws -> Double {
        let tasks = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")
        return try tasks.reduce(0) { sum, t in
            let line = try String(contentsOfFile: "/proc/\(pid)/task/\(t)/schedstat", encoding: .utf8)
            return sum + (Double(line.split(separator: " ")[0]) ?? 0)
        }
    }

    /// A trial run on iop-node processes: each board's CPU per inference, as the nodes report it to the leader
    /// (`iop request --stats`), is what the kernel counted for its process over the same requests; and
    /// `iop profile --calibrate` sets each board's `cpu_scale` to measured over modelled (the manifest's figure).
    @Test(.timeLimit(.minutes(10))) func aTrialRunsCPUCalibratesTheProfiles() throws {
        let dir = temporaryPath("calibrate-\(UUID().uuidString)")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let profile = try JSONSerialization.jsonObject(with: Data(Self.profile.utf8))
        let devices = (0..<3).map { i -> [String: Any] in
            [
                "name": "node\(i)", "endpoint": "tcp://127.0.0.1:1", "gflops": 5, "memory": "256MiB",
                "bandwidth_mbps": 1000, "setup_ms": 0.1, "threads": 1, "profile": profile,
            ]
        }
        let cluster = dir + "/cluster.json"
        try JSONSerialization.data(withJSONObject: ["leader": "node0", "devices": devices]).write(
            to: URL(fileURLWithPath: cluster))
        let model = ["--model", "resnet18", "--input-size", "64"]
        let trial = dir + "/trial"
        let compiled = try runIOP(
            ["compile"] + model + ["--cluster", cluster, "--planner", "iop", "--out", trial, "--no-fallbacks"])
        try #require(compiled.status == 0, "\(compiled.stderr)")
        let input = dir + "/x.npy"
        try NPY.write(
            NPY.Array(shape: [1, 3, 64, 64], values: (0..<(3 * 64 * 64)).map { Float($0 % 17) / 17 - 0.5 }),
            path: input)

        let leader = try NodeProcess(
            [
                "leader", "--bundle", trial, "--listen", "tcp://127.0.0.1:*", "--requests", "tcp://127.0.0.1:*",
                "--timeout-ms", "60000", "--heartbeat-ms", "500",
            ], environment: [:])
        let endpoint = try #require(leader.waitLine(prefix: "listening ", seconds: 20), "\(leader.stderr)")
        let workers = try (1...2).map { i in
            try NodeProcess(
                [
                    "worker", "--name", "node\(i)", "--listen", "tcp://127.0.0.1:*", "--leader", endpoint,
                    "--memory-budget", "256MiB", "--timeout-ms", "60000", "--heartbeat-ms", "500",
                ], environment: [:])
        }
        let requests = try #require(leader.waitLine(prefix: "ready ", seconds: 60), "\(leader.stderr)")
        func request(_ n: Int) throws {
            let r = try runIOP([
                "request", "--leader", requests, "--input", input, "--repeat", String(n), "--insecure",
            ])
            try #require(r.status == 0, "\(r.stderr)")
        }
        let pids = [leader.process.processIdentifier] + workers.map(\.process.processIdentifier)
        // The first inference starts the nodes' count, as it starts this one.
        try request(1)
        let before = try pids.map(Self.onCPUNs)
        try request(8)
        let after = try pids.map(Self.onCPUNs)
        let statsRun = try runIOP(["request", "--leader", requests, "--stats", "--json", "--insecure"])
        try #require(statsRun.status == 0, "\(statsRun.stderr)")
        let statsPath = dir + "/stats.json"
        try Data(statsRun.stdout.utf8).write(to: URL(fileURLWithPath: statsPath))
        kill(leader.process.processIdentifier, SIGTERM)
        #expect(leader.exitStatus(within: 15) == 0, "\(leader.stderr)")
        for w in workers { #expect(w.exitStatus(within: 15) == 0, "\(w.stderr)") }

        let stats = try #require(try JSONSerialization.jsonObject(with: Data(statsRun.stdout.utf8)) as? [String: Any])
        #expect(stats["cpu_inferences"] as? Int == 8)
        let reported = try #require(stats["boards"] as? [[String: Any]]).map {
            $0["cpu_ms_per_inference"] as? Double ?? -1
        }
        for (k, ms) in reported.enumerated() {
            // The kernel's count spans the requests' round trips too: a board idles between them at next to no CPU.
            let counted = (after[k] - before[k]) / 1e6 / 8
            #expect(
                ms > 0 && ms >= 0.8 * counted && ms <= 1.1 * counted, "node\(k): reported \(ms), counted \(counted)")
        }

        let manifest = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: trial + "/manifest.json")))
                as? [String: Any])
        let modelled = try #require(manifest["boards"] as? [[String: Any]]).map {
            $0["cpu_ms_per_inference"] as? Double ?? 0
        }
        let r = try runIOP(["profile", "--cluster", cluster, "--calibrate", trial, "--stats", statsPath])
        #expect(r.status == 0, "\(r.stderr)")
        let root = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: cluster)))
        let scales = ((root as! [String: Any])["devices"] as! [[String: Any]]).map {
            ($0["profile"] as! [String: Any])["cpu_scale"] as? Double ?? 1
        }
        for k in 0..<3 where modelled[k] > 0 {
            #expect(abs(scales[k] - reported[k] / modelled[k]) < 1e-9, "node\(k): \(scales[k])")
        }
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

    /// `--ssh` as on a deployed cluster, with an ssh that runs each board's command on this machine: every
    /// board profiles itself, the leader probes each worker over CURVE with the cluster's keys, and a
    /// board that cannot is named.
    @Test func sshMeasuresEveryBoardAndProbesOverCurve() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("iop-ssh-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir + "/bin", withIntermediateDirectories: true)
        let devices = ["lead", "w1", "w2"].map {
            #"{"name": "\#($0)", "endpoint": "tcp://127.0.0.1:5555", "gflops": 5, "memory": "1GiB", "#
                + #""bandwidth_mbps": 100, "setup_ms": 1, "threads": 1}"#
        }
        let cluster = dir + "/cluster.json"
        try Data(#"{"leader": "lead", "devices": [\#(devices.joined(separator: ", "))]}"#.utf8)
            .write(to: URL(fileURLWithPath: cluster))
        #expect(try runIOP(["keys", "--cluster", cluster, "--out", dir + "/keys"]).status == 0)
        // ssh HOST COMMAND runs COMMAND here; the board's iop-node keeps its profile and its waits short.
        let node = URL(fileURLWithPath: CLITests.binary).deletingLastPathComponent().appendingPathComponent("iop-node")
        let scripts = [
            "ssh": "#!/bin/sh\nwhile [ \"${1#-}\" != \"$1\" ]; do shift 2; done\nshift\nexec sh -c \"$*\"\n",
            "node": "#!/bin/sh\nif [ \"$1\" = profile ]; then exec \(node.path) \"$@\" --min-ms 5; fi\n"
                + "if [ \"$2\" = --connect ]; then exec \(node.path) \"$@\" --timeout-ms 3000; fi\n"
                + "exec \(node.path) \"$@\"\n",
        ]
        for (name, text) in scripts {
            try Data(text.utf8).write(to: URL(fileURLWithPath: dir + "/bin/" + name))
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: dir + "/bin/" + name)
        }
        let path = ["PATH": dir + "/bin:" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")]
        let port = String(Int.random(in: 20000..<60000))
        let common = [
            "profile", "--cluster", cluster, "--ssh", "--node-command", dir + "/bin/node", "--probe-port", port,
        ]
        let r = try runIOP(common + ["--remote-keys", dir + "/keys", "--stage", dir + "/stage"], environment: path)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("3 board profiles; plans use the calibrated model"), "\(r.stdout)")
        let root = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: cluster)))
        let written = (root as! [String: Any])["devices"] as! [[String: Any]]
        for d in written {
            let profile = try #require(d["profile"] as? [String: Any])
            let kernels = try #require(profile["kernels"] as? [String: Any])
            #expect(kernels["conv_3x3"] != nil && kernels["linear"] != nil, "\(d["name"]!)")
            let link = try #require(profile["link"] as? [String: Any], "\(d["name"]!) has no link")
            #expect(link["curve"] as? Bool == true, "\(d["name"]!): \(link)")
            #expect((link["bandwidth_mbps"] as? Double ?? 0) > 0)
            // Each end's CPU per lone message, from the ping-pongs: measured, so above zero, and far below
            // the 10 ms a message would cost if the process time counted a sleep.
            let perMessage = link["message_cpu_us"] as? Double ?? 0
            #expect(perMessage > 0 && perMessage < 10_000, "\(d["name"]!): \(link)")
        }
        #expect(FileManager.default.fileExists(atPath: dir + "/stage/w2.probe.json"))

        // Keys that are not the cluster's: the probe is refused, and the failing board is named.
        #expect(try runIOP(["keys", "--nodes", "3", "--out", dir + "/strangers"]).status == 0)
        for (from, to) in [("node1", "w1"), ("node2", "w2")] {
            try FileManager.default.moveItem(atPath: dir + "/strangers/" + from, toPath: dir + "/strangers/" + to)
        }
        try FileManager.default.copyItem(atPath: dir + "/keys/lead", toPath: dir + "/strangers/lead")
        let refused = try runIOP(
            common + ["--remote-keys", dir + "/strangers", "--stage", dir + "/stage2", "--threads", "1"],
            environment: path)
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("board 'lead' (127.0.0.1): iop-node probe of w1 failed"), "\(refused.stderr)")
    }
}
