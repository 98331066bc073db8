import Foundation
import IOPModel
import TestSupport
import Testing

/// `iop cluster`: the leader and the workers as separate iop-node processes on loopback.
@Suite(.timeLimit(.minutes(10))) struct ProcessClusterTests {
    struct Case: Sendable, CustomStringConvertible {
        let model: String, size: String?, planner: String
        var description: String { "\(model) \(planner)" }
    }
    /// The chains, and the graphs (residual blocks, inverted residuals, fire modules) at a small input; `ftp`
    /// on the graphs (on the chains it runs in-process, `ExecutionTests`: fewer processes at once here).
    static let cases = [
        ("lenet5", nil as String?, false), ("alexnet", "67", false), ("vgg11", "32", false), ("resnet18", "32", true),
        ("mobilenet_v2", "32", true), ("squeezenet1_1", "32", true),
    ].flatMap { m, s, graph in
        (["single", "oc", "coedge", "iop", "optimal"] + (graph ? ["ftp"] : [])).map {
            Case(model: m, size: s, planner: $0)
        }
    }

    @Test(arguments: cases)
    func clusterOutputsEqualSingleBoard(_ c: Case) throws {
        let obj = try clusterAnswersAsOneBoard(
            ["--model", c.model] + (c.size.map { ["--input-size", $0] } ?? [])
                + [
                    "--cluster", PlanCLITests.clusters + "/mixed-pi4-pi3.json", "--planner", c.planner, "--requests",
                    "3", "--check", "--json",
                ])
        #expect(obj["planner"] as? String == c.planner && obj["requests"] as? Int == 3)
        #expect(
            (obj["p50_ms"] as? Double ?? 0) > 0 && (obj["p99_ms"] as? Double ?? 0) >= (obj["p50_ms"] as? Double ?? 0))
        let devices = try #require(obj["devices"] as? [[String: Any]])
        #expect(devices.count == 4)
        // The leader always holds an arena; each board reports its own, and it is the planner's figure for it.
        #expect((devices[0]["arena_bytes"] as? Int ?? 0) > 0)
        if c.planner == "oc" { for d in devices { #expect((d["messages_per_inference"] as? Int ?? 0) > 0, "\(d)") } }
    }

    /// A decoder graph (conv down, ConvTranspose up, concatenated with the skip) and a chain whose ConvTranspose
    /// `oc` splits by output channels and `iop` by input channels (the end of an OC->IC pair), as iop-node
    /// processes (on four equal local boards, where `iop` pairs the conv with the ConvTranspose): the answers
    /// equal one board's and every board's arena is the planner's figure.
    @Test(arguments: [
        ("convtranspose_decoder", "single"), ("convtranspose_decoder", "iop"), ("convtranspose_chain", "oc"),
        ("convtranspose_chain", "iop"),
    ])
    func convTransposeClusterEqualsSingleBoard(model: String, planner: String) throws {
        let equalBoards = model == "convtranspose_chain" && planner == "iop"
        let boards = equalBoards ? ["--nodes", "4"] : ["--cluster", PlanCLITests.clusters + "/mixed-pi4-pi3.json"]
        let common = ["--model", Fixtures.path(model + ".onnx")] + boards + ["--planner", planner, "--json"]
        if equalBoards {
            let p = try runIOP(["plan"] + common)
            let plan = try #require(try JSONSerialization.jsonObject(with: Data(p.stdout.utf8)) as? [String: Any])
            let dims = (plan["segments"] as? [[String: Any]] ?? []).flatMap { seg in
                (seg["partitions"] as? [[String: Any]] ?? []).map { "\($0["layer"] ?? "")/\($0["dim"] ?? "")" }
            }
            #expect(dims.contains("convtranspose_7/ic"), "\(dims)")
        }
        try clusterAnswersAsOneBoard(common + ["--requests", "3", "--check"])
    }

    /// `ftp` picks 2 x 2 grids of fused tiles (MobileNetV2's first convs on the mixed boards, unequal tiles;
    /// VGG-11 on four equal local boards): real iop-node processes answer as one board, and every board's
    /// arena is the planner's figure.
    @Test(arguments: [
        ("mobilenet_v2", ["--cluster", PlanCLITests.clusters + "/mixed-pi4-pi3.json"]), ("vgg11", ["--nodes", "4"]),
    ])
    func fusedGridsAcrossProcessesEqualOneBoard(model: String, boards: [String]) throws {
        let common = ["--model", model, "--input-size", "32"] + boards + ["--planner", "ftp", "--json"]
        let p = try runIOP(["plan"] + common)
        #expect(p.status == 0, "\(p.stderr)")
        let plan = try #require(try JSONSerialization.jsonObject(with: Data(p.stdout.utf8)) as? [String: Any])
        // A 2 x 2 grid: every board a tile of fewer rows than the whole and of some columns.
        let grids = (plan["segments"] as? [[String: Any]] ?? []).compactMap { seg -> Bool? in
            guard let part = (seg["partitions"] as? [[String: Any]])?.first,
                let columns = part["column_extents"] as? [Int], let rows = part["extents"] as? [Int],
                let full = part["full_extent"] as? Int
            else { return nil }
            return rows.count == 4 && rows.allSatisfy { $0 > 0 && $0 < full } && columns.allSatisfy { $0 > 0 }
        }
        #expect(grids.contains(true), "\(p.stdout)")
        try clusterAnswersAsOneBoard(common + ["--requests", "3", "--check"])
    }

    /// `--wire fp16`: the plan shows it per segment, the nodes send halves (half the bytes), and `--check`
    /// holds the answers to the fp16 tolerance, which they meet without equalling fp32.
    @Test func anFP16ClusterIsCheckedAgainstItsOwnTolerance() throws {
        let common = ["--model", "alexnet", "--input-size", "67", "--nodes", "4", "--planner", "oc"]
        let plan = try runIOP(["plan"] + common + ["--wire", "fp16", "--json"])
        #expect(plan.status == 0, "\(plan.stderr)")
        let planned = try #require(try JSONSerialization.jsonObject(with: Data(plan.stdout.utf8)) as? [String: Any])
        let segments = try #require(planned["segments"] as? [[String: Any]])
        #expect(planned["wire"] as? String == "fp16")
        #expect(segments.allSatisfy { ["fp16", "-"].contains($0["wire"] as? String ?? "") } && segments.count > 1)
        var sent: [String: Int] = [:]
        for wire in ["fp32", "fp16"] {
            let r = try runIOP(["cluster"] + common + ["--wire", wire, "--requests", "3", "--check", "--json"])
            #expect(r.status == 0, "\(r.stderr)")
            let obj = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
            let error = obj["max_scaled_error"] as? Double ?? 1
            if wire == "fp16" {
                #expect(obj["tolerance"] as? Double == 1e-2)
                #expect(error > 1e-6 && error <= 1e-2, "scaled error \(error)")
            } else {
                #expect(obj["tolerance"] as? Double == 1e-4 && error <= 1e-4)
            }
            let devices = try #require(obj["devices"] as? [[String: Any]])
            sent[wire] = devices.reduce(0) { $0 + ($1["bytes_sent_per_inference"] as? Int ?? 0) }
        }
        let full = Double(sent["fp32"] ?? 0), half = Double(sent["fp16"] ?? 0)
        #expect(full > 0 && abs(half - full / 2) < 0.02 * full, "\(sent)")
    }

    /// Boards slow next to their links, where splitting everything pays: `iop` and `optimal` split ResNet-18's
    /// eight blocks (five identity shortcuts added at the leader, three projections split by input channels),
    /// MobileNetV2's inverted residuals and chains through its depthwise convs, and SqueezeNet's eight fire
    /// modules by output channels, and the processes' answers equal one board's.
    @Test(arguments: [
        ("resnet18", "iop"), ("resnet18", "optimal"), ("mobilenet_v2", "optimal"), ("squeezenet1_1", "iop"),
        ("squeezenet1_1", "optimal"),
    ])
    func residualBlocksAndChainsSplitAcrossProcesses(model: String, planner: String) throws {
        let path = try slowBoardsCluster("split-cluster-\(model)-\(planner).json")
        let common = ["--model", model, "--input-size", "32", "--cluster", path, "--planner", planner]
        let planned = try planJSON(common).json
        // A split residual block or chain: a segment of several partitions ending by input channels.
        let splits = (planned["segments"] as? [[String: Any]] ?? []).filter {
            let parts = $0["partitions"] as? [[String: Any]] ?? []
            return parts.count > 1 && parts.last?["dim"] as? String == "ic"
        }
        let first = splits.map { ($0["partitions"] as? [[String: Any]])?.first?["layer"] as? String ?? "" }
        let layers = splits.map { ($0["partitions"] as? [[String: Any]] ?? []).map { $0["layer"] as? String ?? "" } }
        if model == "resnet18" {
            #expect(
                first.count == 8 && first.allSatisfy { $0.hasPrefix("layer") && $0.hasSuffix(".conv1") }, "\(first)")
            #expect(layers.filter { $0.last?.hasSuffix(".downsample.0") == true }.count == 3, "\(layers)")
        } else if model == "squeezenet1_1" {
            // A fire module is one stage, named by its expands' common prefix (`features.3`).
            let names = Set([3, 4, 6, 7, 9, 10, 11, 12].map { "features.\($0)" })
            let fires = (planned["segments"] as? [[String: Any]] ?? []).compactMap {
                ($0["partitions"] as? [[String: Any]])?.first
            }.filter { $0["dim"] as? String == "oc" && names.contains($0["layer"] as? String ?? "") }
            #expect(fires.count == 8, "\(fires)")
        } else {
            #expect(first.count >= 10, "\(first)")
        }
        try clusterAnswersAsOneBoard(common + ["--requests", "2", "--check", "--json"])
    }

    /// ResNet-50's bottlenecks (the fixture's two: an identity and a projection shortcut) on boards slow next
    /// to their links: `iop` and `optimal` split both (the leader runs the first 1x1 and the projection, the
    /// boards the 3x3 by output channels and the last 1x1 by input channels), and the processes' answers
    /// equal one board's, with every board's arena the plan's figure.
    @Test(arguments: ["iop", "optimal"])
    func bottlenecksSplitAcrossProcesses(planner: String) throws {
        let path = try slowBoardsCluster("bottleneck-cluster-\(planner).json")
        let common = ["--model", Fixtures.path("bottleneck_net.onnx"), "--cluster", path, "--planner", planner]
        let (plan, planned) = try planJSON(common)
        // A split bottleneck: its chain by output then input channels, then the leader's 1x1 (and projection).
        let blocks = (planned["segments"] as? [[String: Any]] ?? []).map {
            ($0["partitions"] as? [[String: Any]] ?? []).map { $0["dim"] as? String ?? "" }
        }.filter { $0 == ["oc", "ic", "none"] || $0 == ["oc", "ic", "none", "none"] }
        #expect(blocks.count == 2 && blocks.contains { $0.count == 4 }, "\(plan.stdout)")
        try clusterAnswersAsOneBoard(common + ["--requests", "2", "--check", "--json"])
    }

    /// An Inception block (four branches) on the same boards: `oc`, `iop` and `optimal` split it by whole
    /// branches, and the processes' answers equal one board's, with every board's arena the plan's figure.
    @Test(arguments: ["oc", "iop", "optimal"])
    func inceptionBlocksSplitAcrossProcesses(planner: String) throws {
        let path = try slowBoardsCluster("inception-cluster-\(planner).json")
        let common = ["--model", Fixtures.path("inception_block.onnx"), "--cluster", path, "--planner", planner]
        let (plan, planned) = try planJSON(common)
        // The block's 15 channels by output channels, on more than one board.
        let split = (planned["segments"] as? [[String: Any]] ?? []).compactMap {
            ($0["partitions"] as? [[String: Any]])?.first
        }.filter {
            $0["dim"] as? String == "oc" && $0["full_extent"] as? Int == 15
                && (($0["extents"] as? [Int]) ?? []).filter { $0 > 0 }.count > 1
        }
        #expect(split.count == 1, "\(plan.stdout)")
        try clusterAnswersAsOneBoard(common + ["--requests", "2", "--check", "--json"])
    }

    /// The planner's figure is each board's arena: a budget below it is caught before any node starts.
    @Test func aClusterTooSmallForThePlanIsRefusedByThePlanner() throws {
        let path = temporaryPath("tight-cluster.json")
        let cluster = try String(contentsOfFile: PlanCLITests.clusters + "/mixed-pi4-pi3.json", encoding: .utf8)
        try cluster.replacingOccurrences(of: "\"512MiB\"", with: "\"3400000\"").write(
            toFile: path, atomically: true, encoding: .utf8)
        let r = try runIOP([
            "cluster", "--model", "vgg11", "--input-size", "32", "--cluster", path, "--planner", "iop", "--requests",
            "1",
        ])
        #expect(r.status != 0)
        #expect(r.stderr.contains("the iop plan does not fit: board 'pi3-a' needs"), "\(r.stderr)")
        #expect(!r.stderr.contains("starting"), "nodes were started: \(r.stderr)")
    }
}

