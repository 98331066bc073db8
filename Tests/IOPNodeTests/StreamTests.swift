import CAllocCounter
import Foundation
import IOPAudio
import IOPCore
import IOPModel
import IOPNet
import IOPNode
import IOPPlan
import IOPProgram
import PlanTestSupport
import Testing

/// A listening model whose score is known by construction: a conv that copies the log-mel patch into
/// 4 channels (shifted by +10, so the ReLU keeps it whole), then one linear output scoring the mean of
/// the upper 24 mel bands against 0.5 (gain 2). Quiet noise (amplitude 100) has a mean near -1.6 there
/// and scores about 0.015; loud broadband noise (amplitude 8000) has about 2.7 and scores about 0.99
/// (frontend.py gives both means). So planted bursts of loud noise are the leaks, wherever the
/// cluster splits the model.
func loudnessDetector(consecutive: Int = 2) -> Network {
    let audio = AudioParameters()
    let frames = audio.patchFrames, bands = audio.melBins, channels = 4
    let conv = ConvGeometry(
        inChannels: 1, inHeight: frames, inWidth: bands, outChannels: channels, kernelH: 3, kernelW: 3, padTop: 1,
        padLeft: 1, padBottom: 1, padRight: 1)
    var convWeights = [Float](repeating: 0, count: conv.weightCount)
    for c in 0..<channels { convWeights[c * 9 + 4] = 1 }  // the centre tap
    let features = channels * frames * bands
    let high = 40..<bands, gain: Float = 2
    var weights = [Float](repeating: 0, count: features)
    for c in 0..<channels {
        for f in 0..<frames {
            for b in high { weights[(c * frames + f) * bands + b] = gain / Float(channels * frames * high.count) }
        }
    }
    return Network(
        name: "loudness", inputShape: [1, 1, frames, bands],
        layers: [
            Layer(
                name: "copy", kind: .conv(conv, .relu), weights: convWeights,
                bias: [Float](repeating: 10, count: channels)),
            Layer(
                name: "score", kind: .linear(LinearGeometry(inFeatures: features, outFeatures: 1), .none),
                weights: weights, bias: [-gain * (10 + 0.5)]),
        ],
        stream: StreamSpec(audio: audio, alerts: AlertRule(threshold: 0.5, consecutive: consecutive)))
}

/// Quiet noise with loud bursts at `events` (seconds), as int16 little-endian bytes.
func plantedStream(seconds: Double, events: [Range<Double>], seed: UInt64 = 3) -> [UInt8] {
    var rng = SplitMix64(seed: seed)
    let n = Int(seconds * 16000)
    var bytes = [UInt8](repeating: 0, count: 2 * n)
    for i in 0..<n {
        let (g, _) = rng.nextGaussianPair()
        let t = Double(i) / 16000
        let amplitude = events.contains { $0.contains(t) } ? 8000.0 : 100.0
        let v = Int16(clamping: Int((g * amplitude).rounded()))
        bytes[2 * i] = UInt8(truncatingIfNeeded: v)
        bytes[2 * i + 1] = UInt8(truncatingIfNeeded: v >> 8)
    }
    return bytes
}

/// The loudness detector on the mixed example cluster: a leader and a worker thread per other board.
func listeningCluster(_ kind: PlannerKind) throws -> (Leader, stop: () -> Void) {
    let net = loudnessDetector()
    let cluster = try Examples.cluster("mixed-pi4-pi3")
    let plan = try Planner(network: net, cluster: cluster).plan(kind)
    let (leader, threads) = try startCluster(cluster, plan: plan, network: net, context: try Context())
    return (
        leader,
        {
            leader.shutdown(); for t in threads { t.join() }
        }
    )
}

