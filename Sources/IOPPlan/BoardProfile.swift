import Foundation
import IOPCore

/// What a board measured about itself (`iop-node profile`, `iop-node probe`), as a cluster file's
/// per-board `profile` section holds it. With a profile the cost model times each operator by its
/// kernel class and shape, and each message by the probed link and the CPU both ends spend on it
/// (docs/planner.md, "Calibrated model"); without one it uses the board's nominal `gflops`.
public struct BoardProfile: Equatable, Sendable {
    /// Threads the kernels were timed with.
    public var threads: Int
    public var kernels: [KernelClass: KernelFit]
    public var link: LinkProfile?
    /// The share of a core the board gets while busy, and the full-speed milliseconds it gets after
    /// idling before the share binds (a board under a CPU quota; 1 and 0 for one that is not).
    public var cpuShare: Double
    public var burstMs: Double
    /// The quota's period: a wait this long gives the burst back.
    public var periodMs: Double
    /// What a trial run of a plan found the board's CPU time to be against the profile's (`iop profile
    /// --calibrate`): every CPU figure of the board, its kernels' and its link's, is multiplied by it. A board
    /// running a whole plan meets its kernels colder than a profile's repeated timings do, and shares its
    /// caches with whatever else runs there (1: not calibrated).
    public var cpuScale: Double

    public init(
        threads: Int, kernels: [KernelClass: KernelFit], link: LinkProfile?, cpuShare: Double = 1, burstMs: Double = 0,
        periodMs: Double = 0, cpuScale: Double = 1
    ) {
        self.threads = threads; self.kernels = kernels; self.link = link
        self.cpuShare = cpuShare; self.burstMs = burstMs; self.periodMs = periodMs; self.cpuScale = cpuScale
    }

    /// Expected wall milliseconds for `fullSpeedMs` of CPU work that starts after a wait of `idleMs`:
    /// the wait spans a period boundary (the allowance is back) with probability idle / period, and
    /// then the burst runs at full speed and the rest at the board's share; otherwise all of it runs
    /// at the share.
    public func wallMs(fullSpeedMs x: Double, idleMs: Double = .infinity) -> Double {
        let steady = x / cpuShare
        // A period grants share x period of CPU; a measured burst beyond that ran across a period's
        // end (the spin started late in a period), which a stretch of work cannot count on.
        let burst = periodMs > 0 ? min(burstMs, cpuShare * periodMs) : burstMs
        let fresh = x <= burst ? x : burst + (x - burst) / cpuShare
        let p = periodMs > 0 ? min(1, max(0, idleMs) / periodMs) : 1
        return p * fresh + (1 - p) * steady
    }

    /// Expected wall milliseconds for `fullSpeedMs` of CPU work that arrives, after a wait of `idleMs`,
    /// at a random moment of the quota's cycle (a worker handed its input). The wait spans a period
    /// boundary with probability idle / period: the burst is there. Otherwise the work finds the
    /// board able to run with probability `share`, and else first waits out the rest of a stall: with
    /// `x = k·β + r` (β = share × period, 0 < r ≤ β), `x + (1 − share)·((P − β)/2 + k·P + r)`.
    /// The same for work that lands at `phase` (0 ..< 1) of the cycle, counted from the start of a
    /// period's run: the board runs to share x period, stalls to the period's end, runs again. Its mean
    /// over evenly spread phases is `arrivingMs(fullSpeedMs:idleMs:)`.
    public func arrivingMs(fullSpeedMs x: Double, idleMs: Double, phase: Double) -> Double {
        guard x > 0, cpuShare < 1, periodMs > 0 else { return wallMs(fullSpeedMs: x, idleMs: idleMs) }
        let beta = cpuShare * periodMs
        var t = 0.0, left = x, at = phase * periodMs
        while true {
            if at < beta {
                let run = min(beta - at, left)
                t += run; left -= run; at += run
                if left <= 0 { break }
            }
            t += periodMs - at; at = 0
        }
        let p = min(1, max(0, idleMs) / periodMs)
        return p * wallMs(fullSpeedMs: x) + (1 - p) * t
    }

