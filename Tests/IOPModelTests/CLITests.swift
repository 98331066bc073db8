import TestSupport
import Foundation
import IOPModel
import Testing

/// The `iop` binary as users and scripts see it: exit codes, one-line errors, outputs.
@Suite struct CLITests {
    struct Result { var status: Int32; var stdout: String; var stderr: String }

    static var binary: String {
        // The test bundle sits beside the products of the same build.
        let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for candidate in [dir, dir.deletingLastPathComponent(), dir.deletingLastPathComponent().deletingLastPathComponent()] {
            let p = candidate.appendingPathComponent("iop").path
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return dir.appendingPathComponent("iop").path
    }

    func iop(_ args: String...) throws -> Result {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Self.binary)
        p.arguments = args
        let out = Pipe(), err = Pipe()
        p.standardOutput = out; p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Result(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
    }

    @Test func inferWritesTheSameOutputAsTheLibrary() throws {
        let input = Fixtures.path("mini_lenet.input.npy"), out = temporaryPath("cli-out.npy")
        let r = try iop("infer", "--model", Fixtures.path("mini_lenet.onnx"), "--input", input, "--output", out, "--threads", "2")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("top-5:") && r.stdout.contains("latency"))
        let ort = try NPY.read(path: Fixtures.path("mini_lenet.output.npy"))
        let got = try NPY.read(path: out)
        #expect(got.shape == ort.shape)
        #expect(scaledError(got.values, ort.values) <= 1e-4)
    }

    @Test func benchPrintsTheDocumentedJSON() throws {
        let r = try iop("bench", "--model", "lenet5", "--runs", "3", "--warmup", "1", "--threads", "2", "--json")
        #expect(r.status == 0, "\(r.stderr)")
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        for key in ["model", "threads", "runs", "median_ms", "p90_ms", "gflops", "layers"] { #expect(obj[key] != nil, "missing \(key)") }
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
        (["infer", "--model", "lenet5", "--input", "FIXTURE:conv_pad1.input.npy"], "does not match the model's input shape"),
        (["infer", "--model", "lenet5", "--input", "FIXTURE:conv_pad1.onnx"], "not a float32 .npy file"),
        (["infer", "--model", "FIXTURE:error_unsupported_sigmoid.onnx"], "unsupported operator 'Sigmoid'"),
        (["infer", "--model", "FIXTURE:conv_pad1.input.npy"], "not a readable ONNX protobuf"),
        (["bench", "--model", "lenet5", "--runs", "0"], "--runs must be at least 1"),
        (["infer", "--model", "lenet5", "--threads", "0"], "--threads must be at least 1"),
    ])
    func badInputFailsWithOneLine(args: [String], message: String) throws {
        let resolved = args.map { $0.hasPrefix("FIXTURE:") ? Fixtures.path(String($0.dropFirst(8))) : $0 }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Self.binary)
        p.arguments = resolved
        let err = Pipe()
        p.standardError = err; p.standardOutput = Pipe()
        try p.run()
        let e = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus != 0)
        let lines = e.split(separator: "\n").filter { !$0.hasPrefix("building") && !$0.hasPrefix("Usage") && !$0.hasPrefix("  See") && !$0.isEmpty }
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
