import ArgumentParser
import Foundation
import IOPModel
import IOPNet
import IOPPlan

struct Request: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Send inference requests to a running leader and print or save the result.",
        discussion: """
            With --repeat N the same input is sent N times, one after another, and the latency percentiles are \
            reported: a deployed cluster's latency, measured from where the requests come from. With --stats (and no \
            --input) the leader reports its counters instead: inferences, and per board its arena and what it sent.
            """)
    @Option(name: .long, help: "The leader's request endpoint (printed by `iop-node leader` as `ready ...`).")
    var leader: String
    @Option(name: .long, help: "Input tensor (.npy, float32).")
    var input: String?
    @Flag(name: .long, help: "Ask for the leader's counters instead of an inference (JSON with --json).")
    var stats = false
    @Option(name: .long, help: "Write the (last) result here (.npy).")
    var output: String?
    @Option(name: .long, help: "Where the leader should send the answer (default: a free loopback port).")
    var reply: String = "tcp://127.0.0.1:*"
    @OptionGroup var clientKeys: ClientKeyOptions
    @Option(name: .long, help: "Send the request this many times and report latency percentiles.")
    var `repeat`: Int = 1
    @Flag(name: .long, help: "Print one JSON object: requests, p50_ms, p90_ms, p99_ms, outputs.")
    var json = false

    func validate() throws {
        if `repeat` < 1 { throw ValidationError("--repeat must be at least 1, got \(`repeat`)") }
        if stats == (input != nil) { throw ValidationError("give exactly one of --input FILE or --stats") }
    }

    /// Prints the leader's counters: a table, or JSON with `inferences`, `rejected_frames`, `rejected_handshakes`,
    /// `boards[{name, arena_bytes, bytes_sent, messages_sent, cpu_ms_per_inference}]`, and the active plan's
    /// `plan_inferences`, `segments[{scatter_ms, own_ms, gather_ms, reduce_ms, total_ms}]`, each the mean per
    /// inference on that plan, and `cpu_inferences`, the inferences each board's CPU is the mean of (all but the
    /// plan's first; `iop profile --calibrate` reads this).
    func printStats() throws {
        let s = try RequestClient(leader: leader, reply: reply, keys: clientKeys.load()).stats()
        let boards = s.boards.map { b -> [String: Any] in
            [
                "name": String(decoding: b.name, as: UTF8.self), "arena_bytes": Int(b.arenaBytes),
                "bytes_sent": Int(b.bytesSent), "messages_sent": Int(b.messagesSent),
                "cpu_ms_per_inference": (s.cpuMsPerInference(b) * 1000).rounded() / 1000,
            ]
        }
        let runs = Double(max(1, s.planInferences))
        let ms = { (ns: UInt64) in (Double(ns) / 1e6 / runs * 1000).rounded() / 1000 }
        let segments = s.segments.map { t -> [String: Double] in
            [
                "scatter_ms": ms(t.scatterNs), "own_ms": ms(t.ownNs), "gather_ms": ms(t.gatherNs),
                "reduce_ms": ms(t.reduceNs), "total_ms": ms(t.scatterNs + t.ownNs + t.gatherNs + t.reduceNs),
            ]
        }
        if json {
            print(
                try jsonString(
                    [
                        "inferences": Int(s.inferences), "rejected_frames": Int(s.rejectedFrames),
                        "rejected_handshakes": Int(s.rejectedHandshakes), "boards": boards,
                        "plan_inferences": Int(s.planInferences), "segments": segments,
                        "cpu_inferences": Int(s.cpuInferences),
                    ] as [String: Any]))
            return
        }
        print(
            "\(s.inferences) inferences; rejected \(s.rejectedFrames) frames and \(s.rejectedHandshakes) handshakes")
        for b in boards {
            let cpu =
                s.cpuInferences > 0
                ? String(format: ", CPU %.2f ms per inference", b["cpu_ms_per_inference"] as! Double) : ""
            print(
                "  \(pad(b["name"] as! String, 12)) arena \(pad(formatBytes(b["arena_bytes"] as! Int), 11)) "
                    + "sent \(formatBytes(b["bytes_sent"] as! Int)) in \(b["messages_sent"] as! Int) messages" + cpu)
        }
        if s.planInferences == 0 { return }
        print("per segment, mean of \(s.planInferences) inferences on the active plan (ms at the leader):")
        print("  segment   scatter       own    gather    reduce     total")
        for (k, t) in segments.enumerated() {
            let cells = ["scatter_ms", "own_ms", "gather_ms", "reduce_ms", "total_ms"].map {
                String(format: "%9.2f", t[$0]!)
            }
            print(String(format: "  %7d ", k) + cells.joined(separator: " "))
        }
    }

    func run() throws {
        try reportingErrors {
            guard let input else {
                do { return try printStats() } catch let e as NetError { throw CommandFailure(description: e.message) }
            }
            let x = try NPY.read(path: input)
            do {
                let client = try RequestClient(leader: leader, reply: reply, keys: clientKeys.load())
                var latencies: [Double] = []
                var y: [Float] = []
                for r in 0..<`repeat` {
                    let t0 = nowNanoseconds()
                    do { y = try client.infer(x.values) } catch {
                        throw CommandFailure(description: "request \(r + 1): \(error)")
                    }
                    latencies.append(Double(nowNanoseconds() - t0) / 1e6)
                }
                if json {
                    print(
                        try jsonString(
                            [
                                "requests": `repeat`, "p50_ms": percentile(latencies, 0.5),
                                "p90_ms": percentile(latencies, 0.9),
                                "p99_ms": percentile(latencies, 0.99), "outputs": y.count,
                            ] as [String: Any]))
                } else if `repeat` == 1 {
                    print(
                        String(
                            format: "%d outputs in %.2f ms; largest at index %d", y.count, latencies[0],
                            y.indices.max { y[$0] < y[$1] } ?? -1))
                } else {
                    print(
                        String(
                            format:
                                "%d requests: p50 %.2f ms, p90 %.2f ms, p99 %.2f ms; %d outputs, largest at index %d",
                            `repeat`,
                            percentile(latencies, 0.5), percentile(latencies, 0.9), percentile(latencies, 0.99),
                            y.count,
                            y.indices.max { y[$0] < y[$1] } ?? -1))
                }
                if let output { try NPY.write(NPY.Array(shape: [1, y.count], values: y), path: output) }
            } catch let e as NetError { throw CommandFailure(description: e.message) }
        }
    }
}
