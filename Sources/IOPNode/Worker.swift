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

    /// How long a serving worker waits for work before giving up (-1: for ever, as a board under systemd does).
    let idleTimeoutMs: Int32
    /// How long registration waits on the leader for each message.
    let timeoutMs: Int32

    public init(
        context: Context, name: String, listen: String, leader: String, budgetBytes: Int, threads: Int,
        timeoutMs: Int32 = 30_000, idleTimeoutMs: Int32 = -1
    ) throws(NodeError) {
        self.name = name; self.budgetBytes = budgetBytes; self.threads = threads; self.idleTimeoutMs = idleTimeoutMs
        self.timeoutMs = timeoutMs
        do throws(NetError) {
            inbox = try Socket(context, .pull)
            // Nothing larger than the whole budget can be a valid message for this board.
            try inbox.setMaxMessageSize(budgetBytes)
            // Serving, a board has one activation in flight. Loading, this bounds the weight
            // shards libzmq queues beside the arena to `ShardCodec.queueLength` messages of at most
            // `ShardCodec.frameLimit`.
            try inbox.setHighWaterMark(ShardCodec.queueLength)
            try inbox.setTimeouts(sendMs: timeoutMs, receiveMs: timeoutMs)
            try inbox.bind(listen)
            endpoint = try inbox.boundEndpoint()
            outbox = try Socket(context, .push)
            try outbox.setTimeouts(sendMs: timeoutMs, receiveMs: timeoutMs)
            try outbox.connect(leader)
        } catch { throw .net(error) }
    }

    /// Registers, loads, serves; returns after `shutdown`, or once it has refused its program.
    public func run() throws(NodeError) {
        let helloFrame = Hello(
            name: Array(name.utf8), endpoint: Array(endpoint.utf8), budgetBytes: UInt64(budgetBytes),
            threads: UInt16(clamping: threads)
        ).encode()
        // Registration waits in supervisor-sized slices, so a stop request is heard within one.
        var wait = SlicedWait(supervisor, limitMs: timeoutMs)
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

        // Setup: the program (no weights), so the arena is sized, or refused, before any weights travel.
        wait.restart()
        var program: BoardProgram?
        var board: UInt64 = 0
        while program == nil {
            let h: MessageHeader, payload: [UInt8]
            do throws(NodeError) {
                (h, payload) = try inbox.receiveFrame(waitingFor: "the leader's program", maxPayload: budgetBytes)
            } catch {
                if !error.isTimeout { throw error }
                switch wait.sliceElapsed(supervisor) {
                case .again: continue
                case .stop: return
                case .expired: throw error
                }
            }
            switch h.kind {
            case .program:
                var decoded: Result<BoardProgram, WireError> = .failure(.malformedPayload)
                payload.withUnsafeBytes { p in
                    do throws(WireError) { decoded = .success(try ProgramCodec.decode(p)) } catch {
                        decoded = .failure(error)
                    }
                }
                switch decoded {
                case .success(let p): program = p
                case .failure(let e): throw .wire(e)
                }
                // The leader names this worker's board index here.
                board = h.requestID
            case .shutdown:
                return
            default:
                throw .protocolViolation(
                    "worker '" + name + "' got a message of kind " + String(h.kind.rawValue) + " before its program")
            }
        }
        try load(program!, board: board, wait: &wait)
    }
}
