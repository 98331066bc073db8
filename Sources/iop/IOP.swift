import ArgumentParser
import Foundation
import IOPCore
import IOPModel
import IOPNode
import IOPPlan

@main
struct IOP: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "iop",
        abstract: "Cooperative CNN inference for small ARM boards (Interleaved Operator Partitioning).",
        discussion: "Models are zoo names (see `iop models`) or ONNX files (float32, batch 1).",
        version: iopVersion,
        subcommands: [
            Models.self, Infer.self, Bench.self, Export.self, PlanCommand.self, Simulate.self, Compile.self,
            Request.self, ClusterRun.self, Deploy.self, Keys.self, ProfileCommand.self,
        ])
}

extension ConvChoice: ExpressibleByArgument {}

/// Options every command that loads a model shares.
struct ModelOptions: ParsableArguments {
    @Option(name: .long, help: "A zoo model name (see `iop models`) or a path to an .onnx file.")
    var model: String

    @Option(name: .long, help: "Spatial input size for zoo models (default: 32 for lenet5, 224 otherwise).")
    var inputSize: Int?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "3x3 stride-1 convs: direct, winograd (F(4x4,3x3): 4x their weight memory) or auto.",
            discussion: "auto: Winograd from 16 input channels and 16 output tiles of 4x4 (a 13x13 output or "
                + "larger); the first layer stays on the direct row kernel."))
    var conv: ConvChoice = .direct

    func load() throws -> Network {
        if let s = inputSize, s <= 0 { throw ModelError.invalidModel("--input-size must be positive, got \(s)") }
        if Zoo.names.contains(model) { note("building \(model) with seeded weights...") }
        return try Network.load(model, inputSize: inputSize).withConvs(conv)
    }
}

func note(_ s: String) { FileHandle.standardError.write(Data((s + "\n").utf8)) }

/// Turns a user-caused error into one line on stderr and exit code 1.
func reportingErrors(_ body: () throws -> Void) throws {
    do { try body() } catch let e as ModelError {
        note("error: \(e.description)")
        throw ExitCode(1)
    } catch let e as ClusterError {
        note("error: \(e.description)")
        throw ExitCode(1)
    } catch let e as PlanError {
        note("error: \(e.description)")
        throw ExitCode(1)
    } catch let e as DeadlineError {
        note("error: \(e.description)")
        throw ExitCode(1)
    } catch let e as CommandFailure {
        note("error: \(e.description)")
        throw ExitCode(1)
    }
}

func nowNanoseconds() -> UInt64 {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return UInt64(t.tv_sec) * 1_000_000_000 + UInt64(t.tv_nsec)
}

func formatCount(_ n: Int) -> String {
    let d = Double(n)
    if d >= 1e9 { return String(format: "%.2fG", d / 1e9) }
    if d >= 1e6 { return String(format: "%.2fM", d / 1e6) }
    if d >= 1e3 { return String(format: "%.1fK", d / 1e3) }
    return "\(n)"
}

func jsonString(_ object: Any) throws -> String {
    let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
    return String(decoding: data, as: UTF8.self)
}

func percentile(_ values: [Double], _ p: Double) -> Double {
    guard !values.isEmpty else { return 0 }
    let s = values.sorted()
    return s[min(s.count - 1, Int((Double(s.count - 1) * p).rounded()))]
}
