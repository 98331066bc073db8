import ArgumentParser
import Foundation
import IOPPlan

struct ProfileCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "profile",
        abstract: "Write measured board profiles into a cluster file, so plans use them instead of nominal GFLOP/s.",
        discussion: """
            A profile is what a board measured about itself: `iop-node profile` (its kernels' speed by kind and \
            size, with its thread count) and, for its link to the leader, `iop-node probe` (latency, bandwidth, \
            CPU per byte at each end). With --from DIR, each board NAME takes DIR/NAME.json (iop-node profile's \
            output, run on that board under its own CPU share) and, when present, DIR/NAME.probe.json (iop-node \
            probe --connect's output, run on the leader against NAME's `iop-node probe --serve`). With --ssh, \
            the boards of a deployed cluster (`iop deploy`) measure themselves: over ssh each board runs \
            `iop-node profile`, then the leader probes each worker's link with the keys deploy installed (CURVE, \
            as the cluster runs), and the outputs are kept in --stage. Without --from or --ssh, \
            `iop-node profile` runs here, once, and its profile goes to the boards named by --board \
            (every board when none is named): for boards that are this machine, or emulated on it.
            The profiles land in each board's `profile` section of the cluster file (written in place unless \
            --out says where). `iop plan`, `simulate` and `compile` then say they use the calibrated model \
            (docs/planner.md); a cluster file where some board has no profile keeps the nominal model.
            With --calibrate DIR --stats FILE, the profiles already there are calibrated by a trial run: DIR is \
            what `iop compile` wrote for the plan that ran (its manifest.json models each board's CPU per \
            inference), FILE the leader's counters after a few requests on it (`iop request --stats --json`: \
            each board's CPU per inference as the board counted it). Each board's `cpu_scale` becomes the \
            plan's times measured over modelled, and every CPU figure of the board is multiplied by it.
            """)

    @Option(name: .long, help: "The cluster file to add profiles to.")
    var cluster: String
    @Option(name: .long, help: "Directory of NAME.json profiles and NAME.probe.json link probes.")
    var from: String?
    @Option(name: .long, help: "Without --from: a board to give this machine's profile (repeatable; default all).")
    var board: [String] = []
    @Option(name: .long, help: "Without --from: threads for iop-node profile (default: each board's `threads`).")
    var threads: Int?
    @Option(name: .long, help: "Write the cluster file here instead of in place.")
    var out: String?
    @Flag(name: .long, help: "Measure on the boards themselves over ssh, each at its cluster-file endpoint's host.")
    var ssh = false
    @Option(name: .long, help: "With --ssh: ssh user on the boards (default: ssh's own choice).")
    var user: String?
    @Option(name: .long, help: "With --ssh: the command that runs iop-node on a board (it reads the keys as root).")
    var nodeCommand = "sudo -n iop-node"
    @Option(name: .long, help: "With --ssh: the directory holding each board's keys, NAME/secret and NAME/peers.")
    var remoteKeys = "/etc/iop/keys"
    @Flag(name: .long, help: "With --ssh: probe plain links, for a cluster deployed with --insecure.")
    var insecure = false
    @Option(name: .long, help: "With --ssh: the port a worker serves its probe on, at its endpoint's host.")
    var probePort = 5597
    @Option(name: .long, help: "With --ssh: where the boards' raw profiles and probes are kept.")
    var stage = "out/profile"
    @Option(name: .long, help: "Calibrate the profiles from a trial run of the plan `iop compile` wrote to DIR.")
    var calibrate: String?
    @Option(name: .long, help: "With --calibrate: the leader's counters after the trial (iop request --stats --json).")
    var stats: String?

    func validate() throws {
        if (calibrate == nil) != (stats == nil) {
            throw ValidationError("--calibrate DIR and --stats FILE go together: the plan that ran and its counters")
        }
        if calibrate != nil && (ssh || from != nil || !board.isEmpty) {
            throw ValidationError(
                "--calibrate scales the profiles already in the cluster file: no --ssh, --from or --board")
        }
        if ssh && (from != nil || !board.isEmpty) {
            throw ValidationError("--ssh measures every board itself: give it without --from and --board")
        }
        guard (1...65535).contains(probePort) else {
            throw ValidationError("--probe-port must be 1...65535, got \(probePort)")
        }
    }

    func run() throws {
        try reportingErrors {
            guard let data = FileManager.default.contents(atPath: cluster) else {
                throw ClusterError(path: cluster, message: "cannot read file")
            }
            let parsed: Cluster
            do { parsed = try Cluster.parse(data) } catch let e as ClusterError {
                throw ClusterError(path: cluster, message: e.message)
            }
            guard var root = try JSONSerialization.jsonObject(with: data) as? [String: Any],
                var devices = root["devices"] as? [[String: Any]]
            else { throw ClusterError(path: cluster, message: "not a cluster file") }
            if let calibrate, let stats {
                root["devices"] = try calibrated(devices, parsed, trial: calibrate, stats: stats)
                let text = try JSONSerialization.data(withJSONObject: root, options: [.prettyPrinted, .sortedKeys])
                _ = try Cluster.parse(text)
                try writeAtomically(text + Data("\n".utf8), to: out ?? cluster)
                print("wrote \(out ?? cluster): CPU scales from the trial; plans use them")
                return
            }
            let names = parsed.devices.map(\.name)
            let profiles =
                try ssh
                ? measuredOnBoards(parsed)
                : from.map { try gathered(from: $0, cluster: parsed) } ?? measuredHere(parsed)
            for (i, name) in names.enumerated() {
                guard let profile = profiles[i] else { continue }
                devices[i]["profile"] = profile
                note("\(name): \(summary(profile))")
            }
            root["devices"] = devices
            let text = try JSONSerialization.data(withJSONObject: root, options: [.prettyPrinted, .sortedKeys])
            let result = try Cluster.parse(text)
            try writeAtomically(text + Data("\n".utf8), to: out ?? cluster)
            let missing = result.devices.filter { $0.profile == nil }.map(\.name)
            print(
                "wrote \(out ?? cluster): \(profiles.compactMap { $0 }.count) board profiles; "
                    + (missing.isEmpty
                        ? "plans use the calibrated model"
                        : "no profile for \(missing.joined(separator: ", ")), so plans keep the nominal model"))
        }
    }

    /// DIR/NAME.json and DIR/NAME.probe.json, checked as a cluster file will check them.
    func gathered(from dir: String, cluster c: Cluster) throws -> [[String: Any]?] {
        var probes: [Int: ProbeReport] = [:]
        var sections: [[String: Any]?] = []
        for (i, d) in c.devices.enumerated() {
            let path = (dir as NSString).appendingPathComponent("\(d.name).json")
            guard let data = FileManager.default.contents(atPath: path) else {
                throw ClusterError(
                    path: path, message: "cannot read board '\(d.name)''s profile (iop-node profile > \(path))")
            }
            guard let section = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw ClusterError(path: path, message: "not a JSON object (expected iop-node profile's output)")
            }
            sections.append(section)
            let probePath = (dir as NSString).appendingPathComponent("\(d.name).probe.json")
            if let probe = FileManager.default.contents(atPath: probePath) {
                guard i != c.leader else {
                    throw ClusterError(path: probePath, message: "the leader probes the others, not itself")
                }
                probes[i] = try ProbeReport.parse(probe, path: probePath)
            }
        }
        let links = ProbeReport.links(probes, boards: c.devices.count, leader: c.leader)
        return try sections.enumerated().map { i, section in
            var s = section!
            if let link = links[i] { s["link"] = link.jsonObject }
            _ = try BoardProfile.parse(s, board: "board '\(c.devices[i].name)'")
            return s
        }
    }

    /// `iop-node profile` run here, once per thread count the named boards use.
    func measuredHere(_ c: Cluster) throws -> [[String: Any]?] {
        for name in board where !c.devices.contains(where: { $0.name == name }) {
            let names = c.devices.map(\.name).joined(separator: ", ")
            throw ClusterError(path: cluster, message: "--board '\(name)' is not a board here (boards: \(names))")
        }
        let node = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
            .deletingLastPathComponent().appendingPathComponent("iop-node").path
        guard FileManager.default.isExecutableFile(atPath: node) else {
            throw CommandFailure(description: "cannot find iop-node beside iop (\(node)): build it, or use --from DIR")
        }
        var byThreads: [Int: [String: Any]] = [:]
        return try c.devices.map { d in
            guard board.isEmpty || board.contains(d.name) else { return nil }
            let n = threads ?? d.threads
            if let known = byThreads[n] { return known }
            note("profiling this machine's kernels with \(n) thread(s) for \(d.name)...")
            let process = Process()
            process.executableURL = URL(fileURLWithPath: node)
            process.arguments = ["profile", "--threads", String(n)]
            let pipe = Pipe()
            process.standardOutput = pipe
            try process.run()
            let output = pipe.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            guard process.terminationStatus == 0,
                let section = try? JSONSerialization.jsonObject(with: output) as? [String: Any]
            else { throw CommandFailure(description: "iop-node profile failed (exit \(process.terminationStatus))") }
            byThreads[n] = section
            return section
        }
    }

    /// Each profiled board's `cpu_scale` from a trial run: DIR/manifest.json and the stats file.
    func calibrated(_ devices: [[String: Any]], _ c: Cluster, trial: String, stats: String) throws -> [[String: Any]] {
        func json(_ path: String, _ what: String) throws -> Any {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw ClusterError(path: path, message: "cannot read \(what)")
            }
            do { return try JSONSerialization.jsonObject(with: data) } catch {
                throw ClusterError(path: path, message: "not JSON (expected \(what))")
            }
        }
        let manifestPath = (trial as NSString).appendingPathComponent("manifest.json")
        // Its errors say which of the two files is wanting.
        let calibration = try CPUCalibration.from(
            manifest: try json(manifestPath, "iop compile's manifest"),
            stats: try json(stats, "iop request --stats --json's output"))
        var devices = devices
        for b in calibration.boards {
            guard let i = c.devices.firstIndex(where: { $0.name == b.name }) else {
                throw ClusterError(path: cluster, message: "the trial's board '\(b.name)' is not in this cluster file")
            }
            guard var profile = devices[i]["profile"] as? [String: Any] else {
                throw ClusterError(path: cluster, message: "board '\(b.name)' has no profile to calibrate")
            }
            profile["cpu_scale"] = b.scale
            devices[i]["profile"] = profile
            note(
                String(
                    format: "%@: CPU %.2f ms per inference measured, %.2f modelled: cpu_scale %.3f -> %.3f", b.name,
                    b.measuredMs, b.modelledMs, b.scaleBefore, b.scale))
        }
        let left = c.devices.map(\.name).filter { n in !calibration.boards.contains { $0.name == n } }
        if !left.isEmpty {
            note("no CPU from the trial for \(left.joined(separator: ", ")) (no work in its plan): scales kept")
        }
        note("over \(calibration.inferences) inferences of \(trial)")
        return devices
    }

    func summary(_ section: [String: Any]) -> String {
        guard let p = try? BoardProfile.parse(section, board: "") else { return "profile" }
        var parts: [String] = []
        if let conv = p.kernels[.conv3x3] { parts.append(String(format: "conv_3x3 %.2f GFLOP/s", conv.gigaPerSecond)) }
        if let wino = p.kernels[.convWinograd] {
            parts.append(String(format: "conv_winograd %.2f GFLOP/s", wino.gigaPerSecond))
        }
        if let fc = p.kernels[.linear] { parts.append(String(format: "linear %.2f GB/s", fc.gigaPerSecond)) }
        if let l = p.link {
            parts.append(
                String(
                    format: "link %.2f ms, %.1f Mbit/s, %.2f/%.2f ns per byte sent/received, %.0f us per message%@",
                    l.latencyMs, l.bandwidthMbps, l.sendCpuNsPerByte, l.receiveCpuNsPerByte, l.messageCpuUs,
                    l.curve ? " (CURVE)" : ""))
        }
        return parts.joined(separator: ", ")
    }
}
