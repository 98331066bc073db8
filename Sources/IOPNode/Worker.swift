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
    public private(set) var arenaBytes = 0
    public private(set) var inferencesServed = 0
    /// Why and how much, when it refused its program.
    public private(set) var refused: Refuse?
    /// Time the last activation took on this board, receive to send.
    public private(set) var lastStepNs: UInt64 = 0
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

    /// Allocates the one arena (or refuses), packs the weight shards into it, then serves.
    func load(_ program: BoardProgram, board: UInt64, wait: inout SlicedWait) throws(NodeError) {
        let needed = program.arenaBytes
        if needed > budgetBytes { return try refuse(.overBudget, needed: needed, board: board) }
        // Activations are received into and sent from the arena: a header must fit before each step's input and output.
        let inputAt = program.steps.first?.input ?? ArenaLayout.frameRoom
        for s in program.steps
        where s.input != inputAt || 4 * s.input < MessageHeader.size || 4 * s.output < MessageHeader.size + 4 {
            throw .protocolViolation(
                "worker '" + name + "': step " + String(s.segment) + " leaves no room for message headers")
        }
        let engine: Engine
        do throws(CoreError) { engine = try Engine(arenaFloats: program.arenaFloats, threads: threads) } catch {
            if case .outOfMemory = error { return try refuse(.cannotAllocate, needed: needed, board: board) }
            throw .core(error)
        }
        arenaBytes = needed
        // `ready` carries the arena size, so the leader can report every board's memory.
        let ready = Ready(arenaBytes: UInt64(needed)).encode()
        try outbox.sendFrame(.ready, requestID: board, payload: ready)

        // Weight shards, each received into the activation region (free until serving) and packed from there.
        // A board the plan gives no work has no activation region, but still hears `ready` and `shutdown`.
        let control = UnsafeMutableRawBufferPointer.allocate(byteCount: MessageHeader.size, alignment: 16)
        defer { control.deallocate() }
        let staging =
            program.activationFloats == 0
            ? control
            : UnsafeMutableRawBufferPointer(rebasing: engine.bytes[0..<(4 * program.activationFloats)])
        var loaded = [Int](repeating: 0, count: program.ops.count)
        wait.restart()
        loading: while true {
            var outcome: Result<MessageHeader, NodeError> = .failure(.protocolViolation(""))
            do throws(NetError) {
                let n = try inbox.receive(into: staging)
                do throws(WireError) {
                    outcome = .success(
                        try Wire.decode(UnsafeRawBufferPointer(rebasing: staging[0..<n]), maxPayload: staging.count))
                } catch { outcome = .failure(.wire(error)) }
            } catch {
                if !error.isTimeout { throw .net(error) }
                switch wait.sliceElapsed(supervisor) {
                case .again: continue loading
                case .stop: return
                case .expired: throw .timedOut(waitingFor: "the leader's weight shards")
                }
            }
            let header: MessageHeader
            switch outcome {
            case .success(let h): header = h
            case .failure(let e): throw e
            }
            wait.restart()
            switch header.kind {
            case .weightShard:
                let payload = UnsafeRawBufferPointer(
                    rebasing: staging[MessageHeader.size..<(MessageHeader.size + Int(header.payloadLength))])
                let shard: ShardCodec.Header
                do throws(WireError) { shard = try ShardCodec.read(payload, ops: program.ops, loaded: loaded) } catch {
                    throw .wire(error)
                }
                let op = program.ops[shard.op]
                let floats = (payload.baseAddress! + ShardCodec.headerSize).assumingMemoryBound(to: Float.self)
                let weightCount = shard.count * op.kind.weightsPerChannel
                engine.load(
                    op, channels: shard.channels, weights: weightCount > 0 ? UnsafePointer(floats) : nil,
                    bias: shard.hasBias ? UnsafePointer(floats + weightCount) : nil)
                loaded[shard.op] += shard.count
            case .ready:
                if let missing = program.ops.indices.first(where: {
                    loaded[$0] != program.ops[$0].kind.parameterChannels
                }) {
                    throw .protocolViolation(
                        "worker '" + name + "': the leader sent " + String(loaded[missing]) + " of op "
                            + String(missing)
                            + "'s " + String(program.ops[missing].kind.parameterChannels) + " weight channels")
                }
                break loading
            case .shutdown:
                return
            default:
                throw .protocolViolation(
                    "worker '" + name + "' got a message of kind " + String(header.kind.rawValue)
                        + " while loading weights")
            }
        }
        // Serving starts now (systemd hears READY=1 here), before the leader can count this board ready.
        onServing()
        try outbox.sendFrame(.ready, requestID: board, payload: ready)
        try serve(program, engine: engine, board: board, control: control)
    }

    /// Declines the program: the leader hears why, and this board's run ends.
    func refuse(_ reason: Refuse.Reason, needed: Int, board: UInt64) throws(NodeError) {
        let refusal = Refuse(reason: reason, bytesNeeded: UInt64(needed), budgetBytes: UInt64(budgetBytes))
        try outbox.sendFrame(.refuse, requestID: board, payload: refusal.encode())
        // The refusal is this board's last word: give it time to arrive after the socket closes.
        try? outbox.setLinger(2000)
        refused = refusal
    }

    func serve(_ program: BoardProgram, engine: Engine, board: UInt64, control: UnsafeMutableRawBufferPointer)
        throws(NodeError)
    {
        // Which step serves each segment, and the one place every step's input arrives.
        var stepOf = [Int](repeating: -1, count: (program.steps.map { $0.segment }.max() ?? 0) + 1)
        for (i, s) in program.steps.enumerated() { stepOf[s.segment] = i }
        let largestInput = program.steps.reduce(0) { max($0, $1.inputCount) }
        let inputAt = 4 * (program.steps.first?.input ?? 0)
        let receive =
            program.steps.isEmpty
            ? control
            : UnsafeMutableRawBufferPointer(
                rebasing: engine.bytes[(inputAt - MessageHeader.size)..<(inputAt + 4 * largestInput)])
        var idle = SlicedWait(supervisor, limitMs: idleTimeoutMs)
        do throws(NetError) {
            try inbox.setTimeouts(sendMs: timeoutMs, receiveMs: idle.sliceMs)
            try outbox.setTimeouts(sendMs: timeoutMs, receiveMs: timeoutMs)
        } catch { throw .net(error) }

        while true {
            var outcome: Result<MessageHeader, NodeError> = .failure(.protocolViolation(""))
            do throws(NetError) {
                let n = try inbox.receive(into: receive)
                do throws(WireError) {
                    outcome = .success(
                        try Wire.decode(UnsafeRawBufferPointer(rebasing: receive[0..<n]), maxPayload: 4 * largestInput))
                } catch { outcome = .failure(.wire(error)) }
            } catch {
                outcome = .failure(error.isTimeout ? .timedOut(waitingFor: "work from the leader") : .net(error))
            }
            let header: MessageHeader
            switch outcome {
            case .success(let h): header = h; idle.restart()
            case .failure(.timedOut(let what)):
                // A quiet slice: the supervisor's turn; the idle limit counts whole slices.
                switch idle.sliceElapsed(supervisor) {
                case .again: continue
                case .stop: return
                case .expired: throw .timedOut(waitingFor: what)
                }
            case .failure(let e): throw e
            }
            let started = iop_monotonic_ns()
            switch header.kind {
            case .activation:
                let segment = Int(header.step)
                guard segment < stepOf.count, stepOf[segment] >= 0,
                    Int(header.payloadLength) == 4 * program.steps[stepOf[segment]].inputCount
                else {
                    throw .protocolViolation(
                        "activation for step " + String(segment) + " does not match this worker's program")
                }
                let step = program.steps[stepOf[segment]]
                for i in step.ops { engine.run(program.ops[i]) }
                // The reply frame is built in place: header, board index, then the output already in the arena.
                let payloadAt = 4 * step.output - PartResult.headerSize
                let frame = UnsafeMutableRawBufferPointer(
                    rebasing: engine.bytes[(payloadAt - MessageHeader.size)..<(4 * (step.output + step.outputCount))])
                do throws(WireError) {
                    try PartResult.writeHeader(
                        board: Int(board), into: UnsafeMutableRawBufferPointer(rebasing: frame[MessageHeader.size...]))
                } catch { throw .wire(error) }
                let n: Int
                do throws(WireError) {
                    n = try Wire.seal(
                        kind: .activation, requestID: header.requestID, step: header.step,
                        payloadLength: PartResult.headerSize + 4 * step.outputCount, in: frame)
                } catch { throw .wire(error) }
                do throws(NetError) { try outbox.send(UnsafeRawBufferPointer(rebasing: frame[0..<n])) } catch {
                    throw .net(error)
                }
                inferencesServed += 1
                lastStepNs = iop_monotonic_ns() &- started
            case .shutdown:
                return
            default:
                throw .protocolViolation("unexpected message kind " + String(header.kind.rawValue) + " while serving")
            }
            if !supervisor.check() { return }
        }
    }
}