    public func arrivingMs(fullSpeedMs x: Double, idleMs: Double) -> Double {
        guard x > 0, cpuShare < 1, periodMs > 0 else { return wallMs(fullSpeedMs: x, idleMs: idleMs) }
        let beta = cpuShare * periodMs
        let k = (x / beta).rounded(.up) - 1, r = x - k * beta
        let phased = x + (1 - cpuShare) * ((periodMs - beta) / 2 + k * periodMs + r)
        let p = min(1, max(0, idleMs) / periodMs)
        return p * wallMs(fullSpeedMs: x) + (1 - p) * phased
    }

    /// Whether a CPU quota throttles the board: a share of a core granted per period.
    public var isThrottled: Bool { cpuShare < 1 && periodMs > 0 }

    /// The quota's state at `phase` (0 ..< 1) of a period for a board that ran flat out until `idleMs`
    /// ago: it used the period's allowance as fast as it could, unless its wait spans the period's start.
    public func quota(phase: Double, idleMs: Double) -> QuotaState {
        let at = phase * periodMs, busyUntil = at - max(0, idleMs)
        return QuotaState(at: at, used: busyUntil <= 0 ? 0 : min(busyUntil, cpuShare * periodMs))
    }

    /// Wall milliseconds for `fullSpeedMs` of CPU work started in state `q` (left as it is when the work is
    /// done): the work runs while the period's allowance (`share x period`) lasts, then waits for the next
    /// period, which grants it afresh. An unthrottled board runs it at `wallMs`.
    public func run(fullSpeedMs x: Double, from q: inout QuotaState) -> Double {
        guard isThrottled else { return wallMs(fullSpeedMs: x) }
        let allowance = cpuShare * periodMs
        var t = 0.0, left = x
        while left > 0 {
            let r = min(left, max(0, allowance - q.used), periodMs - q.at)
            t += r; left -= r; q.used += r; q.at += r
            if left <= 0 { break }
            // Out of allowance, or at the period's end: wait for the next period.
            t += periodMs - q.at
            q = QuotaState(at: 0, used: 0)
        }
        if q.at >= periodMs { q = QuotaState(at: 0, used: 0) }
        return t
    }

    /// State `q` after `ms` of waiting: a period's start on the way grants the allowance afresh.
    public func wait(_ ms: Double, from q: inout QuotaState) {
        guard isThrottled, ms > 0 else { return }
        q.at += ms
        if q.at >= periodMs {
            q.at = q.at.truncatingRemainder(dividingBy: periodMs); q.used = 0
        }
    }

    /// Milliseconds for `work` units of a class; a class the board did not time is costed by the
    /// closest one that it did (a conv by another conv, anything else by `copy`'s memory speed).
    public func milliseconds(_ kernel: KernelClass, work: Double) -> Double {
        guard work > 0 else { return 0 }
        let fallbacks: [KernelClass] =
            kernel.workUnit == .flop ? [.conv3x3, .conv1x1, .convStrided, .convRow, .convDepthwise] : [.copy]
        guard let fit = kernels[kernel] ?? fallbacks.lazy.compactMap({ kernels[$0] }).first else { return 0 }
        return fit.microseconds(work: work) / 1e3 * cpuScale
    }

    /// Full-speed CPU milliseconds the board spends handing one message of `bytes` to its link, or taking
    /// it from it: its bytes, and, for a message sent or received alone, the wake-ups and system calls.
    public func sendCpuMs(bytes: Double, alone: Bool = true) -> Double {
        messageCpuMs(bytes, link?.sendCpuNsPerByte ?? 0, alone: alone)
    }
    public func receiveCpuMs(bytes: Double) -> Double { messageCpuMs(bytes, link?.receiveCpuNsPerByte ?? 0) }

    func messageCpuMs(_ bytes: Double, _ nsPerByte: Double, alone: Bool = true) -> Double {
        (bytes * nsPerByte / 1e6 + (alone ? (link?.messageCpuUs ?? 0) / 1e3 : 0)) * cpuScale
    }

