import ArgumentParser
import CIOPSystem
import Foundation
import IOPCore
import IOPModel
import IOPNode
import IOPPlan

struct Models: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the built-in zoo models with parameters, FLOPs and weight bytes.")

    @Option(name: .long, help: "Spatial input size to report FLOPs for (default: each model's own).")
    var inputSize: Int?

    @Flag(name: .long, help: "Print one JSON array instead of a table.")
    var json = false

    func run() throws {
        try reportingErrors {
            var rows: [[String: Any]] = []
            if !json { print("model     input          params   FLOPs    weights   layers") }
            for name in Zoo.names {
                let net = try Zoo.make(name, inputSize: inputSize, withWeights: false)
                let params = net.parameterCount
                if json {
                    rows.append([
                        "model": name, "input_shape": net.inputShape, "parameters": params,
                        "flops": net.flops, "weight_bytes": params * 4, "layers": net.layers.count,
                    ])
                } else {
                    let shape = net.inputShape.map(String.init).joined(separator: "x")
                    print(
                        name.padding(toLength: 10, withPad: " ", startingAt: 0)
                            + shape.padding(toLength: 15, withPad: " ", startingAt: 0)
                            + formatCount(params).padding(toLength: 9, withPad: " ", startingAt: 0)
                            + formatCount(net.flops).padding(toLength: 9, withPad: " ", startingAt: 0)
                            + (formatCount(params * 4) + "B").padding(toLength: 10, withPad: " ", startingAt: 0)
                            + "\(net.layers.count)")
                }
            }
            if json { print(try jsonString(rows)) }
        }
    }
}

/// A seeded random input in [-1, 1), so runs without --input are reproducible.
func randomInput(count: Int, seed: UInt64 = 42) -> [Float] {
    var rng = SplitMix64(seed: seed)
    return (0..<count).map { _ in Float(rng.nextUnit() * 2 - 1) }
}

func readInput(_ path: String?, for net: Network) throws -> [Float] {
    guard let path else { return randomInput(count: net.inputCount) }
    let a = try NPY.read(path: path)
    let squeezed = { (s: [Int]) in Array(s.drop(while: { $0 == 1 })) }
    guard a.shape == net.inputShape || squeezed(a.shape) == squeezed(net.inputShape) else {
        throw ModelError.shapeMismatch(expected: net.inputShape, got: a.shape)
    }
    return a.values
}

