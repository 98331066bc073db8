import CIOPSystem
import IOPAudio
import IOPCore
import IOPNet
import IOPProgram
import IOPWire

/// The board that holds the input: sends every worker its program and weight
/// shards, runs its own parts, scatters each segment's inputs, gathers or
/// reduces the results. Its tensors and message frames live in its own arena,
/// laid out by the active plan's schedule. When a worker is lost it switches to
/// the plan compiled for the survivors (`plans`), and back when the board returns.
public final class Leader {
    /// The active plan's boards (the full plan's, or a fallback's survivors).
    public internal(set) var boards: [ProgramBundle.BoardEntry]
    public internal(set) var leaderIndex: Int
    var schedule: [LeaderSegment]
    var programs: [BoardProgram]
    var programBytes: [Range<Int>]
    var shards: [[ProgramBundle.ShardRef]]
    /// The stream this bundle's model listens to, if any (`stream(_:deadlineNs:onWindow:)`).
    public let stream: StreamSpec?
    let context: Context
    let inbox: Socket
    /// The active plan's link to each board (nil: the leader itself, or not registered yet), and its monitor.
    var outboxes: [Socket?]
    var monitors: [Monitor?]
    /// Each worker's link by name, kept across plans while its endpoint stays the same.
    var links: [String: Link] = [:]
    var linksMade = 0
    /// The leader's arena, allocated by `start`.
    var engine: Engine?
    var releasesShards = false
    var threads = 1
    var nextRequest: UInt64 = 1
    /// Which boards have answered the step being gathered (preallocated).
    var answered: [Bool]
    /// Per board, what it sent and how many messages, over all inferences so far.
    public internal(set) var bytesSent: [Int]
    public internal(set) var messagesSent: [Int]
    public internal(set) var inferences = 0
    /// Per segment of the active plan, where its inferences' time went (preallocated; reset with the plan).
    var segmentTimes: [ClusterStats.SegmentTime]
    var planInferences = 0
    /// Per board, its process's CPU time as its latest result reported it (the leader's: its own clock at the
    /// end of an inference), and as it stood at the end of the active plan's first inference, which starts the
    /// count: the first inference's page faults and connections are not what the plan costs (preallocated).
    var cpuNow: [UInt64]
    var cpuFrom: [UInt64]
    /// The last served request, receive to reply.
    public internal(set) var lastRequestNs: UInt64 = 0
    /// Asked between requests whether to go on serving (see `serve`).
    public var supervisor = Supervisor()
    /// Frames turned away: corrupted, stale, from an unknown board, or not a request.
    public var rejected = RejectedFrames()
    /// Told when the leader switches plans (the lost board's name, or nil back on the full plan), and why not.
    public var onPlanChange: (_ lost: String?, _ failure: NodeError?) -> Void = { _, _ in }
    /// The plan to run: nil asks for the full plan, a name for the one compiled without that board.
    public var plans: (_ lost: String?) -> LoadedBundle? = { _ in nil }
    /// 0 on the full plan; k on the fallback for the loss of the full plan's board k - 1 (answers carry it).
    public internal(set) var planID = 0
    /// The full plan's boards, in its order (fallbacks are named after them).
    public let fullBoards: [ProgramBundle.BoardEntry]
    /// Workers that kept their arena and program from before this leader started (set up without reloading).
    public internal(set) var resumedBoards = 0
    /// The last board lost, for errors while no plan runs.
    var lostName: String?
    /// A hello from a lost board that came back, until the leader returns to the full plan.
    var rejoined: [(name: String, hello: Hello)] = []
    let timeoutMs: Int32
    /// ZMTP heartbeat interval on every link; a peer silent for three is dropped, and a worker declared lost.
    let heartbeatMs: Int32
    /// Nil: plain links (`--insecure`).
    public let keys: Keyring?
    /// Counts the handshakes refused on this leader's ports.
    var gatekeeper: Gatekeeper?
    /// Each board's arena bytes as the board reported it once ready (the leader's: its own).
    public internal(set) var arenaBytes: [Int]
    public let inputCount: Int
    public let outputCount: Int

    struct Link {
        var endpoint: String
        var socket: Socket
        var monitor: Monitor
    }

    /// Binds `listen` (port `*` picks one: see `endpoint`). `start` then registers the workers.
    /// With `keys`, every link is CURVE: workers and clients need keys from the keyring (`iop keys`).
    public init(
        context: Context, listen: String, bundle: ProgramBundle, timeoutMs: Int32 = 30_000, keys: Keyring? = nil,
        heartbeatMs: Int32 = 250
    ) throws(NodeError) {
        boards = bundle.boards; leaderIndex = bundle.leaderIndex; schedule = bundle.schedule
        programs = bundle.programs; programBytes = bundle.programBytes; shards = bundle.shards
        fullBoards = bundle.boards
        stream = bundle.stream
        bytesSent = Array(repeating: 0, count: boards.count); messagesSent = bytesSent; arenaBytes = bytesSent
        answered = Array(repeating: false, count: boards.count)
        outboxes = Array(repeating: nil, count: boards.count)
        monitors = Array(repeating: nil, count: boards.count)
        segmentTimes = Array(repeating: ClusterStats.SegmentTime(), count: schedule.count)
        cpuNow = Array(repeating: 0, count: boards.count); cpuFrom = cpuNow
        self.context = context
        self.timeoutMs = timeoutMs
        self.heartbeatMs = heartbeatMs
        self.keys = keys
        inputCount = schedule.first?.inputCount ?? 0
        outputCount = schedule.last?.outputCount ?? 0
        if let keys {
            for b in boards.indices where b != leaderIndex && keys.peer(named: boards[b].name, role: .worker) == nil {
                throw .keys("no public key for worker '" + boards[b].name + "' (make the keys for this cluster)")
            }
            gatekeeper = try keys.admit([.worker], domain: Keyring.Domain.results, context: context)
        }
        do throws(NetError) {
            inbox = try Socket(context, .pull)
            if let keys { try inbox.makeCurveServer(keys.own, domain: Keyring.Domain.results) }
            // Nothing larger than the leader's whole budget is a frame of this cluster's (libzmq drops the peer).
            try inbox.setMaxMessageSize(max(boards[leaderIndex].budgetBytes, 1 << 20))
            try inbox.setHighWaterMark(64)
            try inbox.setHeartbeat(intervalMs: heartbeatMs, timeoutMs: 3 * heartbeatMs)
            try inbox.setTimeouts(sendMs: timeoutMs, receiveMs: heartbeatMs)
            try inbox.bindRetrying(listen)
        } catch { throw .net(error) }
    }