/// A board deployed with less memory than its bundle was compiled for: the
/// leader refuses it by name with the bytes its arena needs (the planner's
/// figure for it), tells the other workers to stop, and every process exits.
@Test func aWorkerBelowItsArenaIsRefusedAndEveryNodeStops() throws {
    let dir = temporaryPath("refusal-bundle")
    let compiled = try runIOP([
        "compile", "--model", "vgg11", "--input-size", "32", "--cluster", PlanCLITests.clusters + "/mixed-pi4-pi3.json",
        "--planner", "iop", "--out", dir,
    ])
    try #require(compiled.status == 0, "\(compiled.stderr)")
    let manifest =
        try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/manifest.json")))
        as! [String: Any]
    let planned = try #require(
        (manifest["boards"] as? [[String: Any]])?.first { $0["name"] as? String == "pi3-a" }?["planned_peak_bytes"]
            as? Int)
    // The directory `iop compile` wrote names the bundle as well as its bundle.iop does.
    let leader = try NodeProcess(
        [
            "leader", "--bundle", dir, "--listen", "tcp://127.0.0.1:*",
            "--requests", "tcp://127.0.0.1:*", "--timeout-ms", "20000",
        ], environment: [:])
    let endpoint = try #require(leader.waitLine(prefix: "listening ", seconds: 20), "\(leader.stderr)")
    let workers = try [("pi4-b", "512MiB"), ("pi3-a", "1MiB"), ("pi3-b", "512MiB")].map { name, budget in
        try NodeProcess(
            [
                "worker", "--name", name, "--listen", "tcp://127.0.0.1:*", "--leader", endpoint, "--memory-budget",
                budget,
            ], environment: [:])
    }
    let status = leader.exitStatus(within: 30)
    #expect(status != nil && status != 0)
    #expect(
        leader.stderr.contains("board 'pi3-a' refused its program: it needs \(planned) bytes, its budget is 1048576"),
        "\(leader.stderr)")
    for w in workers { #expect(w.exitStatus(within: 15) == 0, "\(w.stderr)") }
}

