import CIOPSystem
import IOPCore
import IOPNet
import IOPProgram
import IOPWire

/// A board that is not the leader: registers, receives its program, checks it
/// against its memory budget, allocates its one arena, packs the weight shards
/// into it, then answers each activation with its result.
public final class Worker {
    public let name: String
    public let budgetBytes: Int
    public let threads: Int
    /// The endpoint the worker listens on (resolved when bound to port `*`).
    public let endpoint: String
    let inbox: Socket
    let outbox: Socket
    /// Bytes of the one arena, once allocated.
    public internal(set) var arenaBytes = 0
    public internal(set) var inferencesServed = 0
    /// Why and how much, when it refused its program.
    public internal(set) var refused: Refuse?
    /// Time the last activation took on this board, receive to send.
    public internal(set) var lastStepNs: UInt64 = 0
    /// Told when the arena is allocated and serving begins, and asked between messages whether to go on.
    public var supervisor = Supervisor()
    public var onServing: () -> Void = {}
    /// Frames turned away (this board goes on serving).
    public var rejected = RejectedFrames()
    /// Set when the leader asks this board to register again (it moves to another plan) or its link dropped.
    var registerAgain = false
    /// The program this board serves, its arena and the Adler-32 of the program's bytes. Kept when the leader's
    /// link drops, so a leader coming back with the same bundle finds the board loaded (`Hello.heldProgram`).
    var held: (program: BoardProgram, engine: Engine, board: UInt64, checksum: UInt32)?
    var keepsArena = false
    /// Whether a `shutdown` from the leader ends `run` (false) or the board registers again, keeping its
    /// sockets and port, for the leader's next start (a board under systemd: `--rejoin`).
    public var rejoins = false
    /// Told when a leader that came back finds this board's arena still loaded.
    public var onResume: () -> Void = {}
    /// Told each time the leader shuts down and the board (with `rejoins`) registers again.
    public var onLeaderShutdown: () -> Void = {}
    /// Watches the link to the leader.
    let leaderLink: Monitor
    nonisolated(unsafe) static var monitors = 0

    /// How long a serving worker waits for work before giving up (-1: for ever, as a board under systemd does).
    let idleTimeoutMs: Int32
    /// How long registration waits on the leader for each message.
    let timeoutMs: Int32

    public init(
        context: Context, name: String, listen: String, leader: String, budgetBytes: Int, threads: Int,
        timeoutMs: Int32 = 30_000, idleTimeoutMs: Int32 = -1, keys: Keyring? = nil, heartbeatMs: Int32 = 250
    ) throws(NodeError) {
        self.name = name; self.budgetBytes = budgetBytes; self.threads = threads; self.idleTimeoutMs = idleTimeoutMs
        self.timeoutMs = timeoutMs
        // With keys, only the leader's key gets through this board's inbox, and the leader knows this board's.
        guard keys == nil || keys!.leader != nil else { throw .keys("the keyring names no leader") }
        if let keys { try keys.admit([.leader], domain: Keyring.Domain.work, context: context) }
        do throws(NetError) {
            inbox = try Socket(context, .pull)
            if let keys { try inbox.makeCurveServer(keys.own, domain: Keyring.Domain.work) }
            // Nothing larger than the whole budget can be a valid message for this board.
            try inbox.setMaxMessageSize(budgetBytes)
            // Serving, a board has one activation in flight. Loading, this bounds the weight
            // shards libzmq queues beside the arena to `ShardCodec.queueLength` messages of at most
            // `ShardCodec.frameLimit`.
            try inbox.setHighWaterMark(ShardCodec.queueLength)
            try inbox.setTimeouts(sendMs: timeoutMs, receiveMs: timeoutMs)
            try inbox.bindRetrying(listen)
            endpoint = try inbox.boundEndpoint()
            outbox = try Socket(context, .push)
            if let keys { try outbox.makeCurveClient(keys.own, server: keys.leader!.publicKey) }
            try outbox.setTimeouts(sendMs: timeoutMs, receiveMs: timeoutMs)
            try outbox.setHeartbeat(intervalMs: heartbeatMs, timeoutMs: 3 * heartbeatMs)
            Worker.monitors += 1
            leaderLink = try Monitor(outbox, name: "worker-" + String(Worker.monitors))
            try outbox.connect(leader)
        } catch { throw .net(error) }
    }

