import Foundation
import IOPModel
import TestSupport
import Testing

struct Result { var status: Int32; var stdout: String; var stderr: String }

/// Runs the built `iop` binary and collects its exit status and output.
func runIOP(_ args: [String], environment: [String: String] = [:]) throws -> Result {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: CLITests.binary)
    p.arguments = args
    if !environment.isEmpty { p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
    let out = Pipe(), err = Pipe()
    p.standardOutput = out; p.standardError = err
    try p.run()
    let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return Result(
        status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self),
        stderr: String(decoding: e, as: UTF8.self))
}

/// The `iop` binary as users and scripts see it: exit codes, one-line errors, outputs.
@Suite struct CLITests {
    static var binary: String {
        // The test bundle sits beside the products of the same build.
        let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for candidate in [
            dir, dir.deletingLastPathComponent(), dir.deletingLastPathComponent().deletingLastPathComponent(),
        ] {
            let p = candidate.appendingPathComponent("iop").path
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return dir.appendingPathComponent("iop").path
    }

    func iop(_ args: String...) throws -> Result { try runIOP(args) }

    @Test func inferWritesTheSameOutputAsTheLibrary() throws {
        let input = Fixtures.path("mini_lenet.input.npy"), out = temporaryPath("cli-out.npy")
        let r = try iop(
            "infer", "--model", Fixtures.path("mini_lenet.onnx"), "--input", input, "--output", out, "--threads", "2")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("top-5:") && r.stdout.contains("latency"))
        let ort = try NPY.read(path: Fixtures.path("mini_lenet.output.npy"))
        let got = try NPY.read(path: out)
        #expect(got.shape == ort.shape)
        #expect(scaledError(got.values, ort.values) <= 1e-4)
    }

    /// `--conv winograd` reaches the engine (its 3x3 convs on Winograd, still ONNX Runtime's answer); an
    /// unknown algorithm is refused.
    @Test func inferOnWinogradMatchesONNXRuntime() throws {
        let out = temporaryPath("cli-winograd.npy")
        let r = try iop(
            "infer", "--model", Fixtures.path("conv_pad1.onnx"), "--input", Fixtures.path("conv_pad1.input.npy"),
            "--output", out, "--conv", "winograd")
        #expect(r.status == 0, "\(r.stderr)")
        let ort = try NPY.read(path: Fixtures.path("conv_pad1.output.npy"))
        #expect(scaledError(try NPY.read(path: out).values, ort.values) <= 1e-4)
        #expect(try iop("infer", "--model", "lenet5", "--conv", "fast").status != 0)
    }

    @Test func benchPrintsTheDocumentedJSON() throws {
        let r = try iop("bench", "--model", "lenet5", "--runs", "3", "--warmup", "1", "--threads", "2", "--json")
        #expect(r.status == 0, "\(r.stderr)")
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        for key in ["model", "threads", "runs", "median_ms", "p90_ms", "gflops", "layers"] {
            #expect(obj[key] != nil, "missing \(key)")
        }
        #expect(obj["model"] as? String == "lenet5" && obj["threads"] as? Int == 2 && obj["runs"] as? Int == 3)
        let layers = try #require(obj["layers"] as? [[String: Any]])
        #expect(layers.count == 7)
        for l in layers { for key in ["name", "op", "median_ms", "gflops"] { #expect(l[key] != nil) } }
    }

    @Test func modelsListsTheZoo() throws {
        let r = try iop("models", "--json")
        #expect(r.status == 0)
        let rows = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]])
        #expect(rows.compactMap { $0["model"] as? String } == Zoo.names)
    }

    @Test func exportWritesALoadableModel() throws {
        let out = temporaryPath("lenet5-cli.onnx")
        let r = try iop("export", "--model", "lenet5", "--out", out)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try ONNXImporter.load(path: out).layers.count == 7)
    }

    @Test(arguments: [
        (["infer", "--model", "/nonexistent.onnx"], "nonexistent.onnx"),
        (["infer", "--model", "resnet50"], "neither a zoo model"),
        (["infer", "--model", "lenet5", "--input", "/nonexistent.npy"], "/nonexistent.npy: cannot read file"),
        (
            ["infer", "--model", "lenet5", "--input", "FIXTURE:conv_pad1.input.npy"],
            "does not match the model's input shape"
        ),
        (["infer", "--model", "lenet5", "--input", "FIXTURE:conv_pad1.onnx"], "not a float32 .npy file"),
        (["infer", "--model", "FIXTURE:error_unsupported_erf.onnx"], "unsupported operator 'Erf'"),
        (["infer", "--model", "FIXTURE:conv_pad1.input.npy"], "not a readable ONNX protobuf"),
        (["bench", "--model", "lenet5", "--runs", "0"], "--runs must be at least 1"),
        (["infer", "--model", "lenet5", "--threads", "0"], "--threads must be at least 1"),
    ])
    func badInputFailsWithOneLine(args: [String], message: String) throws {
        let resolved = args.map { $0.hasPrefix("FIXTURE:") ? Fixtures.path(String($0.dropFirst(8))) : $0 }
        let r = try runIOP(resolved)
        #expect(r.status != 0)
        let e = r.stderr
        let lines = e.split(separator: "\n").filter {
            !$0.hasPrefix("building") && !$0.hasPrefix("Usage") && !$0.hasPrefix("  See") && !$0.isEmpty
        }
        #expect(lines.count == 1, "stderr: \(e)")
        #expect(e.contains(message), "stderr: \(e)")
    }

    @Test func everySubcommandHasHelp() throws {
        for sub in ["models", "infer", "bench", "export"] {
            let r = try iop(sub, "--help")
            #expect(r.status == 0 && r.stdout.contains("USAGE:") && r.stdout.contains("OVERVIEW:"), "\(sub)")
        }
    }
}

