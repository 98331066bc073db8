import IOPCore
import IOPProgram

/// The calibrated model of one segment: the leader's schedule (`Leader.infer`) replayed on the
/// boards' profiles, not summed. Formulas in docs/planner.md ("Calibrated model"):
///
/// - the leader scatters in part order; each message costs its CPU (selecting the slice, handing
///   it to ZeroMQ) and then leaves on its link one after the other: the sends are serialised;
/// - a worker starts when its input has arrived and been received, computes its part (each op by
///   its kernel class and shape), and sends its result;
/// - meanwhile the leader computes its own part; results then come in over its link one after the
///   other, in the order they are ready, and each is received and placed (copied or added);
/// - last the leader reduces (bias, activation, pools) and copies the result into place.
struct SegmentTimeline {
    let cluster: Cluster

    var leader: Int { cluster.leader }

    func profile(_ d: Int) -> BoardProfile { cluster.devices[d].profile! }

    /// Milliseconds board `d` spends computing `layers`.
    func computeMs(_ layers: [Layer], board d: Int) -> Double {
        layers.reduce(0) { $0 + profile(d).milliseconds(KernelClass($1.kind), work: KernelClass.work($1.kind)) }
    }

    func copyMs(bytes: Int, board d: Int) -> Double { profile(d).milliseconds(.copy, work: Double(bytes)) }

    /// Placing a result of `count` floats in the leader's tensor: an add for a partial sum, else a copy.
    func placeMs(_ output: BoardPart.Output, count: Int) -> Double {
        output == .partialSum
            ? profile(leader).milliseconds(.reduction, work: Double(count)) : copyMs(bytes: 4 * count, board: leader)
    }

    /// One-way latency and milliseconds per byte on the link between the leader and `d`.
    func link(_ d: Int) -> (latencyMs: Double, msPerByte: Double) {
        let l = cluster.devices[leader], b = cluster.devices[d]
        let mbps = min(
            l.profile?.link?.bandwidthMbps ?? l.bandwidthMbps, b.profile?.link?.bandwidthMbps ?? b.bandwidthMbps)
        let latency = b.profile?.link?.latencyMs ?? max(l.setupMs, b.setupMs)
        return (latency, 8 / (mbps * 1e3))
    }

    /// CPU milliseconds board `d` spends sending or receiving `bytes`.
    func sendCpuMs(_ bytes: Int, board d: Int) -> Double {
        Double(bytes) * (profile(d).link?.sendCpuNsPerByte ?? 0) / 1e6
    }
    func receiveCpuMs(_ bytes: Int, board d: Int) -> Double {
        Double(bytes) * (profile(d).link?.receiveCpuNsPerByte ?? 0) / 1e6
    }

    /// The segment's latency and the longest any one board computes (the rest is moving data).
    func time(_ seg: SegmentProgram) -> (latencyMs: Double, computeMs: Double) {
        var cpu = 0.0  // the leader's own clock
        var wire = 0.0  // when the leader's link is free to send
        var ready: [(at: Double, bytes: Int, output: BoardPart.Output, count: Int, board: Int)] = []
        var longest = 0.0
        for part in seg.parts where part.board != leader {
            let d = part.board
            let inBytes = 4 * part.input.count(ofWhole: seg.inputCount)
            cpu += copyMs(bytes: inBytes, board: leader) + sendCpuMs(inBytes, board: leader)
            let (latency, msPerByte) = link(d)
            wire = max(wire, cpu) + Double(inBytes) * msPerByte
            let compute = computeMs(part.layers, board: d)
            longest = max(longest, compute)
            let outCount = outputCount(part, seg)
            let done = wire + latency + receiveCpuMs(inBytes, board: d) + compute + sendCpuMs(4 * outCount, board: d)
            ready.append((done, 4 * outCount, part.output, outCount, d))
        }
        if seg.partialCount > 0 { cpu += copyMs(bytes: 4 * seg.assembledCount, board: leader) }
        if let own = seg.parts.first(where: { $0.board == leader }) {
            if own.input != .all { cpu += copyMs(bytes: 4 * own.input.count(ofWhole: seg.inputCount), board: leader) }
            let compute = computeMs(own.layers, board: leader)
            longest = max(longest, compute)
            cpu += compute + placeMs(own.output, count: outputCount(own, seg))
        }
        var incoming = 0.0  // when the leader's link is free to receive
        for r in ready.sorted(by: { $0.at < $1.at }) {
            let (latency, msPerByte) = link(r.board)
            incoming = max(incoming, r.at) + Double(r.bytes) * msPerByte
            cpu =
                max(cpu, incoming + latency) + receiveCpuMs(r.bytes, board: leader) + placeMs(r.output, count: r.count)
        }
        let reduce = computeMs(seg.reduceLayers, board: leader)
        cpu += reduce + copyMs(bytes: 4 * seg.outputCount, board: leader)
        return (cpu, longest + reduce)
    }

    func outputCount(_ part: BoardPart, _ seg: SegmentProgram) -> Int {
        switch part.output {
        case .all: return seg.outputCount
        case .partialSum: return seg.partialCount
        case .elements(let r): return r.count
        case .rows(let r, let c, _, let w): return r.count * c * w
        }
    }
}
