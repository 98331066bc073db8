import ArgumentParser
import Foundation
import IOPCore
import IOPModel
import IOPNet
import IOPNode
import IOPPlan
import IOPWire

struct CommandFailure: Error, CustomStringConvertible { var description: String }

extension ClusterOptions {
    func loadCluster() throws -> Cluster {
        if let cluster { return try Cluster.load(path: cluster) }
        guard let nodes, nodes >= 1 else { throw ValidationError("give --cluster FILE or --nodes N (N >= 1)") }
        // Identical local boards on loopback: generous budgets, a fast link.
        return Cluster(devices: (0..<nodes).map {
            DeviceSpec(name: "node\($0)", endpoint: "tcp://127.0.0.1:0", gflops: 6, memoryBudgetBytes: 2 << 30,
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

struct Compile: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Plan a model for a cluster and write the bundle the leader runs: every board's program and weight shards.")
    @OptionGroup var model: ModelOptions
    @OptionGroup var clusterOptions: ClusterOptions
    @Option(name: .long, help: "single, oc, coedge, iop or optimal.")
    var planner: PlannerKind = .optimal
    @Option(name: .long, help: "Directory to write bundle.iop and manifest.json into (created if missing).")
    var out: String

    func run() throws {
        try reportingErrors {
            let net = try model.load()
            let cluster = try clusterOptions.loadCluster()
            let plan = try Planner(network: net, cluster: cluster).plan(planner)
            let bytes = Bundle.compile(plan, network: net)
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            try writeAtomically(Data(bytes), to: (out as NSString).appendingPathComponent("bundle.iop"))
            let manifest: [String: Any] = [
                "format": "iop-bundle", "version": Int(Bundle.version), "model": net.name, "planner": planner.rawValue,
                "input_shape": net.inputShape, "output_shape": net.outputShape, "bundle_bytes": bytes.count,
                "modeled_latency_ms": plan.modeledLatencyMs, "leader": cluster.devices[cluster.leader].name,
                "boards": cluster.devices.enumerated().map { i, d in
                    ["name": d.name, "endpoint": d.endpoint, "budget_bytes": d.memoryBudgetBytes, "planned_peak_bytes": plan.peakMemoryBytes[i]] as [String: Any]
                },
            ]
            try writeAtomically(Data(try jsonString(manifest).utf8), to: (out as NSString).appendingPathComponent("manifest.json"))
            print("wrote \(out)/bundle.iop (\(formatBytes(bytes.count))) and manifest.json: \(net.name), \(planner.rawValue) plan, \(cluster.devices.count) boards")
        }
    }
}

func writeAtomically(_ data: Data, to path: String) throws {
    do { try data.write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
        throw ModelError.io(path: path, reason: "cannot write: \(error.localizedDescription)")
    }
}

/// Sends inference requests to a leader and waits for the answers.
final class RequestClient {
    let context: Context
    let push: Socket, pull: Socket
    let replyEndpoint: String
    var nextID: UInt64 = 1

    init(leader: String, reply: String = "tcp://127.0.0.1:*", timeoutMs: Int32 = 60_000) throws {
        context = try Context()
        pull = try Socket(context, .pull)
        try pull.setTimeouts(sendMs: timeoutMs, receiveMs: timeoutMs)
        try pull.bind(reply)
        replyEndpoint = try pull.boundEndpoint()
        push = try Socket(context, .push)
        try push.setTimeouts(sendMs: timeoutMs, receiveMs: timeoutMs)
        try push.connect(leader)
    }

    func infer(_ input: [Float]) throws -> [Float] {
        let id = nextID; nextID += 1
        var payload = [UInt8]()
        let endpoint = Array(replyEndpoint.utf8)
        payload.append(UInt8(endpoint.count & 0xff)); payload.append(UInt8(endpoint.count >> 8))
        payload += endpoint
        input.withUnsafeBytes { payload += $0 }
        var frame = [UInt8](repeating: 0, count: MessageHeader.size + payload.count)
        _ = try payload.withUnsafeBytes { p in try frame.withUnsafeMutableBytes { try Wire.encode(kind: .request, requestID: id, payload: p, into: $0) } }
        try frame.withUnsafeBytes { try push.send($0) }
        while true {
            let bytes: [UInt8]
            do { bytes = try pull.receiveMessage() } catch {
                throw CommandFailure(description: error.isTimeout ? "no answer from the leader within the timeout" : error.message)
            }
            let header = try bytes.withUnsafeBytes { try Wire.decode($0, maxPayload: bytes.count) }
            guard header.requestID == id else { continue }
            let payload = bytes[MessageHeader.size...]
            if header.kind == .error { throw CommandFailure(description: "the leader failed: " + String(decoding: payload, as: UTF8.self)) }
            guard header.kind == .result else { throw CommandFailure(description: "unexpected answer kind \(header.kind.rawValue)") }
            return payload.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        }
    }

    func shutdownLeader() throws {
        var frame = [UInt8](repeating: 0, count: MessageHeader.size)
        _ = try [UInt8]().withUnsafeBytes { p in try frame.withUnsafeMutableBytes { try Wire.encode(kind: .shutdown, payload: p, into: $0) } }
        try frame.withUnsafeBytes { try push.send($0) }
    }
}

struct Request: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Send inference requests to a running leader and print or save the result.",
        discussion: "With --repeat N the same input is sent N times, one after another, and the latency percentiles are reported: a deployed cluster's latency, measured from where the requests come from.")
    @Option(name: .long, help: "The leader's request endpoint (printed by `iop-node leader` as `ready ...`).")
    var leader: String
    @Option(name: .long, help: "Input tensor (.npy, float32).")
    var input: String
    @Option(name: .long, help: "Write the (last) result here (.npy).")
    var output: String?
    @Option(name: .long, help: "Where the leader should send the answer (default: a free loopback port).")
    var reply: String = "tcp://127.0.0.1:*"
    @Option(name: .long, help: "Send the request this many times and report latency percentiles.")
    var `repeat`: Int = 1
    @Flag(name: .long, help: "Print one JSON object: requests, p50_ms, p90_ms, p99_ms, outputs.")
    var json = false

    func validate() throws {
        if `repeat` < 1 { throw ValidationError("--repeat must be at least 1, got \(`repeat`)") }
    }

    func run() throws {
        try reportingErrors {
            let x = try NPY.read(path: input)
            do {
                let client = try RequestClient(leader: leader, reply: reply)
                var latencies: [Double] = []
                var y: [Float] = []
                for r in 0..<`repeat` {
                    let t0 = nowNanoseconds()
                    do { y = try client.infer(x.values) } catch { throw CommandFailure(description: "request \(r + 1): \(error)") }
                    latencies.append(Double(nowNanoseconds() - t0) / 1e6)
                }
                if json {
                    print(try jsonString(["requests": `repeat`, "p50_ms": percentile(latencies, 0.5), "p90_ms": percentile(latencies, 0.9),
                                          "p99_ms": percentile(latencies, 0.99), "outputs": y.count] as [String: Any]))
                } else if `repeat` == 1 {
                    print(String(format: "%d outputs in %.2f ms; largest at index %d", y.count, latencies[0], y.indices.max { y[$0] < y[$1] } ?? -1))
                } else {
                    print(String(format: "%d requests: p50 %.2f ms, p90 %.2f ms, p99 %.2f ms; %d outputs, largest at index %d", `repeat`,
                                 percentile(latencies, 0.5), percentile(latencies, 0.9), percentile(latencies, 0.99), y.count,
                                 y.indices.max { y[$0] < y[$1] } ?? -1))
                }
                if let output { try NPY.write(NPY.Array(shape: [1, y.count], values: y), path: output) }
            } catch let e as NetError { throw CommandFailure(description: e.message) }
        }
    }
}

/// A child process whose stdout is read line by line in the background.
final class Child: @unchecked Sendable {
    let name: String
    let process = Process()
    private let lock = NSLock()
    private var lines: [String] = []
    private var errorText = ""
    private let newLine = DispatchSemaphore(value: 0)
    /// Signalled once stderr has been read to its end (the process closed it).
    private let stderrDrained = DispatchSemaphore(value: 0)

    init(name: String, executable: String, arguments: [String]) throws {
        self.name = name
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out; process.standardError = err
        try process.run()
        Thread.detachNewThread { [self] in
            var pending = ""
            while true {
                let data = out.fileHandleForReading.availableData
                if data.isEmpty { break }
                pending += String(decoding: data, as: UTF8.self)
                while let r = pending.range(of: "\n") {
                    let line = String(pending[..<r.lowerBound]); pending = String(pending[r.upperBound...])
                    lock.lock(); lines.append(line); lock.unlock(); newLine.signal()
                }
            }
            newLine.signal()
        }
        Thread.detachNewThread { [self] in
            let data = err.fileHandleForReading.readDataToEndOfFile()
            lock.lock(); errorText = String(decoding: data, as: UTF8.self); lock.unlock()
            stderrDrained.signal()
        }
    }

    /// The text after `prefix` on the first stdout line that starts with it.
    func waitLine(prefix: String, seconds: Double) -> String? {
        let deadline = Date().addingTimeInterval(seconds)
        while true {
            lock.lock(); let hit = lines.first { $0.hasPrefix(prefix) }; lock.unlock()
            if let hit { return String(hit.dropFirst(prefix.count)) }
            if !process.isRunning && Date() > deadline.addingTimeInterval(-seconds + 0.5) { 
                lock.lock(); let again = lines.first { $0.hasPrefix(prefix) }; lock.unlock()
                return again.map { String($0.dropFirst(prefix.count)) }
            }
            if Date() > deadline { return nil }
            _ = newLine.wait(timeout: .now() + 0.2)
        }
    }

    var outputLines: [String] { lock.lock(); defer { lock.unlock() }; return lines }
    /// The last error line the node logged (without its priority prefix); waits
    /// briefly for the node to finish writing it.
    var lastError: String {
        if stderrDrained.wait(timeout: .now() + 5) == .success { stderrDrained.signal() }
        lock.lock(); defer { lock.unlock() }
        let l = errorText.split(separator: "\n").last { $0.hasPrefix("<3>") || $0.hasPrefix("<4>") } ?? Substring(errorText.split(separator: "\n").last ?? "")
        return String(l.drop { $0 != ">" }.dropFirst())
    }

    func wait(seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        return !process.isRunning
    }

    func stop() {
        if process.isRunning { process.terminate() }
        if !wait(seconds: 2) { kill(process.processIdentifier, SIGKILL) }
    }
}

/// The node processes of one run, stopped on every way out (success, failure, Ctrl-C).
final class ChildGroup: @unchecked Sendable {
    private let lock = NSLock()
    private var children: [Child] = []
    func add(_ c: Child) { lock.lock(); children.append(c); lock.unlock() }
    var all: [Child] { lock.lock(); defer { lock.unlock() }; return children }
    func stopAll() { for c in all { c.stop() } }
}

/// The group the Ctrl-C handler stops.
nonisolated(unsafe) var runningChildren = ChildGroup()

struct ClusterRun: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster",
        abstract: "Run a real cluster on this machine: the leader and every worker as separate iop-node processes on loopback.",
        discussion: "Reports latency percentiles, each board's arena and what each board sends per inference, beside the planner's model. With --check, every output is compared with single-board inference.")