@Suite(.serialized, .timeLimit(.minutes(3))) struct StreamTests {
    static let events: [Range<Double>] = [5..<9, 13..<16]

    /// Three boards (leader and two worker threads over ZeroMQ on loopback): every alert starts inside
    /// or just before a planted event (a window that is half loud already scores high) and is raised
    /// while it lasts, each event raises exactly one, and every window is answered.
    @Test(arguments: [PlannerKind.oc, .coedge, .iop])
    func alertsLandInsidePlantedEvents(_ kind: PlannerKind) throws {
        let (leader, stop) = try listeningCluster(kind)
        defer { stop() }
        let audio = plantedStream(seconds: 20, events: Self.events)
        var alerts: [(start: Double, t: Double)] = []
        var windows: [WindowReport] = []
        let summary = try audio.withUnsafeBytes { b throws(NodeError) in
            try leader.stream(.samples(b, realtime: false), deadlineNs: 500_000_000) { report, start, _ in
                windows.append(report)
                if let start { alerts.append((start, report.t)) }
            }
        }
        let expected = AudioParameters().patchCount(samples: audio.count / 2)
        #expect(summary.windows == expected && windows.count == expected && summary.dropped == 0)
        #expect(summary.alerts == Self.events.count && alerts.count == Self.events.count, "\(alerts)")
        for (event, alert) in zip(Self.events, alerts) {
            #expect(alert.start >= event.lowerBound - 1 && alert.start < event.upperBound, "\(alert) for \(event)")
            #expect(alert.t >= event.lowerBound && alert.t <= event.upperBound + 1, "\(alert) for \(event)")
        }
        // Windows wholly in quiet sound score low, wholly inside an event high.
        for w in windows {
            let span = (w.t - 0.975)..<w.t
            if !Self.events.contains(where: { $0.overlaps(span) }) { #expect(w.score < 0.1, "\(w)") }
            if Self.events.contains(where: { $0.lowerBound <= span.lowerBound && span.upperBound <= $0.upperBound }) {
                #expect(w.score > 0.9, "\(w)")
            }
        }
    }

    /// Standard input: raw S16LE through a pipe; the writer closing it is a clean stop after the
    /// windows it delivered.
    @Test func closingTheInputIsACleanStop() throws {
        let (leader, stop) = try listeningCluster(.oc)
        defer { stop() }
        var fds: [Int32] = [0, 0]
        try #require(pipe(&fds) == 0)
        let audio = plantedStream(seconds: 4, events: [])
        let writeEnd = fds[1]
        let writer = Thread {
            // Half a second at a time, like a microphone, then close.
            var at = 0
            while at < audio.count {
                let n = min(16000, audio.count - at)
                _ = audio[at..<(at + n)].withUnsafeBytes { write(writeEnd, $0.baseAddress, n) }
                at += n
                usleep(100_000)
            }
            close(writeEnd)
        }
        writer.start()
        var count = 0
        let summary = try leader.stream(.rawS16LE(fd: fds[0]), deadlineNs: 500_000_000) { _, _, _ in count += 1 }
        close(fds[0])
        #expect(summary.windows == count && count >= 1)
        #expect(summary.windows + summary.dropped == AudioParameters().patchCount(samples: audio.count / 2))
        #expect(summary.alerts == 0)
    }

    /// The leader's thread allocates nothing per window, JSON line included, beyond libzmq's copy of each
    /// message it sends:
    /// a stream twice as long allocates no more than the extra messages (setup allocations cancel out).
    @Test func windowsAllocateOnlyLibzmqsMessageBuffers() throws {
        let (leader, stop) = try listeningCluster(.oc)
        defer { stop() }
        func measure(seconds: Double) throws -> (allocations: Int, messages: Int, windows: Int) {
            let audio = plantedStream(seconds: seconds, events: [2..<3])
            let before = leader.messagesSent[leader.leaderIndex]
            iop_alloc_counter_reset_rendezvous()
            iop_alloc_counter_enroll(1)
            defer { iop_alloc_counter_leave() }
            var windows = 0
            // Each window's JSON line is written too, as iop-node prints it.
            var line = ReportLine()
            defer { line.deallocate() }
            iop_alloc_counter_start()
            _ = try audio.withUnsafeBytes { b throws(NodeError) in
                try leader.stream(.samples(b, realtime: false), deadlineNs: 500_000_000) { report, _, _ in
                    report.write(to: &line)
                    windows += 1
                }
            }
            let allocations = iop_alloc_counter_stop()
            return (allocations, leader.messagesSent[leader.leaderIndex] - before, windows)
        }
        _ = try measure(seconds: 3)  // warm-up
        let short = try measure(seconds: 5), long = try measure(seconds: 10)
        #expect(long.windows > short.windows && long.messages > short.messages)
        #expect(
            long.allocations - short.allocations <= long.messages - short.messages,
            "\(long.allocations - short.allocations) allocations for \(long.windows - short.windows) more windows")
    }
}

/// The JSON lines scripts read, written into a fixed buffer: fields, decimals and rounding by hand.
@Test func reportLinesAreTheDocumentedJSON() {
    var line = ReportLine()
    defer { line.deallocate() }
    func text() -> String { String(decoding: line.bytes, as: UTF8.self) }
    WindowReport(t: 12.975, score: 0.97316, alert: true, alertStart: 11.5, latencyMs: 183.25, met: true)
        .write(to: &line)
    #expect(text() == #"{"t": 12.975, "score": 0.9732, "alert": true, "latency_ms": 183.3, "met": true}"#)
    WindowReport(t: 0.975, score: 0, alert: false, alertStart: nil, latencyMs: 1204.04, met: false).write(to: &line)
    #expect(text() == #"{"t": 0.975, "score": 0.0000, "alert": false, "latency_ms": 1204.0, "met": false}"#)
    var s = StreamSummary()
    s.windows = 240; s.met = 239; s.missed = 1; s.dropped = 0; s.alerts = 3; s.p50Ms = 181.04; s.p99Ms = 512
    s.write(to: &line)
    #expect(
        text() == #"{"summary": {"windows": 240, "met": 239, "missed": 1, "dropped": 0, "p50_ms": 181.0, "#
            + #""p99_ms": 512.0, "alerts": 3}}"#)
    line.clear()
    line.append(-0.05, places: 1); line.append(" "); line.append(-1234); line.append(" ");
    line.append(0.0999, places: 2)
    #expect(text() == "-0.1 -1234 0.10")
}