/// Ctrl-C on `iop cluster` mid-run stops every node it started and removes its work directory (keys, bundles).
@Test func interruptingAClusterStopsEveryNode() throws {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: CLITests.binary)
    p.arguments = [
        "cluster", "--model", "vgg11", "--input-size", "32", "--nodes", "3", "--planner", "oc", "--requests", "400",
    ]
    let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("iop-interrupt-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: tmp) }
    p.environment = ProcessInfo.processInfo.environment.merging(["TMPDIR": tmp]) { $1 }
    let err = Pipe()
    p.standardError = err; p.standardOutput = Pipe()
    try p.run()
    // Wait for requests to flow: the progress line appears on stderr.
    var seen = ""
    let deadline = Date().addingTimeInterval(120)
    while !seen.contains("request ") && Date() < deadline && p.isRunning {
        seen += String(decoding: err.fileHandleForReading.availableData, as: UTF8.self)
    }
    try #require(seen.contains("request "), "\(seen)")
    // The nodes are the children of the iop process.
    let nodes = try FileManager.default.contentsOfDirectory(atPath: "/proc").compactMap(Int32.init).filter { pid in
        guard let fields = procStat(pid), fields.count > 1 else { return false }
        return Int32(fields[1]) == p.processIdentifier
    }
    #expect(nodes.count == 3, "children: \(nodes)")
    let workDirs = { try FileManager.default.contentsOfDirectory(atPath: tmp).filter { $0.hasPrefix("iop-cluster-") } }
    #expect(try workDirs().count == 1)
    kill(p.processIdentifier, SIGINT)
    p.waitUntilExit()
    #expect(p.terminationStatus == 130)
    let left = try workDirs()
    #expect(left.isEmpty, "left behind after Ctrl-C: \(left)")
    // Every node is gone (or at most a zombie about to be reaped by init).
    let stillRunning = nodes.filter { pid in procStat(pid).map { $0[0] != "Z" } ?? false }
    #expect(stillRunning.isEmpty, "nodes left running after Ctrl-C: \(stillRunning)")
}