/// `iop plan` / `iop simulate` as scripts use them.
@Suite struct PlanCLITests {
    static var clusters: String {
        var dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while !FileManager.default.fileExists(atPath: dir.appendingPathComponent("examples/clusters").path) {
            dir.deleteLastPathComponent()
        }
        return dir.appendingPathComponent("examples/clusters").path
    }

    func run(_ args: [String]) throws -> (Int32, String, String) {
        let r = try runIOP(args)
        return (r.status, r.stdout, r.stderr)
    }

    @Test(arguments: ["single", "oc", "coedge", "iop", "optimal", "ftp"])
    func planJSONHasTheDocumentedFields(planner: String) throws {
        let (status, out, err) = try run([
            "plan", "--model", "alexnet", "--cluster", Self.clusters + "/mixed-pi4-pi3.json", "--planner", planner,
            "--json",
        ])
        #expect(status == 0, "\(err)")
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any])
        #expect(obj["planner"] as? String == planner)
        #expect((obj["modeled_latency_ms"] as? Double ?? 0) > 0)
        let devices = try #require(obj["devices"] as? [[String: Any]])
        #expect(devices.map { $0["name"] as? String } == ["pi4-a", "pi4-b", "pi3-a", "pi3-b"])
        for d in devices { #expect((d["peak_memory_bytes"] as? Int ?? .max) <= (d["budget_bytes"] as? Int ?? 0)) }
        let segments = try #require(obj["segments"] as? [[String: Any]])
        for s in segments {
            #expect(s["compute_ms"] is Double && s["comm_ms"] is Double)
            for p in try #require(s["partitions"] as? [[String: Any]]) {
                let extents = try #require(p["extents"] as? [Int])
                // A grid: one board per grid row counts its band of rows; its columns make the same width in
                // every grid row.
                let perRow = p["grid_columns"] as? Int ?? 1
                let bands = stride(from: 0, to: extents.count, by: perRow).map { extents[$0] }
                #expect(extents.count == 4 && bands.reduce(0, +) == p["full_extent"] as? Int)
                if let columns = p["column_extents"] as? [Int] {
                    let widths = stride(from: 0, to: 4, by: perRow).map { columns[$0..<($0 + perRow)].reduce(0, +) }
                    #expect(Set(widths).count == 1, "\(columns)")
                }
                #expect(["oc", "ic", "h", "ftp", "none"].contains(p["dim"] as? String ?? ""))
                #expect(p["layer"] is String)
            }
        }
    }

    /// `--deadline-ms`: a plan that meets it, or one line naming the fastest plan's modelled latency.
    @Test func deadlinePlansMeetItOrNameTheFastest() throws {
        let cluster = Self.clusters + "/four-pi4-wifi.json"
        let (ok, out, okErr) = try run([
            "plan", "--model", "valve", "--cluster", cluster, "--deadline-ms", "2000", "--json",
        ])
        #expect(ok == 0, "\(okErr)")
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any])
        #expect(obj["planner"] as? String == "deadline")
        #expect((obj["modeled_latency_ms"] as? Double ?? .infinity) <= 2000)
        let (status, _, err) = try run(["plan", "--model", "valve", "--cluster", cluster, "--deadline-ms", "1"])
        #expect(status != 0)
        #expect(
            err.contains("no plan meets the 1.0 ms deadline: the fastest plan that fits every budget is modelled at"))
        #expect(err.split(separator: "\n").count == 1)
        let (single, _, singleErr) = try run([
            "plan", "--model", "valve", "--cluster", cluster, "--planner", "oc", "--deadline-ms", "1",
        ])
        #expect(single != 0 && singleErr.contains("the oc plan is modelled at"), "\(singleErr)")
        let (bad, _, badErr) = try run(["plan", "--model", "valve", "--cluster", cluster, "--deadline-ms", "0"])
        #expect(bad != 0 && badErr.contains("--deadline-ms must be positive"), "\(badErr)")
    }

    @Test func overBudgetPlanFailsWithOneLine() throws {
        let (status, _, err) = try run([
            "plan", "--model", "vgg16", "--cluster", Self.clusters + "/small-memory.json", "--planner", "single",
        ])
        #expect(status != 0)
        #expect(err.contains("board 'zero-a' needs") && err.contains("smallest budget that fits"))
        #expect(err.split(separator: "\n").count == 1)
    }

    @Test func badClusterFileNamesTheProblem() throws {
        let path = temporaryPath("bad-cluster.json")
        try #"{"leader": "a", "devices": [{"name": "a"}]}"#.write(toFile: path, atomically: true, encoding: .utf8)
        let (status, _, err) = try run(["plan", "--model", "lenet5", "--cluster", path])
        #expect(status != 0 && err.contains("board 'a': missing or empty field 'endpoint'"), "\(err)")
    }

    @Test func simulateComparesEveryPlannerPerSetup() throws {
        let (status, out, err) = try run([
            "simulate", "--model", "lenet5,vgg11", "--cluster", Self.clusters + "/four-pi4-wifi.json",
            "--setup-ms", "1,8", "--json",
        ])
        #expect(status == 0, "\(err)")
        let rows = try #require(try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [[String: Any]])
        #expect(rows.count == 4)
        #expect(rows.map { $0["setup_ms"] as? Double } == [1, 8, 1, 8])
        for r in rows {
            let planners = try #require(r["planners"] as? [[String: Any]])
            #expect(
                planners.compactMap { $0["planner"] as? String } == ["single", "oc", "coedge", "iop", "optimal", "ftp"])
            #expect((r["iop_latency_saved_vs_coedge_pct"] as? Double ?? -1) >= 0)
        }
    }
}