    /// Serves the program kept from before the leader went away, in the arena still loaded.
    func resume(_ kept: (program: BoardProgram, engine: Engine, board: UInt64, checksum: UInt32)) throws(NodeError) {
        try outbox.sendFrame(.ready, requestID: kept.board, payload: Ready(arenaBytes: UInt64(arenaBytes)).encode())
        onResume()
        let control = UnsafeMutableRawBufferPointer.allocate(byteCount: MessageHeader.size, alignment: 16)
        defer { control.deallocate() }
        try serve(kept.program, engine: kept.engine, board: kept.board, control: control)
    }

    func leaderShutDown() {
        guard rejoins else { return }
        registerAgain = true
        onLeaderShutdown()
    }

    /// Registers, loads, serves; returns after `shutdown`, or once it has refused its program. When the leader
    /// moves to another plan (it says hello) or its link drops, the board frees its arena and registers again,
    /// then waiting for the leader as long as it takes.
    public func run() throws(NodeError) {
        var limitMs = timeoutMs
        repeat {
            registerAgain = false
            try session(limitMs: limitMs)
            limitMs = -1
        } while registerAgain
    }

    func session(limitMs: Int32) throws(NodeError) {
        // Only a leader that went away finds the arena kept; a new plan or a shutdown frees it first.
        if !keepsArena { held = nil }
        keepsArena = false
        let helloFrame = Hello(
            name: Array(name.utf8), endpoint: Array(endpoint.utf8), budgetBytes: UInt64(budgetBytes),
            threads: UInt16(clamping: threads), heldProgram: held?.checksum ?? 0
        ).encode()
        // Registration waits in supervisor-sized slices, so a stop request is heard within one.
        var wait = SlicedWait(supervisor, limitMs: limitMs)
        do throws(NetError) {
            try outbox.setTimeouts(sendMs: wait.sliceMs, receiveMs: wait.sliceMs)
            try inbox.setTimeouts(sendMs: wait.sliceMs, receiveMs: wait.sliceMs)
        } catch { throw .net(error) }
        while true {
            do throws(NodeError) { try outbox.sendFrame(.hello, payload: helloFrame); break } catch {
                if !error.isTimeout { throw error }
                switch wait.sliceElapsed(supervisor) {
                case .again: continue
                case .stop: return
                case .expired: throw .timedOut(waitingFor: "the leader to accept this board's hello")
                }
            }
        }

        var helloSentNs = iop_monotonic_ns()
        // Setup: the program (no weights), so the arena is sized, or refused, before any weights travel.
        wait.restart()
        var program: BoardProgram?
        var board: UInt64 = 0
        var checksum: UInt32 = 0
        while program == nil {
            let h: MessageHeader, payload: [UInt8]
            do throws(NodeError) {
                (h, payload) = try inbox.receiveFrame(waitingFor: "the leader's program", maxPayload: budgetBytes)
            } catch {
                if case .wire(let e) = error {
                    rejected.reject("a bad frame before the program: " + e.message)
                    continue
                }
                if !error.isTimeout { throw error }
                switch wait.sliceElapsed(supervisor) {
                case .again:
                    // A hello can land in a leader that is going away (it just shut down, or moved plans):
                    // say it again every second until a program comes.
                    if iop_monotonic_ns() &- helloSentNs > 1_000_000_000 {
                        try? outbox.sendFrame(.hello, payload: helloFrame)
                        helloSentNs = iop_monotonic_ns()
                    }
                    continue
                case .stop: return
                case .expired: throw error
                }
            }
            switch h.kind {
            case .ready:
                // The leader came back with the program this board holds: serve it as loaded.
                guard let kept = held, kept.board == h.requestID else {
                    rejected.reject("ready before any program")
                    continue
                }
                return try resume(kept)
            case .program:
                held = nil  // the old arena goes before the new one is allocated
                checksum = payload.withUnsafeBytes { adler32($0) }
                var decoded: Result<BoardProgram, WireError> = .failure(.malformedPayload)
                payload.withUnsafeBytes { p in
                    do throws(WireError) { decoded = .success(try ProgramCodec.decode(p)) } catch {
                        decoded = .failure(error)
                    }
                }
                switch decoded {
                case .success(let p): program = p
                case .failure(let e): rejected.reject("a program that does not decode: " + e.message)
                }
                // The leader names this worker's board index here.
                board = h.requestID
            case .shutdown:
                leaderShutDown()
                return
            case .hello:
                continue  // the leader moving plans again: this board's hello is on its way
            default:
                rejected.reject("a message of kind " + String(h.kind.rawValue) + " before the program")
            }
        }
        try load(program!, checksum: checksum, board: board, wait: &wait)
    }
}