/// `mixed-pi4-pi3.json` with boards slow next to their links (0.05 GFLOP/s, 10 Gbit/s, 0.05 ms per message), so
/// the planners split what they can, written to a temporary file named `name`: its path.
func slowBoardsCluster(_ name: String) throws -> String {
    let path = temporaryPath(name)
    var file = try #require(
        try JSONSerialization.jsonObject(
            with: Data(contentsOf: URL(fileURLWithPath: PlanCLITests.clusters + "/mixed-pi4-pi3.json")))
            as? [String: Any])
    file["devices"] = (file["devices"] as? [[String: Any]] ?? []).map {
        $0.merging(["gflops": 0.05, "setup_ms": 0.05, "bandwidth_mbps": 10000]) { $1 }
    }
    try JSONSerialization.data(withJSONObject: file).write(to: URL(fileURLWithPath: path))
    return path
}

/// `iop plan ARGS --json`, which must succeed: the run and its JSON.
func planJSON(_ args: [String]) throws -> (run: Result, json: [String: Any]) {
    let plan = try runIOP(["plan"] + args + ["--json"])
    #expect(plan.status == 0, "\(plan.stderr)")
    return (plan, try #require(try JSONSerialization.jsonObject(with: Data(plan.stdout.utf8)) as? [String: Any]))
}

/// The fields of /proc/PID/stat after the command name (state, ppid, ...), or nil once the process is gone.
/// `iop cluster ARGS` (with `--check --json`) on iop-node processes: it exits 0, its answers are within 1e-3 of
/// one board's, and every board's arena is the planner's figure for it. Its JSON, for further checks.
@discardableResult
func clusterAnswersAsOneBoard(_ args: [String]) throws -> [String: Any] {
    let r = try runIOP(["cluster"] + args)
    #expect(r.status == 0, "\(r.stderr)")
    let obj = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
    #expect((obj["max_abs_diff"] as? Double ?? 1) <= 1e-3)
    for d in obj["devices"] as? [[String: Any]] ?? [] {
        #expect(d["arena_bytes"] as? Int == d["planned_peak_bytes"] as? Int, "\(d)")
    }
    return obj
}

func procStat(_ pid: Int32) -> [Substring]? {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let close = stat.lastIndex(of: ")")
    else { return nil }
    return stat[stat.index(close, offsetBy: 2)...].split(separator: " ")
}

/// `iop request` against a running leader: the cluster's answer is single-board
/// inference's (`iop infer` on the same input), and `--repeat --json` reports the latencies.
@Test func requestsToARunningLeaderAnswerAsOneBoardWould() throws {
    let dir = temporaryPath("request-bundle"), keys = temporaryPath("request-keys")
    let compiled = try runIOP(["compile", "--model", "lenet5", "--nodes", "2", "--planner", "oc", "--out", dir])
    try #require(compiled.status == 0, "\(compiled.stderr)")
    try? FileManager.default.removeItem(atPath: keys)
    let made = try runIOP(["keys", "--nodes", "2", "--out", keys])
    try #require(made.status == 0, "\(made.stderr)")
    var rng = SplitMix64(seed: 9)
    let input = temporaryPath("request-x.npy")
    try NPY.write(
        NPY.Array(shape: [1, 1, 32, 32], values: (0..<1024).map { _ in Float(rng.nextUnit() * 2 - 1) }), path: input)
    let leader = try NodeProcess(
        [
            "leader", "--bundle", dir, "--listen", "tcp://127.0.0.1:*", "--requests", "tcp://127.0.0.1:*",
            "--timeout-ms", "20000", "--keys", keys + "/node0",
        ], environment: [:])
    let endpoint = try #require(leader.waitLine(prefix: "listening ", seconds: 20), "\(leader.stderr)")
    let worker = try NodeProcess(
        [
            "worker", "--name", "node1", "--listen", "tcp://127.0.0.1:*", "--leader", endpoint,
            "--memory-budget", "64MiB", "--keys", keys + "/node1",
        ], environment: [:])
    let requests = try #require(leader.waitLine(prefix: "ready ", seconds: 20), "\(leader.stderr)")

    let out = temporaryPath("request-y.npy"), reference = temporaryPath("request-ref.npy")
    let r = try runIOP(
        [
            "request", "--leader", requests, "--input", input, "--output", out, "--repeat", "3", "--json", "--keys",
            keys + "/operator",
        ])
    #expect(r.status == 0, "\(r.stderr)")
    let obj = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any] ?? [:]
    #expect(obj["requests"] as? Int == 3 && obj["outputs"] as? Int == 10, "\(r.stdout)")
    #expect((obj["p50_ms"] as? Double ?? 0) > 0 && (obj["p99_ms"] as? Double ?? 0) >= (obj["p50_ms"] as? Double ?? 1))
    let single = try runIOP(["infer", "--model", "lenet5", "--input", input, "--output", reference])
    #expect(single.status == 0, "\(single.stderr)")
    let err = scaledError(try NPY.read(path: out).values, try NPY.read(path: reference).values)
    #expect(err <= 1e-4, "scaled error \(err)")
    #expect(
        try runIOP(["request", "--leader", requests, "--input", input, "--repeat", "0", "--insecure"]).stderr.contains(
            "--repeat must be at least 1"))

    kill(leader.process.processIdentifier, SIGTERM)
    #expect(leader.exitStatus(within: 15) == 0, "\(leader.stderr)")
    #expect(worker.exitStatus(within: 15) == 0, "\(worker.stderr)")
}

