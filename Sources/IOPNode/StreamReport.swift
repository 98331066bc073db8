/// What a streaming leader reports per window and at the end, as the JSON lines scripts read:
///
///     {"t": 12.975, "score": 0.9731, "alert": true, "latency_ms": 183.2, "met": true}
///     {"summary": {"windows": 240, "met": 239, "missed": 1, "dropped": 0, "p50_ms": 181.0, "p99_ms": 512.0,
///                  "alerts": 3}}
///
/// Built without Foundation (the board runtime prints no floats of its own), and without allocating
/// beyond the line itself.
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

    public var json: String {
        "{\"t\": " + decimal(t, 3) + ", \"score\": " + decimal(Double(score), 4) + ", \"alert\": "
            + (alert ? "true" : "false") + ", \"latency_ms\": " + decimal(latencyMs, 1) + ", \"met\": "
            + (met ? "true" : "false") + "}"
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

    public var json: String {
        "{\"summary\": {\"windows\": " + String(windows) + ", \"met\": " + String(met) + ", \"missed\": "
            + String(missed) + ", \"dropped\": " + String(dropped) + ", \"p50_ms\": " + decimal(p50Ms, 1)
            + ", \"p99_ms\": " + decimal(p99Ms, 1) + ", \"alerts\": " + String(alerts) + "}}"
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

/// `x` with `places` decimals (half away from zero), as JSON and logs want it.
func decimal(_ x: Double, _ places: Int) -> String {
    guard x.isFinite else { return "0" }
    var scale = 1.0
    for _ in 0..<places { scale *= 10 }
    guard abs(x) * scale < 9e15 else { return x < 0 ? "-9e15" : "9e15" }
    let n = Int64(abs(x) * scale + 0.5)  // not rounded(): no libm on the board
    let whole = n / Int64(scale), frac = n % Int64(scale)
    var digits = String(frac)
    while digits.count < places { digits = "0" + digits }
    return (x < 0 && n != 0 ? "-" : "") + String(whole) + (places > 0 ? "." + digits : "")
}
