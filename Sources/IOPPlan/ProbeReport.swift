import Foundation

/// What `iop-node probe --connect` printed on the leader for its link to one worker.
public struct ProbeReport: Equatable, Sendable {
    public var latencyMs: Double
    public var bandwidthMbps: Double
    /// CPU ns per byte on the probing end (the leader) and on the served end (the worker).
    public var leaderSendNsPerByte: Double, leaderReceiveNsPerByte: Double
    public var workerSendNsPerByte: Double, workerReceiveNsPerByte: Double
    /// CPU µs per message sent or received alone, on each end (0 from a probe that did not measure it).
    public var leaderMessageCpuUs: Double = 0, workerMessageCpuUs: Double = 0
    /// Bytes the link passes at once after a silence (a token bucket; 0 for a plain link).
    public var burstBytes: Double = 0
    /// The probe ran over CURVE (`iop-node probe --keys`).
    public var curve = false

    public init(
        latencyMs: Double, bandwidthMbps: Double, leaderSendNsPerByte: Double, leaderReceiveNsPerByte: Double,
        workerSendNsPerByte: Double, workerReceiveNsPerByte: Double
    ) {
        self.latencyMs = latencyMs; self.bandwidthMbps = bandwidthMbps
        self.leaderSendNsPerByte = leaderSendNsPerByte; self.leaderReceiveNsPerByte = leaderReceiveNsPerByte
        self.workerSendNsPerByte = workerSendNsPerByte; self.workerReceiveNsPerByte = workerReceiveNsPerByte
    }

    public static func parse(_ data: Data, path: String) throws -> ProbeReport {
        func fail(_ m: String) -> ClusterError { ClusterError(path: path, message: m) }
        guard let o = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw fail("not a JSON object (expected iop-node probe --connect's output)")
        }
        guard o["format"] as? String == "iop-probe/1" else { throw fail("field 'format' is not 'iop-probe/1'") }
        func number(_ object: [String: Any]?, _ key: String, _ where_: String) throws -> Double {
            guard let v = (object?[key] as? NSNumber)?.doubleValue, v >= 0, v.isFinite else {
                throw fail("missing or negative field '\(where_)\(key)'")
            }
            return v
        }
        let local = o["local"] as? [String: Any], peer = o["peer_cpu"] as? [String: Any]
        let measured = ProbeReport(
            latencyMs: try number(o, "latency_ms", ""), bandwidthMbps: try number(o, "bandwidth_mbps", ""),
            leaderSendNsPerByte: try number(local, "send_cpu_ns_per_byte", "local."),
            leaderReceiveNsPerByte: try number(local, "receive_cpu_ns_per_byte", "local."),
            workerSendNsPerByte: try number(peer, "send_cpu_ns_per_byte", "peer_cpu."),
            workerReceiveNsPerByte: try number(peer, "receive_cpu_ns_per_byte", "peer_cpu."))
        var report = measured
        if o["burst_bytes"] != nil { report.burstBytes = try number(o, "burst_bytes", "") }
        if local?["message_cpu_us"] != nil { report.leaderMessageCpuUs = try number(local, "message_cpu_us", "local.") }
        if peer?["message_cpu_us"] != nil {
            report.workerMessageCpuUs = try number(peer, "message_cpu_us", "peer_cpu.")
        }
        report.curve = o["curve"] as? Bool ?? false
        guard report.bandwidthMbps > 0 else { throw fail("field 'bandwidth_mbps' must be positive") }
        return report
    }

    /// Each board's link section from the leader's probes (keyed by worker index): a worker gets
    /// its link's latency and rate and its own CPU per byte; the leader, whose link every message
    /// crosses, gets the fastest rate it reached (its own interface), the median latency and the
    /// mean of its CPU per byte and per message over the probes. Boards nobody probed get none.
    public static func links(_ probes: [Int: ProbeReport], boards: Int, leader: Int) -> [LinkProfile?] {
        var links = [LinkProfile?](repeating: nil, count: boards)
        for (d, p) in probes where d != leader {
            links[d] = LinkProfile(
                latencyMs: p.latencyMs, bandwidthMbps: p.bandwidthMbps, sendCpuNsPerByte: p.workerSendNsPerByte,
                receiveCpuNsPerByte: p.workerReceiveNsPerByte, burstBytes: p.burstBytes, curve: p.curve,
                messageCpuUs: p.workerMessageCpuUs)
        }
        let all = probes.filter { $0.key != leader }.values.sorted { $0.latencyMs < $1.latencyMs }
        if !all.isEmpty {
            let n = Double(all.count)
            links[leader] = LinkProfile(
                latencyMs: all[all.count / 2].latencyMs, bandwidthMbps: all.map(\.bandwidthMbps).max()!,
                sendCpuNsPerByte: all.reduce(0) { $0 + $1.leaderSendNsPerByte } / n,
                receiveCpuNsPerByte: all.reduce(0) { $0 + $1.leaderReceiveNsPerByte } / n,
                burstBytes: all.map(\.burstBytes).sorted()[all.count / 2], curve: all.allSatisfy(\.curve),
                messageCpuUs: all.reduce(0) { $0 + $1.leaderMessageCpuUs } / n)
        }
        return links
    }
}
