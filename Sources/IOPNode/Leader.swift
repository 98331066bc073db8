import CIOPSystem
import IOPAudio
import IOPCore
import IOPNet
import IOPProgram
import IOPWire

/// The board that holds the input: sends every worker its program and weight
/// shards, runs its own parts, scatters each segment's inputs, gathers or
/// reduces the results. Its tensors and message frames live in its own arena,
/// laid out by the bundle's schedule.
public final class Leader {
    public let boards: [ProgramBundle.BoardEntry]
    public let leaderIndex: Int
    let schedule: [LeaderSegment]
    let programs: [BoardProgram]
    let programBytes: [Range<Int>]
    let shards: [[ProgramBundle.ShardRef]]
    /// The stream this bundle's model listens to, if any (`stream(_:deadlineNs:onWindow:)`).
    public let stream: StreamSpec?
    let inbox: Socket
    var outboxes: [Socket?]
    /// The leader's arena, allocated by `start`.
    var engine: Engine?
    var releasesShards = false
    var nextRequest: UInt64 = 1
    /// Which boards have answered the step being gathered (preallocated).
    var answered: [Bool]
    /// Per board, what it sent and how many messages, over all inferences so far.
    public internal(set) var bytesSent: [Int]
    public internal(set) var messagesSent: [Int]
    public internal(set) var inferences = 0
    /// The last served request, receive to reply.
    public internal(set) var lastRequestNs: UInt64 = 0
    /// Asked between requests whether to go on serving (see `serve`).
    public var supervisor = Supervisor()
    /// Frames turned away: corrupted, stale, from an unknown board, or not a request.
    public var rejected = RejectedFrames()
    let timeoutMs: Int32
    /// Nil: plain links (`--insecure`).
    public let keys: Keyring?
    /// Counts the handshakes refused on this leader's ports.
    var gatekeeper: Gatekeeper?
    /// Each board's arena bytes as the board reported it once ready (the leader's: its own).
    public internal(set) var arenaBytes: [Int]
    public let inputCount: Int
    public let outputCount: Int

    /// Binds `listen` (port `*` picks one: see `endpoint`). `start` then registers the workers.
    /// With `keys`, every link is CURVE: workers and clients need keys from the keyring (`iop keys`).
    public init(
        context: Context, listen: String, bundle: ProgramBundle, timeoutMs: Int32 = 30_000, keys: Keyring? = nil
    )
        throws(NodeError)
    {
        boards = bundle.boards; leaderIndex = bundle.leaderIndex; schedule = bundle.schedule
        programs = bundle.programs; programBytes = bundle.programBytes; shards = bundle.shards
        stream = bundle.stream
        bytesSent = Array(repeating: 0, count: boards.count); messagesSent = bytesSent; arenaBytes = bytesSent
        answered = Array(repeating: false, count: boards.count)
        self.timeoutMs = timeoutMs
        self.keys = keys
        inputCount = schedule.first?.inputCount ?? 0
        outputCount = schedule.last?.outputCount ?? 0
        var workerKeys: [[UInt8]?] = Array(repeating: nil, count: boards.count)
        if let keys {
            for i in boards.indices where i != leaderIndex {
                guard let peer = keys.peer(named: boards[i].name, role: .worker) else {
                    throw .keys("no public key for worker '" + boards[i].name + "' (make the keys for this cluster)")
                }
                workerKeys[i] = peer.publicKey
            }
            gatekeeper = try keys.admit([.worker], domain: Keyring.Domain.results, context: context)
        }
        do throws(NetError) {
            inbox = try Socket(context, .pull)
            if let keys { try inbox.makeCurveServer(keys.own, domain: Keyring.Domain.results) }
            // Results, or setup answers: anything larger is no frame of this cluster's (libzmq drops the peer).
            let largestResult = schedule.reduce(0) { max($0, 4 * $1.largestRemoteOutput) }
            try inbox.setMaxMessageSize(MessageHeader.size + PartResult.headerSize + max(largestResult, 4096))
            try inbox.setHighWaterMark(64)
            try inbox.setTimeouts(sendMs: timeoutMs, receiveMs: timeoutMs)
            try inbox.bind(listen)
            var sockets: [Socket?] = []
            for i in boards.indices {
                if i == leaderIndex { sockets.append(nil); continue }
                let s = try Socket(context, .push)
                if let keys { try s.makeCurveClient(keys.own, server: workerKeys[i]!) }
                try s.setHighWaterMark(ShardCodec.queueLength)
                try s.setTimeouts(sendMs: timeoutMs, receiveMs: timeoutMs)
                sockets.append(s)
            }
            outboxes = sockets
        } catch { throw .net(error) }
    }

    /// Tells every worker to stop; safe to call more than once.
    /// Each message gets up to 2 s to reach its board once the socket closes (see `Context.terminate`).
    public func shutdown() {
        for out in outboxes where out != nil {
            try? out!.sendFrame(.shutdown)
            try? out!.setLinger(2000)
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
            rejectedHandshakes: gatekeeper?.refused ?? 0, boards: [])
        for k in boards.indices {
            s.boards.append(
                ClusterStats.Board(
                    name: Array(boards[k].name.utf8), arenaBytes: UInt64(arenaBytes[k]),
                    bytesSent: UInt64(bytesSent[k]), messagesSent: UInt64(messagesSent[k])))
        }
        return s
    }
}