@Suite struct BundleCLITests {
    @Test func compileWritesABundleAndACorruptedOneIsRefused() throws {
        let dir = temporaryPath("bundle-lenet5")
        let r = try runIOP([
            "compile", "--model", "lenet5", "--cluster", PlanCLITests.clusters + "/four-pi4-wifi.json", "--planner",
            "iop", "--out", dir,
        ])
        #expect(r.status == 0, "\(r.stderr)")
        let manifest = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/manifest.json")))
                as? [String: Any])
        #expect(manifest["planner"] as? String == "iop" && manifest["model"] as? String == "lenet5")
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: dir + "/bundle.iop")))
        #expect(manifest["bundle_bytes"] as? Int == bytes.count)
        bytes[bytes.count / 2] ^= 0x40
        let corrupted = dir + "/corrupted.iop"
        try Data(bytes).write(to: URL(fileURLWithPath: corrupted))
        let node = URL(fileURLWithPath: CLITests.binary).deletingLastPathComponent().appendingPathComponent("iop-node")
            .path
        let p = Process()
        p.executableURL = URL(fileURLWithPath: node)
        p.arguments = [
            "leader", "--bundle", corrupted, "--listen", "tcp://127.0.0.1:*", "--requests", "tcp://127.0.0.1:*",
        ]
        let err = Pipe()
        p.standardError = err; p.standardOutput = Pipe()
        try p.run()
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus != 0)
        #expect(
            text.contains("not a valid iop bundle") && text.contains("checksum mismatch") && text.hasPrefix("<3>"),
            "\(text)")
    }
}

/// `iop deploy`: what reaches each board, checked against the cluster file by hand.
@Suite struct DeployCLITests {
    static let cluster = PlanCLITests.clusters + "/four-pi4-wifi.json"