/// A MobileNet-style depthwise-separable chain from ONNX on real iop-node processes, under every
/// planner that splits: the answers are ONNX Runtime's (the fixture's). Row bands of a depthwise
/// conv once lost its groups, and the leader then refused its own bundle. Alone it takes seconds; the
/// limit is the suites' 5 minutes, since beside the other process clusters on 2 cores it waited past 2.
@Test(.timeLimit(.minutes(10)), arguments: ["oc", "coedge", "iop", "optimal"])
func aDepthwiseSeparableChainRunsExactlyOnAProcessCluster(_ planner: String) throws {
    let model = Fixtures.path("mobilenet_block.onnx")
    let dir = temporaryPath("mobilenet-\(planner)")
    let plan = try runIOP(["plan", "--model", model, "--nodes", "3", "--planner", planner, "--json"])
    try #require(plan.status == 0, "\(plan.stderr)")
    let planned = try #require(try JSONSerialization.jsonObject(with: Data(plan.stdout.utf8)) as? [String: Any])
    if planner == "coedge" {
        // CoEdge splits every conv by rows, the depthwise ones included: the case that broke.
        let dims = (planned["segments"] as? [[String: Any]] ?? []).flatMap {
            ($0["partitions"] as? [[String: Any]]) ?? []
        }
        #expect(dims.filter { $0["dim"] as? String == "h" }.count == 5, "\(dims)")
    }
    let compiled = try runIOP(["compile", "--model", model, "--nodes", "3", "--planner", planner, "--out", dir])
    try #require(compiled.status == 0, "\(compiled.stderr)")
    // Keys: the four planners' clusters run at once, and a node of one must never register with another's.
    let keys = dir + "-keys"
    try? FileManager.default.removeItem(atPath: keys)
    try #require(try runIOP(["keys", "--nodes", "3", "--out", keys]).status == 0)
    let leader = try NodeProcess(
        [
            "leader", "--bundle", dir, "--listen", "tcp://127.0.0.1:*", "--requests", "tcp://127.0.0.1:*",
            "--timeout-ms", "20000", "--keys", keys + "/node0",
        ], environment: [:])
    let endpoint = try #require(leader.waitLine(prefix: "listening ", seconds: 20), "\(leader.stderr)")
    let workers = try (1...2).map { i in
        try NodeProcess(
            [
                "worker", "--name", "node\(i)", "--listen", "tcp://127.0.0.1:*", "--leader", endpoint,
                "--memory-budget", "64MiB", "--keys", keys + "/node\(i)",
            ], environment: [:])
    }
    let requests = try #require(leader.waitLine(prefix: "ready ", seconds: 20), "\(leader.stderr)")
    let out = temporaryPath("mobilenet-\(planner)-y.npy")
    let r = try runIOP([
        "request", "--leader", requests, "--input", Fixtures.path("mobilenet_block.input.npy"),
        "--output", out, "--keys", keys + "/operator",
    ])
    #expect(r.status == 0, "\(r.stderr)")
    let err = scaledError(
        try NPY.read(path: out).values, try NPY.read(path: Fixtures.path("mobilenet_block.output.npy")).values)
    #expect(err <= 1e-4, "\(planner): scaled error \(err) against ONNX Runtime")

    // The leader's counters, as data: one inference, every board's arena.
    let stats = try runIOP(["request", "--leader", requests, "--stats", "--json", "--keys", keys + "/operator"])
    #expect(stats.status == 0, "\(stats.stderr)")
    let obj = try #require(try JSONSerialization.jsonObject(with: Data(stats.stdout.utf8)) as? [String: Any])
    #expect(obj["inferences"] as? Int == 1)
    let boards = try #require(obj["boards"] as? [[String: Any]])
    #expect(boards.map { $0["name"] as? String } == ["node0", "node1", "node2"])
    let figures = (planned["devices"] as? [[String: Any]] ?? []).map { $0["peak_memory_bytes"] as? Int }
    #expect(boards.map { $0["arena_bytes"] as? Int } == figures, "arenas \(boards), plan \(figures)")
    // Where the leader's time went: one entry per segment the plan models, its parts adding up to its total.
    #expect(obj["plan_inferences"] as? Int == 1)
    let manifest = try #require(
        try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/manifest.json")))
            as? [String: Any])
    let modelled = try #require(manifest["segment_ms"] as? [Double])
    let segments = try #require(obj["segments"] as? [[String: Double]])
    #expect(segments.count == modelled.count && !segments.isEmpty, "\(segments) against the plan's \(modelled)")
    for t in segments {
        let parts = ["scatter_ms", "own_ms", "gather_ms", "reduce_ms"].reduce(0) { $0 + (t[$1] ?? -1) }
        #expect(abs(parts - (t["total_ms"] ?? 0)) < 0.01 && parts > 0, "\(t)")
    }

    kill(leader.process.processIdentifier, SIGTERM)
    #expect(leader.exitStatus(within: 15) == 0, "\(leader.stderr)")
    for w in workers { #expect(w.exitStatus(within: 15) == 0, "\(w.stderr)") }
}

