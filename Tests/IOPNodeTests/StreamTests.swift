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

@Suite(.serialized, .timeLimit(.minutes(10))) struct StreamTests {
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