    /// The link to worker `name` at `endpoint`: kept if it already goes there, made anew otherwise.
    func link(_ name: String, _ endpoint: String) throws(NodeError) -> Socket {
        if let l = links[name], l.endpoint == endpoint { return l.socket }
        links[name] = nil
        do throws(NetError) {
            let s = try Socket(context, .push)
            if let keys, let peer = keys.peer(named: name, role: .worker) {
                try s.makeCurveClient(keys.own, server: peer.publicKey)
            }
            try s.setHighWaterMark(ShardCodec.queueLength)
            // Sends wait in heartbeat slices (`send(_:to:)`), so a lost board is noticed within one.
            try s.setTimeouts(sendMs: heartbeatMs, receiveMs: heartbeatMs)
            try s.setHeartbeat(intervalMs: heartbeatMs, timeoutMs: 3 * heartbeatMs)
            linksMade += 1
            let monitor = try Monitor(s, name: "leader-" + String(linksMade))
            try s.connect(endpoint)
            links[name] = Link(endpoint: endpoint, socket: s, monitor: monitor)
            return s
        } catch { throw .net(error) }
    }

    /// Sends `frame` to worker `b`, waiting in heartbeat slices: a board whose link drops meanwhile, or that takes
    /// no frame within `timeoutMs`, is lost.
    func send(_ frame: UnsafeRawBufferPointer, to b: Int) throws(NodeError) {
        let deadline = waitDeadline()
        while true {
            do throws(NetError) { return try outboxes[b]!.send(frame) } catch {
                guard error.isTimeout else { throw .net(error) }
                if lost(b) { throw .lost(board: boards[b].name, reason: "its link dropped") }
                if iop_monotonic_ns() > deadline {
                    throw .lost(board: boards[b].name, reason: "it took no frame for " + String(timeoutMs) + " ms")
                }
            }
        }
    }

    func send(_ kind: MessageKind, requestID: UInt64 = 0, payload: [UInt8] = [], to b: Int) throws(NodeError) {
        let frame = try encodeFrame(kind, requestID: requestID, payload: payload)
        var failure: NodeError?
        frame.withUnsafeBytes { f in
            do throws(NodeError) { try send(f, to: b) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    /// The first active worker whose link dropped (it exited, or missed three heartbeats), if any.
    /// Allocates nothing: it runs before every inference.
    func lostWorker() -> Int? {
        for b in boards.indices where b != leaderIndex && lost(b) { return b }
        return nil
    }

    /// Whether worker `b`'s link dropped since the last look.
    func lost(_ b: Int) -> Bool { (monitors[b]?.takeDisconnections() ?? 0) > 0 }

    /// Tells every worker to stop; safe to call more than once.
    /// Each message gets up to 2 s to reach its board once the socket closes (see `Context.terminate`).
    public func shutdown() {
        for (_, link) in links {
            try? link.socket.sendFrame(.shutdown)
            try? link.socket.setLinger(2000)
        }
    }

    public var endpoint: String { (try? inbox.boundEndpoint()) ?? "" }
    var workers: [Int] { boards.indices.filter { $0 != leaderIndex } }

    func names(_ set: Set<Int>) -> String {
        var s = ""
        for i in set.sorted() { s += (s.isEmpty ? "" : ", ") + "'" + boards[i].name + "'" }
        return s
    }

    /// The counters since start, as a `stats` answer carries them.
    public var stats: ClusterStats {
        var s = ClusterStats(
            inferences: UInt64(inferences), rejectedFrames: rejected.count,
            rejectedHandshakes: gatekeeper?.refused ?? 0, boards: [], planInferences: UInt64(planInferences),
            segments: segmentTimes, cpuInferences: UInt64(max(0, planInferences - 1)))
        for k in boards.indices {
            // A board that restarted since counts from zero again: nothing to say about it until the plan changes.
            let cpu = planInferences > 1 && cpuNow[k] >= cpuFrom[k] ? cpuNow[k] - cpuFrom[k] : 0
            s.boards.append(
                ClusterStats.Board(
                    name: Array(boards[k].name.utf8), arenaBytes: UInt64(arenaBytes[k]),
                    bytesSent: UInt64(bytesSent[k]), messagesSent: UInt64(messagesSent[k]), cpuNs: cpu))
        }
        return s
    }
}

/// A plan's bundle and the bytes its shards are read from; `release` is called once the boards are loaded.
public struct LoadedBundle {
    public var bundle: ProgramBundle
    public var bytes: UnsafeRawBufferPointer
    public var isMapped: Bool
    public var release: () -> Void

    public init(bundle: ProgramBundle, bytes: UnsafeRawBufferPointer, isMapped: Bool, release: @escaping () -> Void) {
        self.bundle = bundle; self.bytes = bytes; self.isMapped = isMapped; self.release = release
    }
}
