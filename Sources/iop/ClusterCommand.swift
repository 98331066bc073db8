import ArgumentParser
import Foundation
import IOPCore
import IOPModel
import IOPNet
import IOPNode
import IOPPlan
import IOPProgram
import IOPWire

struct ClusterRun: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster",
        abstract:
            "Run a real cluster on this machine: the leader and every worker as separate iop-node processes "
            + "on loopback.",
        discussion:
            "Reports latency percentiles, each board's arena and what each board sends per inference, "
            + "beside the planner's model. With --check, every output is compared with single-board inference."
    )

    @OptionGroup var model: ModelOptions
    @OptionGroup var clusterOptions: ClusterOptions
    @OptionGroup var plannerOptions: PlannerOptions
    @Option(name: .long, help: "Inference requests to time.")
    var requests: Int = 10
    @Option(name: .long, help: "Threads per node.")
    var threads: Int = 1
    @Flag(
        name: .long,
        help: ArgumentHelp(
            "Compare every output with single-board inference; exit non-zero on a mismatch.",
            discussion: "A mismatch is a scaled error max |y - y_ref| / max(1, max |y_ref|) above 1e-4, or above "
                + "\(fp16CheckTolerance) when the plan sends any segment in fp16 (--wire)."))
    var check = false
    @Flag(name: .long, help: "Print one JSON object instead of a report.")
    var json = false
    @Option(
        name: .long,
        help: ArgumentHelp(
            "Start the workers with this command instead of the iop-node beside iop.",
            discussion:
                "For example the boards' build under emulation: "
                + "\"qemu-aarch64-static -L $(cross/sysroot) .build/cross-arm64/iop-node\". "
                + "The leader stays the host build.",
            valueName: "command"))
    var workerCommand: String?
    @Option(
        name: .long,
        help: ArgumentHelp(
            "Stream this sound (a 16 kHz mono 16-bit WAV file) through the cluster instead of sending requests.",
            discussion:
                "The model must listen (the zoo's valve). One line per window: with --json the leader's JSON lines "
                + "({\"t\", \"score\", \"alert\", \"latency_ms\", \"met\"}, then {\"summary\": ...}), "
                + "without it alerts as they happen, a progress line and a summary.",
            valueName: "file.wav"))
    var audio: String?
    @Flag(name: .long, help: "With --audio: pace the file at its sample rate, as a microphone would deliver it.")
    var realtime = false
    @Flag(
        name: .long,
        help: "Plain links between the nodes, for debugging (by default each run makes throw-away CURVE keys).")
    var insecure = false
    @Option(
        name: .long,
        help: ArgumentHelp(
            "Kill board NAME's process right after request K and, with :MS, start it again MS ms later.",
            discussion:
                "The leader moves to the plan compiled without it, and back once it returns (with :MS, requests "
                + "go on past --requests until it is back, for 30 s at most). With --json the "
                + "report adds answered, failed, failover_ms (kill to the first answer without it), rejoin_ms "
                + "(restart to the first answer on the full plan again) and max_gap_ms.",
            valueName: "NAME@K[:MS]"))
    var fail: String?
    @Option(name: .long, help: "Pause between requests, in ms (to watch a loss and a return at a steady rate).")
    var intervalMs: Int = 0

    func validate() throws {
        if let fail { _ = try FailureSpec(parsing: fail) }
        if intervalMs < 0 { throw ValidationError("--interval-ms must be at least 0, got \(intervalMs)") }
        if fail != nil && audio != nil { throw ValidationError("--fail applies to requests, not to an --audio stream") }
        if audio == nil && realtime { throw ValidationError("--realtime paces an --audio file; give --audio too") }
        if audio != nil && check { throw ValidationError("--check compares requests; it does not apply to --audio") }
        guard requests >= 1 else { throw ValidationError("--requests must be at least 1, got \(requests)") }
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1, got \(threads)") }
        guard (clusterOptions.cluster == nil) != (clusterOptions.nodes == nil) else {
            throw ValidationError("give exactly one of --cluster FILE or --nodes N")
        }
    }

    func run() throws {
        let children = runningChildren
        // A fresh directory each run: one named by the pid could be a killed run's, left behind with its keys.
        var template = Array(
            FileManager.default.temporaryDirectory.appendingPathComponent("iop-cluster-XXXXXX").path.utf8CString)
        guard let made = mkdtemp(&template) else {
            throw CommandFailure(description: "cannot make a temporary directory: \(String(cString: strerror(errno)))")
        }
        let dir = String(cString: made)
        runningClusterDirectory = dir
        defer {
            children.stopAll()
            try? FileManager.default.removeItem(atPath: dir)
        }
        // Ctrl-C or a kill stops the nodes first and removes the run's keys and bundles. The signals are
        // unblocked too: a parent may have started us with them blocked, and then they would never arrive.
        for stop in [SIGINT, SIGTERM] {
            signal(stop) { s in
                runningChildren.stopAll()
                if let dir = runningClusterDirectory { try? FileManager.default.removeItem(atPath: dir) }
                _exit(128 + s)
            }
        }
        var stops = sigset_t()
        sigemptyset(&stops)
        sigaddset(&stops, SIGINT); sigaddset(&stops, SIGTERM)
        pthread_sigmask(SIG_UNBLOCK, &stops, nil)
        do {
            try runCluster(children, dir: dir)
        } catch let e as CommandFailure {
            note("error: \(e.description)")
            throw ExitCode(1)
        } catch let e as NetError {
            note("error: \(e.message)")
            throw ExitCode(1)
        }
    }

    func runCluster(_ children: ChildGroup, dir: String) throws {
        try reportingErrors { try runClusterBody(children, dir: dir) }
    }

    /// What the leader does: serve requests, or stream the audio.
    var leaderRole: [String] {
        guard let audio else { return ["--requests", "tcp://127.0.0.1:*"] }
        return ["--audio", audio] + (realtime ? ["--realtime"] : [])
            + (plannerOptions.deadlineMs.map { ["--deadline-ms", "\(Int($0.rounded(.up)))"] } ?? [])
    }

    func runClusterBody(_ children: ChildGroup, dir: String) throws {
        do {
            let net = try model.load()
            if let audio { try checkAudio(audio, for: net) }
            let cluster = try clusterOptions.loadCluster()
            let plan = try plannerOptions.plan(net, on: cluster)
            let bundle = ProgramBundle.compile(plan, network: net)
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let bundlePath = dir + "/bundle.iop"
            try writeAtomically(Data(bundle), to: bundlePath)
            let failure = try fail.map { try FailureSpec(parsing: $0) }
            if let failure {
                try failure.check(cluster, requests: requests)
                let fallbacks = try writeFallbacks(net, cluster: cluster, planner: plannerOptions, into: dir)
                if let why = fallbacks.first(where: { $0["lost"] as? String == failure.board })?["impossible"] {
                    note("no plan without '\(failure.board)': \(why); requests will fail until it returns")
                }
            }

            let node = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
                .deletingLastPathComponent().appendingPathComponent("iop-node").path
            guard FileManager.default.isExecutableFile(atPath: node) else {
                throw CommandFailure(
                    description: "iop-node not found next to iop (\(node)); build both with `swift build -c release`")
            }
            let worker = try workerCommand.map(resolveCommand) ?? (executable: node, arguments: [])
            // Throw-away keys for this run: every node and this command (the admin that stops them) get their own.
            let keyDir = dir + "/keys"
            if !insecure { try makeKeys(for: cluster, clients: [], admins: ["operator"], in: keyDir) }
            func keyArguments(_ name: String) -> [String] {
                insecure ? ["--insecure"] : ["--keys", keyDir + "/" + name]
            }
            if !json {
                note(
                    "starting \(cluster.devices.count) nodes "
                        + "(\(plannerOptions.label) plan, bundle \(formatBytes(bundle.count)))..."
                )
            }
            let leaderName = cluster.devices[cluster.leader].name
            let leader = try Child(
                name: leaderName, executable: node,
                arguments: [
                    "leader", "--bundle", bundlePath, "--listen", "tcp://127.0.0.1:*",
                    "--threads", "\(threads)", "--timeout-ms", workerCommand == nil ? "10000" : "120000",
                ] + leaderRole + keyArguments(leaderName))
            children.add(leader)
            guard let leaderEndpoint = leader.waitLine(prefix: "listening ", seconds: 30) else {
                throw CommandFailure(description: "leader '\(leaderName)' did not start: \(leader.lastError)")
            }
            func spawnWorker(_ d: DeviceSpec) throws -> Child {
                let w = try Child(
                    name: d.name, executable: worker.executable,
                    arguments: worker.arguments + [
                        "worker", "--name", d.name, "--listen", "tcp://127.0.0.1:*", "--leader", leaderEndpoint,
                        "--memory-budget", "\(d.memoryBudgetBytes)", "--threads", "\(threads)",
                    ] + keyArguments(d.name))
                children.add(w)
                return w
            }
            var workers: [String: Child] = [:]
            for (i, d) in cluster.devices.enumerated() where i != cluster.leader {
                workers[d.name] = try spawnWorker(d)
            }
            if let audio {
                return try followStream(leader, audio: audio, plan: plan, children: children)
            }
            guard let requestEndpoint = leader.waitLine(prefix: "ready ", seconds: 300) else {
                let reason = leader.lastError.isEmpty ? "no reason given" : leader.lastError
                throw CommandFailure(description: "leader '\(leaderName)' did not become ready: \(reason)")
            }
            let client = try RequestClient(
                leader: requestEndpoint, keys: insecure ? nil : try Keyring.load(directory: keyDir + "/operator"))
            let reference = check ? try net.makeEngine(threads: threads) : nil
            var rng = SplitMix64(seed: 42)
            var latencies: [Double] = []
            var maxAbs: Float = 0, worst: Float = 0
            var record = failure.map { FailureRecord(spec: $0) }
            // With a restart, requests go on past --requests until the board is back on the full plan (30 s at most).
            var r = -1
            var lastDeadline: UInt64?
            while true {
                r += 1
                if r >= requests {
                    guard let rec = record, rec.spec.restartMs != nil, rec.rejoinMs == nil else { break }
                    if lastDeadline == nil { lastDeadline = nowNanoseconds() + 30_000_000_000 }
                    if nowNanoseconds() > lastDeadline! { break }
                }
                if var rec = record, let restartMs = rec.spec.restartMs, let killed = rec.killedAt,
                    rec.restartedAt == nil, nowNanoseconds() >= killed + UInt64(restartMs) * 1_000_000
                {
                    workers[rec.spec.board] = try spawnWorker(cluster.devices.first { $0.name == rec.spec.board }!)
                    rec.restartedAt = nowNanoseconds()
                    record = rec
                }
                let x = (0..<net.inputCount).map { _ in Float(rng.nextUnit() * 2 - 1) }
                let t0 = nowNanoseconds()
                let y: [Float]
                do {
                    let answer = try client.inferWithPlan(x)
                    y = answer.output
                    record?.answer(at: nowNanoseconds(), plan: answer.plan)
                } catch {
                    guard record != nil else {
                        throw CommandFailure(
                            description: "request \(r + 1) failed: \(error)" + stoppedNodes(children))
                    }
                    record!.failed += 1
                    if !json { note("request \(r + 1) failed: \(error)") }
                    continue
                }
                latencies.append(Double(nowNanoseconds() - t0) / 1e6)
                if let rec = record, r + 1 == rec.spec.afterRequest, let victim = workers[rec.spec.board] {
                    kill(victim.process.processIdentifier, SIGKILL)
                    record!.killedAt = nowNanoseconds()
                }
                if intervalMs > 0 { usleep(useconds_t(intervalMs) * 1000) }
                if let reference {
                    let e = reference.run(x)
                    var scale: Float = 1, diff: Float = 0
                    for k in e.indices { diff = max(diff, abs(y[k] - e[k])); scale = max(scale, abs(e[k])) }
                    maxAbs = max(maxAbs, diff); worst = max(worst, diff / scale)
                }
                if !json && requests >= 5 && r < requests && ((r + 1) % max(1, requests / 20) == 0 || r + 1 == requests)
                {
                    FileHandle.standardError.write(Data("\rrequest \(r + 1)/\(requests)".utf8))
                }
            }
            if !json && requests >= 5 { note("") }
            let stats = try client.stats()
            try client.shutdownLeader()
            _ = leader.wait(seconds: 30)
            for c in children.all { _ = c.wait(seconds: 10) }
            let inferences = max(1, Int(stats.inferences))
            let devices = cluster.devices.enumerated().map { i, d -> [String: Any] in
                let s = stats.boards.first { String(decoding: $0.name, as: UTF8.self) == d.name }
                var device: [String: Any] = [
                    "name": d.name, "arena_bytes": Int(s?.arenaBytes ?? 0),
                    "planned_peak_bytes": plan.peakMemoryBytes[i],
                    "bytes_sent_per_inference": Int(s?.bytesSent ?? 0) / inferences,
                    "messages_per_inference": Int(s?.messagesSent ?? 0) / inferences,
                ]
                // What the board's process used per inference (all but the first), beside the model's figure.
                if let s, stats.cpuInferences > 0 { device["cpu_ms_per_inference"] = stats.cpuMsPerInference(s) }
                if let cpu = plan.cpuMsPerInference { device["modelled_cpu_ms_per_inference"] = cpu[i] }
                return device
            }
            var result: [String: Any] = [
                "model": net.name, "planner": plannerOptions.label, "requests": requests, "threads": threads,
                "p50_ms": percentile(latencies, 0.5), "p90_ms": percentile(latencies, 0.9),
                "p99_ms": percentile(latencies, 0.99),
                "modeled_latency_ms": plan.modeledLatencyMs, "devices": devices,
                "wire": plannerOptions.wire.rawValue, "segment_wire": plan.costs.map(wireName),
            ]
            let tolerance = checkTolerance(plan)
            if check {
                result["max_abs_diff"] = Double(maxAbs); result["max_scaled_error"] = Double(worst)
                result["tolerance"] = tolerance
            }
            if let record { result.merge(record.json) { $1 } }
            if json {
                print(try jsonString(result))
            } else {
                print(
                    String(
                        format:
                            "%@ on %d local nodes, %@ plan: p50 %.2f ms, p90 %.2f ms, p99 %.2f ms "
                            + "over %d requests (modelled: %.2f ms)",
                        net.name, cluster.devices.count, plannerOptions.label, percentile(latencies, 0.5),
                        percentile(latencies, 0.9),
                        percentile(latencies, 0.99), requests, plan.modeledLatencyMs))
                for d in devices {
                    let planned = d["planned_peak_bytes"] as! Int, arena = d["arena_bytes"] as! Int
                    let name = pad(d["name"] as! String, 12)
                    let vsPlan = arena == planned ? "= plan" : "plan: " + formatBytes(planned)
                    let sent = formatBytes(d["bytes_sent_per_inference"] as! Int)
                    let messages = d["messages_per_inference"] as! Int
                    print(
                        "  \(name) arena \(pad(formatBytes(arena), 11)) (\(vsPlan)) "
                            + "sends \(sent) in \(messages) messages per inference"
                    )
                }
                if let record { print(record.summary) }
                if check {
                    print(
                        String(
                            format: "check: max |cluster - single board| = %.3g (scaled %.3g, tolerance %g)", maxAbs,
                            worst, tolerance))
                }
            }
            if check && !(Double(worst) <= tolerance) {
                throw CommandFailure(
                    description: "outputs differ from single-board inference: scaled error \(worst) > \(tolerance)")
            }
        }
    }
}