    static let fields: Set<String> = ["format", "threads", "seconds", "cpu", "kernels", "link", "cpu_scale"]
    static let kernelFields: Set<String> = ["unit", "overhead_us", "giga_per_s", "samples"]

    /// Reads a profile section: `iop-node profile`'s output as it is, plus an optional `link`.
    public static func parse(_ object: Any, board who: String) throws -> BoardProfile {
        func fail(_ m: String) -> ClusterError { ClusterError(path: nil, message: "\(who): profile: \(m)") }
        guard let root = object as? [String: Any] else { throw fail("not a JSON object") }
        for key in root.keys where !fields.contains(key) {
            throw fail("unknown field '\(key)' (expected \(fields.sorted().joined(separator: ", ")))")
        }
        if let format = root["format"], format as? String != "iop-profile/1" {
            throw fail("format is '\(format)', expected 'iop-profile/1' (made by iop-node profile)")
        }
        guard let threads = (root["threads"] as? NSNumber)?.intValue, threads >= 1 else {
            throw fail("missing or non-positive field 'threads'")
        }
        guard let list = root["kernels"] as? [String: Any], !list.isEmpty else {
            throw fail("missing field 'kernels' (an object of kernel classes, as iop-node profile prints)")
        }
        var kernels: [KernelClass: KernelFit] = [:]
        for (name, value) in list {
            guard let kernel = KernelClass(rawValue: name) else {
                let known = KernelClass.allCases.map(\.rawValue).joined(separator: ", ")
                throw fail("unknown kernel class '\(name)' (expected one of \(known))")
            }
            guard let fit = value as? [String: Any] else { throw fail("kernel '\(name)' is not an object") }
            for key in fit.keys where !kernelFields.contains(key) {
                throw fail("kernel '\(name)': unknown field '\(key)'")
            }
            let overhead = (fit["overhead_us"] as? NSNumber)?.doubleValue ?? -1
            let rate = (fit["giga_per_s"] as? NSNumber)?.doubleValue ?? 0
            guard overhead >= 0, overhead.isFinite, rate > 0, rate.isFinite else {
                throw fail("kernel '\(name)' needs overhead_us >= 0 and giga_per_s > 0")
            }
            kernels[kernel] = KernelFit(overheadUs: overhead, gigaPerSecond: rate)
        }
        let link = try root["link"].map { try LinkProfile.parse($0, fail: fail) }
        var scale = 1.0
        if let value = root["cpu_scale"] {
            guard let v = (value as? NSNumber)?.doubleValue, v > 0, v.isFinite else {
                throw fail("'cpu_scale' must be a number > 0 (iop profile --calibrate writes it)")
            }
            scale = v
        }
        var share = 1.0, burst = 0.0, period = 0.0
        if let cpu = root["cpu"] {
            guard let o = cpu as? [String: Any], let s = (o["share"] as? NSNumber)?.doubleValue,
                let b = (o["burst_ms"] as? NSNumber)?.doubleValue, let p = (o["period_ms"] as? NSNumber)?.doubleValue,
                s > 0, s <= 1, b >= 0, b.isFinite, p >= 0, p.isFinite, o.count == 3
            else { throw fail("'cpu' must be {\"share\": 0 < s <= 1, \"burst_ms\": >= 0, \"period_ms\": >= 0}") }
            share = s; burst = b; period = p
        }
        return BoardProfile(
            threads: threads, kernels: kernels, link: link, cpuShare: share, burstMs: burst, periodMs: period,
            cpuScale: scale)
    }

    /// The section as it is written into a cluster file.
    public var jsonObject: [String: Any] {
        var kernelObjects: [String: Any] = [:]
        for (k, fit) in kernels {
            kernelObjects[k.rawValue] = [
                "unit": k.workUnit.rawValue, "overhead_us": fit.overheadUs, "giga_per_s": fit.gigaPerSecond,
            ]
        }
        var object: [String: Any] = [
            "format": "iop-profile/1", "threads": threads, "kernels": kernelObjects,
            "cpu": ["share": cpuShare, "burst_ms": burstMs, "period_ms": periodMs],
        ]
        if let link { object["link"] = link.jsonObject }
        if cpuScale != 1 { object["cpu_scale"] = cpuScale }
        return object
    }
}

