/// What a streaming leader reports per window and at the end, as the JSON lines scripts read:
///
///     {"t": 12.975, "score": 0.9731, "alert": true, "latency_ms": 183.2, "met": true}
///     {"summary": {"windows": 240, "met": 239, "missed": 1, "dropped": 0, "p50_ms": 181.0, "p99_ms": 512.0,
///                  "alerts": 3}}
///
/// Written into a fixed `ReportLine` without Foundation (the board runtime prints no floats of its
/// own) and without allocating, so a stream of months costs no heap.
public struct WindowReport: Equatable, Sendable {
    /// End of the window, in seconds of audio.
    public var t: Double
    /// The leak score, 0 to 1.
    public var score: Float
    /// Whether an alert is on after this window (debounced).
    public var alert: Bool
    /// When this window starts an alert: the alert's start, in seconds of audio (the first window over
    /// the threshold of the run that raised it).
    public var alertStart: Double?
    /// From the window's last sample being available to its answer.
    public var latencyMs: Double
    /// Whether the answer came within the deadline.
    public var met: Bool

    public init(t: Double, score: Float, alert: Bool, alertStart: Double?, latencyMs: Double, met: Bool) {
        self.t = t; self.score = score; self.alert = alert; self.alertStart = alertStart
        self.latencyMs = latencyMs; self.met = met
    }

    /// The JSON line, without its newline.
    public func write(to line: inout ReportLine) {
        line.clear()
        line.append("{\"t\": "); line.append(t, places: 3)
        line.append(", \"score\": "); line.append(Double(score), places: 4)
        line.append(", \"alert\": "); line.append(alert)
        line.append(", \"latency_ms\": "); line.append(latencyMs, places: 1)
        line.append(", \"met\": "); line.append(met)
        line.append("}")
    }
}

/// The whole stream: windows answered, met or missed, dropped because the cluster fell behind, the
/// latency percentiles and the alerts raised.
public struct StreamSummary: Equatable, Sendable {
    public var windows = 0, met = 0, missed = 0, dropped = 0, alerts = 0
    public var p50Ms = 0.0, p99Ms = 0.0
    /// The input ended before its header said (a truncated WAV file).
    public var truncated = false
    public init() {}

    /// The summary line, without its newline.
    public func write(to line: inout ReportLine) {
        line.clear()
        line.append("{\"summary\": {\"windows\": "); line.append(windows)
        line.append(", \"met\": "); line.append(met)
        line.append(", \"missed\": "); line.append(missed)
        line.append(", \"dropped\": "); line.append(dropped)
        line.append(", \"p50_ms\": "); line.append(p50Ms, places: 1)
        line.append(", \"p99_ms\": "); line.append(p99Ms, places: 1)
        line.append(", \"alerts\": "); line.append(alerts)
        line.append("}}")
    }
}

/// Latency percentiles over a stream of any length in fixed memory: 0.1 ms buckets up to 10 s, and one
/// bucket for everything slower. Percentiles are exact to the bucket.
public struct LatencyHistogram {
    static let bucketMs = 0.1
    static let buckets = 100_000
    var counts: [UInt32]
    public private(set) var count = 0

    public init() { counts = [UInt32](repeating: 0, count: LatencyHistogram.buckets + 1) }

    public mutating func record(_ ms: Double) {
        let b = ms <= 0 ? 0 : min(LatencyHistogram.buckets, Int(ms / LatencyHistogram.bucketMs))
        counts[b] &+= 1
        count += 1
    }

    /// The smallest latency at or below which a `p` share of the records lie (the bucket's upper edge).
    public func percentile(_ p: Double) -> Double {
        guard count > 0 else { return 0 }
        let exact = p * Double(count)
        let rank = max(1, Int(exact) + (Double(Int(exact)) < exact ? 1 : 0))
        var seen = 0
        for (b, c) in counts.enumerated() {
            seen += Int(c)
            if seen >= rank { return Double(b + 1) * LatencyHistogram.bucketMs }
        }
        return Double(LatencyHistogram.buckets) * LatencyHistogram.bucketMs
    }
}

/// One report line in a buffer allocated once: text, integers and fixed-point decimals appended
/// without String or Foundation. A line longer than the buffer is cut, never overrun.
public struct ReportLine {
    let buffer: UnsafeMutableRawBufferPointer
    public private(set) var count = 0

    /// Room for one line of `capacity` bytes (the caller deallocates with `deallocate`).
    public init(capacity: Int = 256) { buffer = .allocate(byteCount: capacity, alignment: 8) }
    public func deallocate() { buffer.deallocate() }

    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: buffer[0..<count]) }
    public mutating func clear() { count = 0 }

    mutating func byte(_ b: UInt8) {
        guard count < buffer.count else { return }
        buffer[count] = b
        count += 1
    }

    public mutating func append(_ s: StaticString) {
        s.withUTF8Buffer { for b in $0 { byte(b) } }
    }

    public mutating func append(_ flag: Bool) { append(flag ? "true" : "false") }

    public mutating func append(_ n: Int) {
        if n < 0 { byte(0x2D) }
        var v = n.magnitude, digits: (UInt64, Int) = (0, 0)
        // Reverse the decimal digits into a number, then write them back in order.
        repeat { digits.0 = digits.0 * 10 + UInt64(v % 10); digits.1 += 1; v /= 10 } while v > 0
        for _ in 0..<digits.1 { byte(0x30 + UInt8(digits.0 % 10)); digits.0 /= 10 }
    }

    /// `x` with `places` decimals (half away from zero); beyond ±9e15 it writes the bound.
    public mutating func append(_ x: Double, places: Int) {
        var scale = 1.0
        for _ in 0..<places { scale *= 10 }
        guard x.isFinite, abs(x) * scale < 9e15 else { return append(x < 0 ? "-9e15" : (x.isNaN ? "0" : "9e15")) }
        let n = Int(abs(x) * scale + 0.5)  // not rounded(): no libm on the board
        if x < 0 && n != 0 { byte(0x2D) }
        append(n / Int(scale))
        guard places > 0 else { return }
        byte(0x2E)
        var frac = n % Int(scale), divisor = Int(scale) / 10
        for _ in 0..<places {
            byte(0x30 + UInt8(frac / divisor))
            frac %= divisor
            divisor = max(divisor / 10, 1)
        }
    }
}