    @OptionGroup var model: ModelOptions
    @OptionGroup var clusterOptions: ClusterOptions
    @Option(name: .long, help: "single, oc, coedge, iop or optimal.")
    var planner: PlannerKind = .optimal
    @Option(name: .long, help: "Inference requests to time.")
    var requests: Int = 10
    @Option(name: .long, help: "Threads per node.")
    var threads: Int = 1
    @Flag(name: .long, help: "Compare every output with single-board inference; exit non-zero on a mismatch (scaled error > 1e-4).")
    var check = false
    @Flag(name: .long, help: "Print one JSON object instead of a report.")
    var json = false
    @Option(name: .long, help: ArgumentHelp(
        "Start the workers with this command instead of the iop-node beside iop.",
        discussion: "For example the boards' build under emulation: \"qemu-aarch64-static -L $(cross/sysroot) .build/cross-arm64/iop-node\". The leader stays the host build.",
        valueName: "command"))
    var workerCommand: String?

    func validate() throws {
        guard requests >= 1 else { throw ValidationError("--requests must be at least 1, got \(requests)") }
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1, got \(threads)") }
        guard (clusterOptions.cluster == nil) != (clusterOptions.nodes == nil) else { throw ValidationError("give exactly one of --cluster FILE or --nodes N") }
    }