/// A board whose system will not give it the memory its arena needs (here an address-space limit
/// below it, though its budget allows it) refuses its program by name instead of trapping.
@Test(.timeLimit(.minutes(10)))
func aWorkerThatCannotAllocateItsArenaRefusesItsProgram() throws {
    let dir = temporaryPath("alloc-bundle")
    // VGG11 in two halves: the worker's arena is about 270 MiB.
    let compiled = try runIOP(["compile", "--model", "vgg11", "--nodes", "2", "--planner", "oc", "--out", dir])
    try #require(compiled.status == 0, "\(compiled.stderr)")
    let leader = try NodeProcess(
        [
            "leader", "--bundle", dir, "--listen", "tcp://127.0.0.1:*", "--requests", "tcp://127.0.0.1:*",
            "--timeout-ms", "20000",
        ], environment: [:])
    let endpoint = try #require(leader.waitLine(prefix: "listening ", seconds: 20), "\(leader.stderr)")
    // 300 MiB of address space: a worker maps about 100 MiB before its program arrives, so the
    // arena cannot be had, though the 4 GiB budget allows it.
    let node = URL(fileURLWithPath: CLITests.binary).deletingLastPathComponent().appendingPathComponent("iop-node").path
    let worker = Process()
    worker.executableURL = URL(fileURLWithPath: "/bin/sh")
    worker.arguments = [
        "-c", "ulimit -v 307200 && exec \"$0\" \"$@\"", node, "worker", "--name", "node1", "--listen",
        "tcp://127.0.0.1:*", "--leader", endpoint, "--memory-budget", "4GiB", "--insecure",
    ]
    let err = Pipe()
    worker.standardError = err
    worker.standardOutput = FileHandle.nullDevice
    try worker.run()
    worker.waitUntilExit()
    let workerErr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    #expect(worker.terminationStatus == 1, "\(workerErr)")
    #expect(workerErr.contains("the system would not give it an arena of"), "\(workerErr)")
    #expect(leader.exitStatus(within: 15) != 0)
    #expect(
        leader.stderr.contains("board 'node1' refused its program: the system would not give it an arena of"),
        "\(leader.stderr)")
}