struct Infer: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run one inference on this machine and print the top-5 classes and the latency.")

    @OptionGroup var model: ModelOptions

    @Option(
        name: .long,
        help: "Input tensor (.npy, float32, C order) with the model's input shape. Default: a seeded random input.")
    var input: String?

    @Option(name: .long, help: "Write the output tensor to this .npy file.")
    var output: String?

    @Option(name: .long, help: "Worker threads (a fixed pool created once).")
    var threads: Int = 1

    func validate() throws {
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1, got \(threads)") }
    }

    func run() throws {
        try reportingErrors {
            let net = try model.load()
            let x = try readInput(input, for: net)
            let engine = try net.makeEngine(threads: threads)
            var y = [Float](repeating: 0, count: engine.outputCount)
            let t0 = nowNanoseconds()
            x.withUnsafeBufferPointer { xp in
                y.withUnsafeMutableBufferPointer { engine.run(input: xp.baseAddress!, output: $0.baseAddress!) }
            }
            let ms = Double(nowNanoseconds() - t0) / 1e6
            print(
                "model \(net.name), input \(net.inputShape), output \(net.outputShape), \(threads) thread(s), "
                    + "arena \(formatCount(engine.arenaBytes))B"
            )
            print("top-5:")
            for (rank, (index, value)) in y.enumerated().sorted(by: { $0.element > $1.element }).prefix(5).map({
                ($0.offset, $0.element)
            }).enumerated() {
                print("  \(rank + 1). class \(index)  score \(String(format: "%.5f", value))")
            }
            print(String(format: "latency %.2f ms", ms))
            if let output {
                try NPY.write(NPY.Array(shape: net.outputShape, values: y), path: output)
                print("wrote \(output)")
            }
        }
    }
}

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Time whole-model and per-layer latency on this machine.")

    @OptionGroup var model: ModelOptions

    @Option(name: .long, help: "Worker threads (a fixed pool created once).")
    var threads: Int = 1

    @Option(name: .long, help: "Timed runs.")
    var runs: Int = 10

    @Option(name: .long, help: "Untimed runs first.")
    var warmup: Int = 2

    @Flag(name: .long, help: "Print one JSON object instead of a table.")
    var json = false

    func validate() throws {
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1, got \(threads)") }
        guard runs >= 1 else { throw ValidationError("--runs must be at least 1, got \(runs)") }
        guard warmup >= 0 else { throw ValidationError("--warmup must be >= 0, got \(warmup)") }
    }

    func run() throws {
        try reportingErrors {
            let net = try model.load()
            let engine = try net.makeEngine(threads: threads)
            let x = randomInput(count: net.inputCount)
            let layers = engine.layerCount
            var totals: [Double] = []
            var perLayer = [[Double]](repeating: [], count: layers)
            // The process's CPU time (every thread's) over the timed runs: a machine shared with other jobs
            // stretches wall time, not this. Measured here rather than as two processes' difference, where
            // loading the model (page faults, its huge pages) varied by more than the runs took.
            var cpu0: UInt64 = 0
            for r in 0..<(warmup + runs) {
                if r == warmup { cpu0 = iop_process_cpu_ns() }
                let t0 = nowNanoseconds()
                x.withUnsafeBufferPointer { engine.inputBuffer.update(from: $0.baseAddress!, count: net.inputCount) }
                var last = t0
                for i in 0..<layers {
                    engine.runLayer(i)
                    let t = nowNanoseconds()
                    if r >= warmup { perLayer[i].append(Double(t - last) / 1e6) }
                    last = t
                }
                if r >= warmup { totals.append(Double(last - t0) / 1e6) }
                if !json && runs >= 5 && r >= warmup {
                    FileHandle.standardError.write(Data("\rrun \(r - warmup + 1)/\(runs)".utf8))
                }
            }
            let cpuMs = Double(iop_process_cpu_ns() - cpu0) / 1e6 / Double(runs)
            if !json && runs >= 5 { note("") }
            let median = percentile(totals, 0.5), p90 = percentile(totals, 0.9)
            let gflops = Double(net.flops) / (median * 1e6)
            var layerRows: [[String: Any]] = []
            for i in 0..<layers {
                let l = net.layers[i]
                let m = percentile(perLayer[i], 0.5)
                layerRows.append([
                    "name": l.name, "op": l.opName, "median_ms": m, "flops": l.flops,
                    "gflops": m > 0 ? Double(l.flops) / (m * 1e6) : 0,
                ])
            }
            if json {
                print(
                    try jsonString([
                        "model": net.name, "threads": threads, "runs": runs, "warmup": warmup,
                        "median_ms": median, "p90_ms": p90, "cpu_ms": cpuMs, "gflops": gflops, "flops": net.flops,
                        "arena_bytes": engine.arenaBytes, "layers": layerRows,
                    ]))
            } else {
                print("layer                 op                 median ms   GFLOP/s")
                for row in layerRows {
                    print(
                        (row["name"] as! String).padding(toLength: 22, withPad: " ", startingAt: 0)
                            + (row["op"] as! String).padding(toLength: 19, withPad: " ", startingAt: 0)
                            + String(format: "%9.3f  %8.2f", row["median_ms"] as! Double, row["gflops"] as! Double))
                }
                print(
                    String(
                        format: "%@: median %.2f ms, p90 %.2f ms, %.2f GFLOP/s, %d thread(s), %d runs, arena %@B",
                        net.name, median, p90, gflops, threads, runs, formatCount(engine.arenaBytes)))
            }
        }
    }
}

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a model (zoo or ONNX) as an ONNX file other engines can run.")

    @OptionGroup var model: ModelOptions

    @Option(name: .long, help: "Where to write the .onnx file.")
    var out: String

    func run() throws {
        try reportingErrors {
            let net = try model.load()
            try ONNXExporter.write(net, to: out)
            print("wrote \(out): \(net.name), input \(net.inputShape), \(formatCount(net.parameterCount)) parameters")
        }
    }
}