    func run() throws {
        let children = runningChildren
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("iop-cluster-\(getpid())").path
        defer {
            children.stopAll()
            try? FileManager.default.removeItem(atPath: dir)
        }
        // Ctrl-C or a kill stops the nodes first. The signals are unblocked too: a
        // parent may have started us with them blocked, and then they would never arrive.
        for stop in [SIGINT, SIGTERM] {
            signal(stop) { s in
                runningChildren.stopAll()
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

    func runClusterBody(_ children: ChildGroup, dir: String) throws {
        do {
            let net = try model.load()
            let cluster = try clusterOptions.loadCluster()
            let plan = try Planner(network: net, cluster: cluster).plan(planner)
            let bundle = Bundle.compile(plan, network: net)
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let bundlePath = dir + "/bundle.iop"
            try writeAtomically(Data(bundle), to: bundlePath)

            let node = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent().appendingPathComponent("iop-node").path
            guard FileManager.default.isExecutableFile(atPath: node) else {
                throw CommandFailure(description: "iop-node not found next to iop (\(node)); build both with `swift build -c release`")
            }
            let worker = try workerCommand.map(resolveCommand) ?? (executable: node, arguments: [])
            if !json { note("starting \(cluster.devices.count) nodes (\(planner.rawValue) plan, bundle \(formatBytes(bundle.count)))...") }
            let leaderName = cluster.devices[cluster.leader].name
            let leader = try Child(name: leaderName, executable: node, arguments: [
                "leader", "--bundle", bundlePath, "--listen", "tcp://127.0.0.1:*", "--requests", "tcp://127.0.0.1:*",
                "--threads", "\(threads)", "--timeout-ms", workerCommand == nil ? "10000" : "120000"])
            children.add(leader)
            guard let leaderEndpoint = leader.waitLine(prefix: "listening ", seconds: 30) else {
                throw CommandFailure(description: "leader '\(leaderName)' did not start: \(leader.lastError)")
            }
            for (i, d) in cluster.devices.enumerated() where i != cluster.leader {
                let w = try Child(name: d.name, executable: worker.executable, arguments: worker.arguments + [
                    "worker", "--name", d.name, "--listen", "tcp://127.0.0.1:*", "--leader", leaderEndpoint,
                    "--memory-budget", "\(d.memoryBudgetBytes)", "--threads", "\(threads)"])
                children.add(w)
            }
            guard let requestEndpoint = leader.waitLine(prefix: "ready ", seconds: 300) else {
                throw CommandFailure(description: "leader '\(leaderName)' did not become ready: \(leader.lastError.isEmpty ? "no reason given" : leader.lastError)")
            }
            let client = try RequestClient(leader: requestEndpoint)
            let reference = check ? try net.makeEngine(threads: threads) : nil
            var rng = SplitMix64(seed: 42)
            var latencies: [Double] = []
            var maxAbs: Float = 0, worst: Float = 0
            for r in 0..<requests {
                let x = (0..<net.inputCount).map { _ in Float(rng.nextUnit() * 2 - 1) }
                let t0 = nowNanoseconds()
                let y: [Float]
                do { y = try client.infer(x) } catch {
                    throw CommandFailure(description: "request \(r + 1) failed: \(error)" + stoppedNodes(children))
                }
                latencies.append(Double(nowNanoseconds() - t0) / 1e6)
                if let reference {
                    let e = reference.run(x)
                    var scale: Float = 1, diff: Float = 0
                    for k in e.indices { diff = max(diff, abs(y[k] - e[k])); scale = max(scale, abs(e[k])) }
                    maxAbs = max(maxAbs, diff); worst = max(worst, diff / scale)
                }
                if !json && requests >= 5 && ((r + 1) % max(1, requests / 20) == 0 || r + 1 == requests) {
                    FileHandle.standardError.write(Data("\rrequest \(r + 1)/\(requests)".utf8))
                }
            }
            if !json && requests >= 5 { note("") }
            try client.shutdownLeader()
            _ = leader.wait(seconds: 30)
            for c in children.all { _ = c.wait(seconds: 10) }
            // stats NAME arena_bytes=A bytes_sent=B messages=M inferences=I
            var stats: [String: [String: Int]] = [:]
            for line in leader.outputLines where line.hasPrefix("stats ") {
                let parts = line.split(separator: " ")
                var fields: [String: Int] = [:]
                for p in parts.dropFirst(2) { let kv = p.split(separator: "="); if kv.count == 2 { fields[String(kv[0])] = Int(kv[1]) } }
                stats[String(parts[1])] = fields
            }
            let devices = cluster.devices.enumerated().map { i, d -> [String: Any] in
                let s = stats[d.name] ?? [:]
                let n = max(1, s["inferences"] ?? requests)
                return ["name": d.name, "arena_bytes": s["arena_bytes"] ?? 0, "planned_peak_bytes": plan.peakMemoryBytes[i],
                        "bytes_sent_per_inference": (s["bytes_sent"] ?? 0) / n, "messages_per_inference": (s["messages"] ?? 0) / n]
            }
            var result: [String: Any] = [
                "model": net.name, "planner": planner.rawValue, "requests": requests, "threads": threads,
                "p50_ms": percentile(latencies, 0.5), "p90_ms": percentile(latencies, 0.9), "p99_ms": percentile(latencies, 0.99),
                "modeled_latency_ms": plan.modeledLatencyMs, "devices": devices,
            ]
            if check { result["max_abs_diff"] = Double(maxAbs); result["max_scaled_error"] = Double(worst) }
            if json {
                print(try jsonString(result))
            } else {
                print(String(format: "%@ on %d local nodes, %@ plan: p50 %.2f ms, p90 %.2f ms, p99 %.2f ms over %d requests (modelled: %.2f ms)",
                             net.name, cluster.devices.count, planner.rawValue, percentile(latencies, 0.5), percentile(latencies, 0.9),
                             percentile(latencies, 0.99), requests, plan.modeledLatencyMs))
                for d in devices {
                    let planned = d["planned_peak_bytes"] as! Int, arena = d["arena_bytes"] as! Int
                    print("  \(pad(d["name"] as! String, 12)) arena \(pad(formatBytes(arena), 11)) (\(arena == planned ? "= plan" : "plan: " + formatBytes(planned))) sends \(formatBytes(d["bytes_sent_per_inference"] as! Int)) in \(d["messages_per_inference"] as! Int) messages per inference")
                }
                if check { print(String(format: "check: max |cluster - single board| = %.3g (scaled %.3g, tolerance 1e-4)", maxAbs, worst)) }
            }
            if check && worst > 1e-4 {
                throw CommandFailure(description: "outputs differ from single-board inference: scaled error \(worst) > 1e-4")
            }
        }
    }
}
/// A command line split on spaces, its program found on PATH as a shell would.
func resolveCommand(_ command: String) throws -> (executable: String, arguments: [String]) {
    let words = command.split(separator: " ").map(String.init)
    guard let program = words.first else { throw CommandFailure(description: "--worker-command is empty") }
    let candidates = program.contains("/") ? [program]
        : (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":").map { "\($0)/\(program)" }
    guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
        throw CommandFailure(description: "--worker-command: '\(program)' is not an executable file or a program on PATH")
    }
    return (found, Array(words.dropFirst()))
}

/// "; stopped nodes: 'a', 'b'" for the nodes that are no longer running, or "".
func stoppedNodes(_ children: ChildGroup) -> String {
    var names: [String] = []
    for c in children.all where !c.process.isRunning { names.append("'" + c.name + "'") }
    return names.isEmpty ? "" : "; stopped nodes: " + names.joined(separator: ", ")
}