/// Writes int16 samples as a WAV file with the given format fields (for files iop must refuse).
func writeWAV(
    _ path: String, samples: [Int16], rate: Int = 16000, channels: Int = 1, bits: Int = 16, format: Int = 1,
    truncateTo: Int? = nil
) throws {
    var d = Data()
    func u32(_ v: Int) { withUnsafeBytes(of: UInt32(v).littleEndian) { d.append(contentsOf: $0) } }
    func u16(_ v: Int) { withUnsafeBytes(of: UInt16(v).littleEndian) { d.append(contentsOf: $0) } }
    let bytes = samples.count * 2
    d.append(contentsOf: Array("RIFF".utf8)); u32(36 + bytes); d.append(contentsOf: Array("WAVEfmt ".utf8))
    u32(16); u16(format); u16(channels); u32(rate); u32(rate * channels * bits / 8); u16(channels * bits / 8); u16(bits)
    d.append(contentsOf: Array("data".utf8)); u32(bytes)
    samples.withUnsafeBytes { d.append(contentsOf: $0) }
    if let n = truncateTo { d = d.prefix(n) }
    try d.write(to: URL(fileURLWithPath: path))
}

/// The valve-leak stream through `iop cluster --audio --json` (real iop-node processes): one JSON line
/// per window with the documented fields, then the summary; and files the front end cannot take are
/// refused in one line naming what was found, before any node starts.
@Suite(.timeLimit(.minutes(10))) struct AudioStreamCLITests {
    static func noise(seconds: Double, amplitude: Double = 1000) -> [Int16] {
        var rng = SplitMix64(seed: 11)
        return (0..<Int(seconds * 16000)).map { _ in Int16(clamping: Int(rng.nextGaussianPair().0 * amplitude)) }
    }

    @Test func aWAVFileStreamsThroughAProcessClusterAsJSONLines() throws {
        let wav = temporaryPath("stream.wav")
        try writeWAV(wav, samples: Self.noise(seconds: 3.5))
        let r = try runIOP([
            "cluster", "--model", "valve", "--nodes", "3", "--planner", "iop", "--audio", wav, "--json",
        ])
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
        let windows = lines.filter { $0["summary"] == nil }
        #expect(windows.count == 6, "\(r.stdout)")  // patches ending at 0.975, 1.475, ... 3.475 s
        for (k, w) in windows.enumerated() {
            #expect(abs((w["t"] as? Double ?? 0) - (0.975 + 0.5 * Double(k))) < 1e-9, "\(w)")
            let score = w["score"] as? Double ?? -1
            #expect(score >= 0 && score <= 1 && w["alert"] is Bool && w["met"] is Bool, "\(w)")
            #expect((w["latency_ms"] as? Double ?? -1) >= 0, "\(w)")
        }
        let summary = try #require(lines.last?["summary"] as? [String: Any], "\(r.stdout)")
        for key in ["windows", "met", "missed", "dropped", "p50_ms", "p99_ms", "alerts"] {
            #expect(summary[key] != nil, "summary lacks \(key): \(summary)")
        }
        #expect(summary["windows"] as? Int == 6 && summary["dropped"] as? Int == 0)
    }

    @Test(arguments: [
        ("rate", 44100, 1, 16, 1, "found 44100 Hz mono 16-bit PCM"),
        ("stereo", 16000, 2, 16, 1, "found 16000 Hz stereo 16-bit PCM"),
        ("8bit", 16000, 1, 8, 1, "8-bit"),
        ("float", 16000, 1, 32, 3, "float"),
    ])
    func filesTheFrontEndCannotTakeAreRefused(_ c: (String, Int, Int, Int, Int, String)) throws {
        let wav = temporaryPath("bad-\(c.0).wav")
        try writeWAV(wav, samples: Self.noise(seconds: 1), rate: c.1, channels: c.2, bits: c.3, format: c.4)
        let r = try runIOP(["cluster", "--model", "valve", "--nodes", "2", "--audio", wav])
        #expect(r.status != 0)
        #expect(r.stderr.contains("expected 16000 Hz mono 16-bit PCM") && r.stderr.contains(c.5), "\(r.stderr)")
        #expect(!r.stderr.contains("starting"), "nodes were started: \(r.stderr)")
    }

    /// The trained leak score end to end: synth.py synthesises 30 s of a valve never used to train, choose or
    /// evaluate the model (seed 90003: one +6 dB leak, 10.2 to 18.3 s), two iop-node processes stream it, and
    /// the alerts are scored against synth.py's event list by report.py's rule: an alert starting within 1 s
    /// of the leak detects it; an alert overlapping no leak widened by 1 s is a false alarm.
    @Test func theTrainedScoreFlagsASynthesisedLeakAndNothingElse() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let example = root.appendingPathComponent("examples/valve-leak")
        let wav = temporaryPath("valve-90003.wav"), eventsPath = temporaryPath("valve-90003.json")
        let synth = Process()
        synth.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        synth.arguments = [
            "python3", example.appendingPathComponent("synth.py").path, "stream", "--seed", "90003", "--minutes",
            "0.5", "--snrs", "6", "--out", wav, "--events", eventsPath,
        ]
        synth.standardOutput = FileHandle.nullDevice
        try synth.run()
        synth.waitUntilExit()
        try #require(synth.terminationStatus == 0, "python3 with numpy failed (the test command installs it)")
        let info = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: eventsPath)))
                as? [String: Any])
        let events = try #require(info["events"] as? [[String: Any]]).map {
            ($0["start"] as? Double ?? -1)..<($0["end"] as? Double ?? -1)
        }
        try #require(events.count == 1, "\(events)")
        let model = try #require(
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: example.appendingPathComponent("model.json"))) as? [String: Any])
        let threshold = try #require(model["threshold"] as? Double), k = try #require(model["consecutive"] as? Int)

        let r = try runIOP(["cluster", "--model", "valve", "--nodes", "2", "--audio", wav, "--json"])
        try #require(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
        let windows = lines.filter { $0["summary"] == nil }
        #expect(windows.count == 59, "\(r.stdout)")  // (30 s - 0.975 s) / 0.5 s + 1
        // Alerts from the JSON lines: runs of windows with "alert" true; each starts K - 1 hops and one
        // window before the window that raised it.
        var alerts: [(start: Double, end: Double)] = []
        for (i, w) in windows.enumerated() where w["alert"] as? Bool == true {
            let t = w["t"] as? Double ?? -1
            #expect((w["score"] as? Double ?? -1) >= threshold - 1e-4, "alert on a score under the threshold: \(w)")
            if i > 0 && windows[i - 1]["alert"] as? Bool == true {
                alerts[alerts.count - 1].end = t
            } else {
                alerts.append((t - Double(k - 1) * 0.5 - 0.975, t))
            }
        }
        for event in events {
            #expect(
                alerts.contains { $0.start >= event.lowerBound - 1 && $0.start <= event.upperBound + 1 },
                "no alert for the leak at \(event): \(alerts)")
        }
        let falseAlarms = alerts.filter { a in
            !events.contains { a.start <= $0.upperBound + 1 && a.end >= $0.lowerBound - 1 }
        }
        #expect(falseAlarms.isEmpty, "false alarms: \(falseAlarms)")
        let summary = try #require(lines.last?["summary"] as? [String: Any], "\(r.stdout)")
        #expect(summary["alerts"] as? Int == alerts.count, "\(summary)")
    }

    /// A truncated WAV file is streamed up to its end, and the stop says so.
    @Test func aTruncatedFileIsStreamedToItsEndAndTheStopSaysSo() throws {
        let wav = temporaryPath("truncated.wav")
        try writeWAV(wav, samples: Self.noise(seconds: 3), truncateTo: 44 + 2 * 24000)  // 1.5 of 3 s
        let dir = temporaryPath("truncated-bundle")
        let compiled = try runIOP(["compile", "--model", "valve", "--nodes", "1", "--out", dir])
        try #require(compiled.status == 0, "\(compiled.stderr)")
        let leader = try NodeProcess(
            ["leader", "--bundle", dir, "--listen", "tcp://127.0.0.1:*", "--audio", wav], environment: [:])
        #expect(leader.exitStatus(within: 60) == 0, "\(leader.stderr)")
        #expect(
            leader.stderr.contains("is truncated: streamed the 24000 samples present of the 48000"), "\(leader.stderr)")
        #expect(leader.stdout.contains("{\"summary\": {\"windows\": 2,"), "\(leader.stdout)")
    }
}
