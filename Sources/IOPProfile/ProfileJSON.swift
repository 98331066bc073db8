import IOPCore

/// Decimal text for JSON without Foundation (the board runtime cannot print arbitrary floats in
/// Embedded Swift): `places` decimals, rounded half away from zero; not-finite values write 0.
public func decimal(_ x: Double, places: Int = 4) -> String {
    guard x.isFinite else { return "0" }
    var scale = 1.0
    for _ in 0..<places { scale *= 10 }
    let magnitude = (abs(x) * scale).rounded()
    guard magnitude < 9e15 else { return x < 0 ? "-9e15" : "9e15" }
    let units = Int(magnitude)
    let whole = units / Int(scale), fraction = units % Int(scale)
    var digits = String(fraction)
    while digits.count < places { digits = "0" + digits }
    let sign = x < 0 && units != 0 ? "-" : ""
    return places == 0 ? sign + String(whole) : sign + String(whole) + "." + digits
}

/// The profile `iop-node profile` prints, and `iop profile` reads into a cluster file:
///
///     {"format": "iop-profile/1", "threads": 1, "seconds": 9.8,
///      "cpu": {"share": 0.1, "burst_ms": 2.5, "period_ms": 25},
///      "kernels": {"conv_3x3": {"unit": "flop", "overhead_us": 12.5, "giga_per_s": 3.1,
///                               "samples": [[14450688, 4674.2], [231211008, 74790.5]]}, ...}}
///
/// A class's time for `work` units is `overhead_us + work / (giga_per_s * 1e3)` microseconds, at the
/// board's steady speed; `cpu` says how much faster it runs right after idling (`CPUAllowance`).
public enum ProfileJSON {
    public static let format = "iop-profile/1"

    public static func kernels(threads: Int, seconds: Double, cpu: CPUAllowance, timings: [KernelTiming]) -> String {
        var text =
            "{\"format\": \"" + format + "\", \"threads\": " + String(threads) + ", \"seconds\": "
            + decimal(seconds, places: 1) + ",\n \"cpu\": {\"share\": " + decimal(cpu.share) + ", \"burst_ms\": "
            + decimal(cpu.burstMs, places: 3) + ", \"period_ms\": " + decimal(cpu.periodMs, places: 3)
            + "},\n \"kernels\": {"
        var first = true
        for (kernel, fit) in KernelProfiler.fits(timings) {
            text +=
                (first ? "\n" : ",\n") + "  \"" + kernel.rawValue + "\": {\"unit\": \""
                + kernel.workUnit.rawValue + "\", \"overhead_us\": " + decimal(fit.overheadUs, places: 2)
                + ", \"giga_per_s\": " + decimal(fit.gigaPerSecond, places: 4) + ", \"samples\": ["
            var firstSample = true
            for t in timings where t.kernel == kernel {
                text +=
                    (firstSample ? "" : ", ") + "[" + decimal(t.work, places: 0) + ", "
                    + decimal(t.microseconds, places: 1) + "]"
                firstSample = false
            }
            text += "]}"
            first = false
        }
        return text + "\n }}"
    }
}

extension ProfileJSON {
    public static let probeFormat = "iop-probe/1"

    /// What `iop-node probe --connect` prints: the link's latency and rate, CPU per byte and per lone
    /// message at each end ("local" is the probing board, the leader in a cluster), and every burst.
    public static func link(peer: String, curve: Bool, _ r: LinkProbe.Result) -> String {
        var text =
            "{\"format\": \"" + probeFormat + "\", \"peer\": \"" + peer + "\", \"curve\": " + (curve ? "true" : "false")
            + ", \"latency_ms\": "
            + decimal(r.latencyMs) + ", \"bandwidth_mbps\": " + decimal(r.bandwidthMbps, places: 2)
            + ", \"burst_bytes\": " + decimal(r.burstBytes, places: 0)
            + ",\n \"local\": {\"send_cpu_ns_per_byte\": " + decimal(r.localSendNsPerByte)
            + ", \"receive_cpu_ns_per_byte\": " + decimal(r.localReceiveNsPerByte)
            + ", \"message_cpu_us\": " + decimal(r.localMessageCpuUs, places: 2)
            + "},\n \"peer_cpu\": {\"send_cpu_ns_per_byte\": " + decimal(r.peerSendNsPerByte)
            + ", \"receive_cpu_ns_per_byte\": " + decimal(r.peerReceiveNsPerByte)
            + ", \"message_cpu_us\": " + decimal(r.peerMessageCpuUs, places: 2) + "},\n \"bursts\": ["
        var first = true
        for (direction, bursts) in [("push", r.push), ("pull", r.pull)] {
            for b in bursts {
                text +=
                    (first ? "\n" : ",\n") + "  {\"direction\": \"" + direction + "\", \"bytes\": "
                    + String(b.bytes) + ", \"messages\": " + String(b.messages) + ", \"ms\": "
                    + decimal(Double(b.wallNs) / 1e6, places: 3) + ", \"mbps\": "
                    + decimal(r.megabitsPerSecond(b), places: 2) + ", \"sender_cpu_ms\": "
                    + decimal(Double(b.senderCpuNs) / 1e6, places: 3) + ", \"receiver_cpu_ms\": "
                    + decimal(Double(b.receiverCpuNs) / 1e6, places: 3) + "}"
                first = false
            }
        }
        return text + "\n ]}"
    }
}