/// Where a board under a CPU quota stands in the quota's period (`at`, ms since the period began) and how
/// much of the period's allowance it has used (full-speed ms): what decides whether work handed to it runs
/// at once or stalls. Carried through a plan in order (`CostModel.costs`), it tells a worker that never uses
/// up its allowance from one that does.
public struct QuotaState: Sendable, Equatable {
    public var at: Double, used: Double
    public init(at: Double, used: Double) { self.at = at; self.used = used }
}

/// A board's link to the leader as probed (for the leader: its own end of every link): one-way
/// latency per message, bandwidth, and the CPU time this board spends per byte it sends or receives.
public struct LinkProfile: Equatable, Sendable {
    public var latencyMs: Double
    public var bandwidthMbps: Double
    public var sendCpuNsPerByte: Double
    public var receiveCpuNsPerByte: Double
    /// Bytes the link passes at once after a silence: a shaped link's token bucket (0 for a plain one).
    public var burstBytes: Double
    /// Probed over CURVE, as the cluster's links run: encryption is in the CPU per byte.
    public var curve: Bool
    /// CPU µs this board spends on a message sent or received alone, beyond its bytes (libzmq's I/O thread
    /// waking, the system calls): what many small messages cost a throttled board.
    public var messageCpuUs: Double

    public init(
        latencyMs: Double, bandwidthMbps: Double, sendCpuNsPerByte: Double, receiveCpuNsPerByte: Double,
        burstBytes: Double = 0, curve: Bool = false, messageCpuUs: Double = 0
    ) {
        self.latencyMs = latencyMs; self.bandwidthMbps = bandwidthMbps
        self.sendCpuNsPerByte = sendCpuNsPerByte; self.receiveCpuNsPerByte = receiveCpuNsPerByte
        self.burstBytes = burstBytes; self.curve = curve; self.messageCpuUs = messageCpuUs
    }

    static let fields = [
        "latency_ms", "bandwidth_mbps", "send_cpu_ns_per_byte", "receive_cpu_ns_per_byte", "burst_bytes",
        "message_cpu_us",
    ]
    static let flags = ["curve"]

    static func parse(_ object: Any, fail: (String) -> ClusterError) throws -> LinkProfile {
        guard let o = object as? [String: Any] else { throw fail("'link' is not an object") }
        for key in o.keys where !fields.contains(key) && !flags.contains(key) {
            throw fail("link: unknown field '\(key)' (expected \((fields + flags).joined(separator: ", ")))")
        }
        guard o["curve"] == nil || o["curve"] as? Bool != nil else {
            throw fail("link: field 'curve' must be true or false")
        }
        var v: [Double] = []
        // burst_bytes and message_cpu_us are optional: profiles from before them model neither.
        for f in fields where (f != "burst_bytes" && f != "message_cpu_us") || o[f] != nil {
            guard let x = (o[f] as? NSNumber)?.doubleValue, x >= 0, x.isFinite else {
                throw fail("link: field '\(f)' must be a number >= 0")
            }
            v.append(x)
        }
        guard v[1] > 0 else { throw fail("link: field 'bandwidth_mbps' must be positive") }
        func optional(_ key: String) -> Double { (o[key] as? NSNumber)?.doubleValue ?? 0 }
        return LinkProfile(
            latencyMs: v[0], bandwidthMbps: v[1], sendCpuNsPerByte: v[2], receiveCpuNsPerByte: v[3],
            burstBytes: optional("burst_bytes"), curve: o["curve"] as? Bool ?? false,
            messageCpuUs: optional("message_cpu_us"))
    }

    public var jsonObject: [String: Any] {
        [
            "latency_ms": latencyMs, "bandwidth_mbps": bandwidthMbps, "send_cpu_ns_per_byte": sendCpuNsPerByte,
            "receive_cpu_ns_per_byte": receiveCpuNsPerByte, "burst_bytes": burstBytes, "curve": curve,
            "message_cpu_us": messageCpuUs,
        ]
    }
}
