import Foundation
import Glibc
import IOPNet
import IOPPlan
import IOPProgram
import PlanTestSupport
import TestSupport
import Testing

/// `iop-node leader --audio` as the service a plant runs: a leader and a worker process streaming the loudness
/// detector (PlanTestSupport: loud planted bursts are the leaks) in real time, with `--alerts` pushing each
/// alert to a PULL socket the test binds and systemd's STATUS= line going to a notify socket the test owns.
/// Both are checked against the leader's own JSON lines on stdout.
@Suite(.timeLimit(.minutes(10))) struct StreamServiceTests {
    /// 10 s of quiet noise with two loud bursts; the detector alerts after K = 2 windows over 0.5.
    static let seconds = 10.0
    static let events: [Range<Double>] = [2..<4, 5.5..<7.5]
    static let patchSeconds = 0.975, hopSeconds = 0.5, consecutive = 2

    /// The planted recording as a WAV file and the loudness detector compiled for two local boards (node0
    /// leads, node1 works), as `iop compile --nodes 2` would write a bundle.
    static func fixture(_ name: String) throws -> (wav: String, bundle: String) {
        let wav = temporaryPath(name + ".wav")
        let bytes = plantedStream(seconds: seconds, events: events)
        let samples = bytes.withUnsafeBytes { Array($0.bindMemory(to: Int16.self)) }  // little-endian host
        try writeWAV(wav, samples: samples)
        let net = loudnessDetector(consecutive: consecutive)
        let cluster = Cluster(
            devices: (0..<2).map {
                DeviceSpec(
                    name: "node\($0)", endpoint: "tcp://127.0.0.1:0", gflops: 6, memoryBudgetBytes: 64 << 20,
                    bandwidthMbps: 10_000, setupMs: 0.1, threads: 1)
            }, leader: 0)
        let plan = try Planner(network: net, cluster: cluster).plan(.oc)
        try #require(plan.costs.contains { $0.weightBytes[1] > 0 }, "the plan should give the worker a share")
        let bundle = temporaryPath(name + ".iop")
        try Data(ProgramBundle.compile(plan, network: net)).write(to: URL(fileURLWithPath: bundle))
        return (wav, bundle)
    }

    /// The worker, node1, registering with the leader at `leader`.
    static func worker(leader: String) throws -> NodeProcess {
        try NodeProcess(
            [
                "worker", "--name", "node1", "--listen", "tcp://127.0.0.1:*", "--leader", leader,
                "--memory-budget", "64MiB",
            ], environment: [:])
    }

    /// Streams `wav` in real time through a worker and a leader process; returns both once the leader has
    /// exited (its status checked) and printed its summary.
    static func stream(
        _ f: (wav: String, bundle: String), leaderArguments: [String] = [], environment: [String: String] = [:]
    ) throws -> NodeProcess {
        let listen = "tcp://127.0.0.1:\(freeLoopbackPort())"
        let worker = try Self.worker(leader: listen)
        let leader = try NodeProcess(
            ["leader", "--bundle", f.bundle, "--listen", listen, "--audio", f.wav, "--realtime"] + leaderArguments,
            environment: environment)
        let status = leader.exitStatus(within: 60)
        #expect(status == 0, "\(leader.stderr)")
        #expect(worker.exitStatus(within: 10) == 0, "\(worker.stderr)")
        #expect(leader.waitLine(prefix: "{\"summary\": ", seconds: 5) != nil, "\(leader.stdout)")
        return leader
    }

    /// The leader's JSON lines: the windows, in order, and the summary.
    static func jsonLines(_ stdout: String) throws -> (windows: [[String: Any]], summary: [String: Any]) {
        let objects = try stdout.split(separator: "\n").filter { $0.hasPrefix("{") }.map {
            try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any], "\($0)")
        }
        let summary = try #require(objects.last?["summary"] as? [String: Any], "\(stdout)")
        return (Array(objects.dropLast()), summary)
    }

    /// A worker killed mid-stream: the leader carries the sound heard so far into the plan compiled without it
    /// (fallback-node1.iop beside the bundle: the leader alone), and back to the full plan when it is started
    /// again; the stream goes on to its end, the second burst still raises its alert, and the windows lost
    /// meanwhile are counted, not silently absent.
    @Test func aWorkerLostMidStreamIsSurvived() throws {
        let f = try Self.fixture("failover")
        let dir = temporaryPath("stream-failover")
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: f.bundle, toPath: dir + "/bundle.iop")
        let alone = Cluster(
            devices: [
                DeviceSpec(
                    name: "node0", endpoint: "tcp://127.0.0.1:0", gflops: 6, memoryBudgetBytes: 64 << 20,
                    bandwidthMbps: 10_000, setupMs: 0.1, threads: 1)
            ], leader: 0)
        let net = loudnessDetector(consecutive: Self.consecutive)
        try Data(ProgramBundle.compile(try Planner(network: net, cluster: alone).plan(.oc), network: net)).write(
            to: URL(fileURLWithPath: dir + "/fallback-node1.iop"))
        let listen = "tcp://127.0.0.1:\(freeLoopbackPort())"
        let worker = try Self.worker(leader: listen)
        let leader = try NodeProcess(
            ["leader", "--bundle", dir, "--listen", listen, "--audio", f.wav, "--realtime"], environment: [:])
        // Kill the worker between the bursts, once the stream is well under way.
        let deadline = Date().addingTimeInterval(30)
        while !leader.stdout.contains("\"t\": 4.") && Date() < deadline { usleep(20_000) }
        kill(worker.process.processIdentifier, SIGKILL)
        // It comes back a second and a half later (as systemd would restart it): the stream returns to the full plan.
        usleep(1_500_000)
        let again = try Self.worker(leader: listen)
        #expect(leader.exitStatus(within: 60) == 0, "\(leader.stderr)")
        #expect(leader.stderr.contains("every board is back"), "\(leader.stderr)")
        #expect(again.exitStatus(within: 10) == 0, "\(again.stderr)")
        let (windows, summary) = try Self.jsonLines(leader.stdout)
        let times = windows.compactMap { $0["t"] as? Double }
        #expect((times.last ?? 0) >= Self.seconds - 1, "the stream stopped at \(times.last ?? 0) s")
        // Both bursts alert, the second one after the loss.
        let raised = zip(windows, [false] + windows.map { $0["alert"] as? Bool ?? false }).filter {
            ($0.0["alert"] as? Bool ?? false) && !$0.1
        }.compactMap { $0.0["t"] as? Double }
        #expect(
            raised.count == 2
                && raised.allSatisfy { t in Self.events.contains { $0.contains(t - 1) || $0.contains(t) } },
            "alerts raised at \(raised)")
        // Every window of the recording is reported: scored, or counted as dropped.
        let scored = summary["windows"] as? Int ?? 0, dropped = summary["dropped"] as? Int ?? 0
        #expect(scored + dropped >= 18, "\(summary)")
        #expect(leader.stderr.contains("board 'node1' lost"), "\(leader.stderr)")
    }

    /// With `--alerts tcp://...`, each alert is one ZeroMQ message, a JSON object `{"alert": true, "start": S,
    /// "t": T}`: T is the window that raised it (the one whose JSON line turns "alert" true), S the start of the
    /// first of its K windows over the threshold, which overlaps the planted burst; no message otherwise.
    @Test func eachAlertIsPushedAsAJSONMessage() throws {
        let f = try Self.fixture("alerts")
        let context = try Context()
        let alarm = try Socket(context, .pull)
        try alarm.setTimeouts(sendMs: 100, receiveMs: 1000)
        try alarm.bind("tcp://127.0.0.1:*")
        let endpoint = try alarm.boundEndpoint()
        let leader = try Self.stream(f, leaderArguments: ["--alerts", endpoint])

        var messages: [[String: Any]] = []
        while true {
            let bytes: [UInt8]
            do throws(NetError) { bytes = try alarm.receiveMessage() } catch {
                #expect(error.isTimeout, "\(error.message)")
                break
            }
            let object = try JSONSerialization.jsonObject(with: Data(bytes))
            messages.append(try #require(object as? [String: Any], "\(String(decoding: bytes, as: UTF8.self))"))
        }

        let (windows, summary) = try Self.jsonLines(leader.stdout)
        // The windows whose line turns the alert on: one per planted burst.
        let raised = windows.enumerated().filter { k, w in
            w["alert"] as? Bool == true && (k == 0 || windows[k - 1]["alert"] as? Bool == false)
        }.map { $0.element["t"] as? Double ?? -1 }
        #expect(raised.count == Self.events.count, "\(leader.stdout)")
        #expect(summary["alerts"] as? Int == Self.events.count, "\(summary)")
        try #require(messages.count == Self.events.count, "\(messages) \(leader.stderr)")
        for (k, (message, event)) in zip(messages, Self.events).enumerated() {
            #expect(Set(message.keys) == ["alert", "start", "t"], "\(message)")
            #expect(message["alert"] as? Bool == true, "\(message)")
            let t = try #require(message["t"] as? Double, "\(message)")
            let start = try #require(message["start"] as? Double, "\(message)")
            #expect(abs(t - raised[k]) < 0.0015, "pushed \(t), stdout raised at \(raised[k])")
            // S is the start of the K-th window back from T.
            let first = t - Double(Self.consecutive - 1) * Self.hopSeconds - Self.patchSeconds
            #expect(abs(start - first) < 0.0015, "start \(start), expected \(first)")
            // Inside the burst, or the window straddling its onset (half loud already scores high).
            #expect(start > event.lowerBound - Self.patchSeconds && start < event.upperBound, "\(start) for \(event)")
            #expect(t >= event.lowerBound && t <= event.upperBound + 1, "\(t) for \(event)")
        }
    }

    /// Under systemd (NOTIFY_SOCKET) the streaming leader reports READY=1, then about once a second
    /// `STATUS=streaming: last score S/1000 at T s, A alerts, M of W windows late`, each agreeing with the
    /// first W JSON lines it printed: the W-th window's time and score, the alerts raised and windows late.
    @Test func theStatusLineFollowsTheStream() throws {
        let f = try Self.fixture("status")
        let notify = try NotifySocket("notify-stream.sock")
        let leader = try Self.stream(f, environment: ["NOTIFY_SOCKET": notify.path])
        let (windows, summary) = try Self.jsonLines(leader.stdout)
        #expect(summary["windows"] as? Int == windows.count, "\(summary)")

        let texts = notify.messages.map(\.text)
        let ready = try #require(texts.firstIndex { $0 == "READY=1\nSTATUS=streaming " + f.wav }, "\(texts)")
        let pattern = try NSRegularExpression(
            pattern: #"^STATUS=streaming: last score (\d+)/1000 at (\d+) s, (\d+) alerts, (\d+) of (\d+) windows late$"#
        )
        var statuses: [(index: Int, score: Int, t: Int, alerts: Int, late: Int, windows: Int)] = []
        for (i, text) in texts.enumerated() where text.hasPrefix("STATUS=streaming:") {
            let m = try #require(pattern.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)), "\(text)")
            let v = (1...5).map { Int(text[Range(m.range(at: $0), in: text)!])! }
            statuses.append((i, v[0], v[1], v[2], v[3], v[4]))
        }
        // 10 s of audio, a line at most once a second once the first window (0.975 s) is in.
        #expect(statuses.count >= 5 && statuses.count <= 11, "\(texts)")
        #expect(statuses.allSatisfy { $0.index > ready }, "STATUS= lines before READY=1: \(texts)")
        #expect(zip(statuses.dropFirst(), statuses).allSatisfy { $0.windows > $1.windows }, "\(statuses)")
        for s in statuses {
            try #require(s.windows >= 1 && s.windows <= windows.count, "\(s)")
            let sofar = windows.prefix(s.windows)
            let w = windows[s.windows - 1]
            #expect(Int(w["t"] as? Double ?? -1) == s.t, "\(s) vs \(w)")
            #expect(abs(Int(((w["score"] as? Double ?? -1) * 1000).rounded()) - s.score) <= 1, "\(s) vs \(w)")
            let raisedSoFar = sofar.indices.filter {
                sofar[$0]["alert"] as? Bool == true && ($0 == 0 || sofar[$0 - 1]["alert"] as? Bool == false)
            }.count
            #expect(s.alerts == raisedSoFar, "\(s)")
            #expect(s.late == sofar.filter { $0["met"] as? Bool == false }.count, "\(s)")
        }
        // Lines from before the first burst and from after both were raised.
        #expect(statuses.contains { $0.alerts == 0 }, "\(texts)")
        #expect(statuses.contains { $0.alerts == Self.events.count }, "\(texts)")
    }
}