    /// A bundle for the example cluster, a stand-in package, and a PATH whose ssh and scp only record their arguments.
    func setUp(_ name: String) throws -> (dir: String, package: String, path: String, log: String) {
        let dir = temporaryPath("deploy-\(name)")
        try? FileManager.default.removeItem(atPath: dir)
        let r = try runIOP([
            "compile", "--model", "lenet5", "--cluster", Self.cluster, "--planner", "iop", "--out", dir,
        ])
        try #require(r.status == 0, "\(r.stderr)")
        let keys = try runIOP(["keys", "--cluster", Self.cluster, "--out", dir + "/keys"])
        try #require(keys.status == 0, "\(keys.stderr)")
        let package = dir + "/iop-node_9.9.9_arm64.deb"
        try Data("not really a package".utf8).write(to: URL(fileURLWithPath: package))
        let bin = dir + "/bin", log = dir + "/calls.log"
        try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
        for tool in ["ssh", "scp"] {
            let script =
                "#!/bin/sh\nprintf '%s' \(tool) >> \(log)\n"
                + "for a in \"$@\"; do printf ' [%s]' \"$a\" >> \(log); done\necho >> \(log)\n"
            try script.write(toFile: bin + "/" + tool, atomically: true, encoding: .utf8)
            chmod(bin + "/" + tool, 0o755)
        }
        return (dir, package, bin + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"), log)
    }

    func deploy(_ args: [String], path: String) throws -> Result {
        try runIOP(["deploy"] + args, environment: ["PATH": path])
    }

    @Test func dryRunPrintsEveryCommandForTheExampleClusterAndRunsNone() throws {
        let s = try setUp("dry")
        let stage = s.dir + "/stage"
        let r = try deploy(
            [
                "--cluster", Self.cluster, "--bundle", s.dir, "--package", s.package, "--user", "pi", "--stage", stage,
                "--dry-run", "--keys", s.dir + "/keys",
            ], path: s.path)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: s.log), "a dry run ran ssh or scp")
        let lines = r.stdout.split(separator: "\n").map(String.init)
        // Three commands per board, the leader (pi4-a, 198.18.0.1) first.
        #expect(lines.count == 12)
        let hosts = ["pi4-a": "198.18.0.1", "pi4-b": "198.18.0.2", "pi4-c": "198.18.0.3", "pi4-d": "198.18.0.4"]
        for (k, board) in ["pi4-a", "pi4-b", "pi4-c", "pi4-d"].enumerated() {
            let (mkdir, copy, install) = (lines[3 * k], lines[3 * k + 1], lines[3 * k + 2])
            #expect(mkdir == "ssh pi@\(hosts[board]!) 'mkdir -p -m 0700 /tmp/iop-deploy'")
            #expect(
                copy.hasPrefix("scp -q \(s.package) \(stage)/\(board).env \(stage)/\(board)-memory.conf"), "\(copy)")
            // Each board gets its own keys, and no other board's.
            #expect(copy.contains("\(s.dir)/keys/\(board)/secret \(s.dir)/keys/\(board)/peers"), "\(copy)")
            #expect(copy.components(separatedBy: "/secret").count == 2, "\(copy)")
            #expect(copy.hasSuffix(" pi@\(hosts[board]!):/tmp/iop-deploy/"))
            #expect(install.contains("sudo install -D -m 0600 /tmp/iop-deploy/secret /etc/iop/keys/\(board)/secret"))
            #expect(install.contains("sudo install -D -m 0644 /tmp/iop-deploy/peers /etc/iop/keys/\(board)/peers"))
            #expect(copy.contains("bundle.iop") == (board == "pi4-a"))
            #expect(
                install.hasPrefix(
                    "ssh pi@\(hosts[board]!) 'sudo apt-get install -y -q /tmp/iop-deploy/iop-node_9.9.9_arm64.deb && "),
                "\(install)")
            #expect(install.contains("/etc/iop/\(board).env"))
            #expect(install.contains("/etc/systemd/system/iop-node@\(board).service.d/memory.conf"))
            #expect(install.contains("/etc/iop/bundle.iop") == (board == "pi4-a"))
            // The leader also gets the plan for the loss of each worker.
            for lost in ["pi4-b", "pi4-c", "pi4-d"] {
                #expect(copy.contains("fallback-\(lost).iop") == (board == "pi4-a"), "\(copy)")
                #expect(install.contains("/etc/iop/fallback-\(lost).iop") == (board == "pi4-a"), "\(install)")
            }
            #expect(
                install.hasSuffix(
                    "sudo systemctl enable iop-node@\(board) && "
                        + "sudo systemctl restart iop-node@\(board) && rm -rf /tmp/iop-deploy'"
                ))
        }
        // The staged settings: a worker registers with the leader's endpoint under its 1 GiB budget.
        let env = try String(contentsOfFile: stage + "/pi4-c.env", encoding: .utf8)
        for line in [
            "IOP_ROLE=worker", "IOP_LISTEN=tcp://198.18.0.3:5555", "IOP_LEADER=tcp://198.18.0.1:5555",
            "IOP_MEMORY_BUDGET=1073741824", "IOP_THREADS=4", "IOP_REJOIN=1",
        ] {
            #expect(env.split(separator: "\n").contains(Substring(line)), "\(line) missing from\n\(env)")
        }
        let leaderEnv = try String(contentsOfFile: stage + "/pi4-a.env", encoding: .utf8)
        for line in [
            "IOP_ROLE=leader", "IOP_BUNDLE=/etc/iop/bundle.iop", "IOP_LISTEN=tcp://198.18.0.1:5555",
            "IOP_REQUESTS=tcp://0.0.0.0:5599",
        ] {
            #expect(leaderEnv.split(separator: "\n").contains(Substring(line)), "\(line) missing from\n\(leaderEnv)")
        }
        // 1 GiB + 64 MiB = 1140850688 bytes.
        let dropIn = try String(contentsOfFile: stage + "/pi4-b-memory.conf", encoding: .utf8)
        #expect(dropIn.contains("[Service]\nMemoryMax=1140850688\n"), "\(dropIn)")
    }

    @Test func aRealRunRunsExactlyTheDryRunsCommands() throws {
        let s = try setUp("real")
        let args = [
            "--cluster", Self.cluster, "--bundle", s.dir + "/bundle.iop", "--package", s.package, "--stage",
            s.dir + "/stage", "--insecure",
        ]
        let dry = try deploy(args + ["--dry-run"], path: s.path)
        let real = try deploy(args, path: s.path)
        #expect(real.status == 0, "\(real.stderr)")
        let calls = try String(contentsOfFile: s.log, encoding: .utf8).split(separator: "\n")
        let printed = dry.stdout.split(separator: "\n")
        #expect(calls.count == printed.count && calls.count == 12)
        // Each recorded call, words in brackets, against the printed line for it (no --user: bare hosts).
        #expect(calls[0] == "ssh [198.18.0.1] [mkdir -p -m 0700 /tmp/iop-deploy]")
        #expect(printed[0] == "ssh 198.18.0.1 'mkdir -p -m 0700 /tmp/iop-deploy'")
        // Plain links, said in the settings, and no keys for systemd to look for.
        let env = try String(contentsOfFile: s.dir + "/stage/pi4-b.env", encoding: .utf8)
        #expect(env.split(separator: "\n").contains("IOP_INSECURE=1"), "\(env)")
        let dropIn = try String(contentsOfFile: s.dir + "/stage/pi4-b-memory.conf", encoding: .utf8)
        #expect(dropIn.hasSuffix("\nLoadCredential=\n"), "\(dropIn)")
        #expect(calls[10].hasPrefix("scp [-q] [\(s.package)] [\(s.dir)/stage/pi4-d.env]"), "\(calls[10])")
        #expect(real.stderr.contains("[12/12] pi4-d: install and restart iop-node@pi4-d"), "\(real.stderr)")
    }

    @Test func aBundleForOtherBoardsIsRefused() throws {
        let s = try setUp("mismatch")
        let other = s.dir + "/other"
        let r = try runIOP(["compile", "--model", "lenet5", "--nodes", "4", "--planner", "iop", "--out", other])
        try #require(r.status == 0)
        let d = try deploy(
            [
                "--cluster", Self.cluster, "--bundle", other, "--package", s.package, "--dry-run", "--stage",
                s.dir + "/stage", "--insecure",
            ], path: s.path)
        #expect(d.status != 0)
        #expect(
            d.stderr.contains("was compiled for boards node0, node1, node2, node3")
                && d.stderr.contains("recompile it with `iop compile --cluster"), "\(d.stderr)")
    }
}
