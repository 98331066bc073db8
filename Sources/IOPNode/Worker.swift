import CIOPSystem
import IOPCore
import IOPNet
import IOPWire

/// A board that is not the leader: registers, receives its programs, checks
/// them against its memory budget, then answers each activation with its result.
public final class Worker {
    public let name: String
    public let budgetBytes: Int
    public let threads: Int
    /// The endpoint the worker listens on (resolved when bound to port `*`).
    public let endpoint: String
    let inbox: Socket
    let outbox: Socket
    /// Bytes of every step's arena, once loaded.
    public private(set) var arenaBytes = 0
    public private(set) var inferencesServed = 0
    /// Time the last activation took on this board, receive to send.
    public private(set) var lastStepNs: UInt64 = 0
    /// Told when the arena is allocated and serving begins, and asked between messages whether to go on.
    public var supervisor = Supervisor()
    public var onServing: () -> Void = {}

    /// How long a serving worker waits for work before giving up (-1: for ever, as a board under systemd does).
    let idleTimeoutMs: Int32
    /// How long registration waits on the leader for each message.
    let timeoutMs: Int32

    public init(context: Context, name: String, listen: String, leader: String, budgetBytes: Int, threads: Int,
                timeoutMs: Int32 = 30_000, idleTimeoutMs: Int32 = -1) throws(NodeError) {
        self.name = name; self.budgetBytes = budgetBytes; self.threads = threads; self.idleTimeoutMs = idleTimeoutMs
        self.timeoutMs = timeoutMs
        do throws(NetError) {
            inbox = try Socket(context, .pull)
            // Nothing larger than the whole budget can be a valid message for this board.
            try inbox.setMaxMessageSize(budgetBytes)
            // A board holds at most a few steps' messages in flight; more is a runaway peer.
            try inbox.setHighWaterMark(64)
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
        var hello = [UInt8](repeating: 0, count: 300)
        var failure: WireError?
        let n = hello.withUnsafeMutableBytes { b -> Int in
            do throws(WireError) {
                return try Hello(name: Array(name.utf8), endpoint: Array(endpoint.utf8), budgetBytes: UInt64(budgetBytes),
                                 threads: UInt16(threads)).encode(into: b)
            } catch { failure = error; return 0 }
        }
        if let failure { throw .wire(failure) }
        // Registration waits in supervisor-sized slices, so a stop request is heard within one.
        var wait = SlicedWait(supervisor, limitMs: timeoutMs)
        do throws(NetError) {
            try outbox.setTimeouts(sendMs: wait.sliceMs, receiveMs: wait.sliceMs)
            try inbox.setTimeouts(sendMs: wait.sliceMs, receiveMs: wait.sliceMs)
        } catch { throw .net(error) }
        let helloFrame = Array(hello[0..<n])
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

        // Setup: programs until the leader's `ready` closes the list.
        var programs: [StepProgram] = []
        wait.restart()
        while true {
            let h: MessageHeader, payload: [UInt8]
            do throws(NodeError) { (h, payload) = try inbox.receiveFrame(waitingFor: "the leader's programs", maxPayload: budgetBytes) } catch {
                if !error.isTimeout { throw error }
                switch wait.sliceElapsed(supervisor) {
                case .again: continue
                case .stop: return
                case .expired: throw error
                }
            }
            wait.restart()
            switch h.kind {
            case .program:
                var decoded: Result<StepProgram, WireError> = .failure(.malformedPayload)
                payload.withUnsafeBytes { p in
                    do throws(WireError) { decoded = .success(try ProgramCodec.decode(p)) } catch { decoded = .failure(error) }
                }
                switch decoded {
                case .success(let p): programs.append(p)
                case .failure(let e): throw .wire(e)
                }
            case .ready:
                // The leader names this worker's board index here (a board with no parts gets no program).
                return try serve(programs, board: h.requestID)
            case .shutdown:
                return
            default:
                throw .protocolViolation("worker '" + name + "' got a message of kind " + String(h.kind.rawValue) + " before its programs")
            }
        }
    }

    func serve(_ programs: [StepProgram], board: UInt64) throws(NodeError) {
        // Every engine's arena is sized before any is allocated, so an over-budget program is refused whole.
        var needed = 0
        for p in programs { needed += Engine.arenaBytes(for: p.layers) }
        if needed > budgetBytes {
            var payload = [UInt8](repeating: 0, count: 32)
            let n = payload.withUnsafeMutableBytes { b -> Int in
                (try? Refuse(reason: .overBudget, bytesNeeded: UInt64(needed), budgetBytes: UInt64(budgetBytes)).encode(into: b)) ?? 0
            }
            try outbox.sendFrame(.refuse, requestID: board, payload: Array(payload[0..<n]))
            return
        }
        var engines: [Engine?] = []
        var maxIn = 0, maxOut = 0
        for p in programs {
            let engine: Engine
            do throws(CoreError) { engine = try Engine(layers: p.layers, threads: threads) } catch { throw .core(error) }
            while engines.count <= Int(p.step) { engines.append(nil) }
            engines[Int(p.step)] = engine
            maxIn = max(maxIn, engine.inputCount); maxOut = max(maxOut, engine.outputCount)
        }
        arenaBytes = needed
        // Message buffers, allocated once: a frame of input, and a frame of board index + output.
        var receive = [UInt8](repeating: 0, count: MessageHeader.size + 4 * maxIn)
        var send = [UInt8](repeating: 0, count: MessageHeader.size + 4 + 4 * maxOut)
        // `ready` carries the arena size, so the leader can report every board's memory.
        var arena = [UInt8](repeating: 0, count: 8)
        arena.withUnsafeMutableBytes { $0.storeBytes(of: UInt64(needed).littleEndian, as: UInt64.self) }
        // Serving starts now (systemd hears READY=1 here), before the leader can count this board ready.
        onServing()
        try outbox.sendFrame(.ready, requestID: board, payload: arena)
        var idle = SlicedWait(supervisor, limitMs: idleTimeoutMs)
        do throws(NetError) {
            try inbox.setTimeouts(sendMs: timeoutMs, receiveMs: idle.sliceMs)
            try outbox.setTimeouts(sendMs: timeoutMs, receiveMs: timeoutMs)
        } catch { throw .net(error) }

        while true {
            var outcome: Result<MessageHeader, NodeError> = .failure(.protocolViolation(""))
            receive.withUnsafeMutableBytes { buffer in
                do throws(NetError) {
                    let n = try inbox.receive(into: buffer)
                    do throws(WireError) {
                        outcome = .success(try Wire.decode(UnsafeRawBufferPointer(rebasing: buffer[0..<n]), maxPayload: 4 * maxIn))
                    } catch { outcome = .failure(.wire(error)) }
                } catch {
                    outcome = .failure(error.isTimeout ? .timedOut(waitingFor: "work from the leader") : .net(error))
                }
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
                let step = Int(header.step)
                guard step < engines.count, let engine = engines[step], Int(header.payloadLength) == 4 * engine.inputCount else {
                    throw .protocolViolation("activation for step " + String(step) + " does not match this worker's program")
                }
                var sent: NodeError?
                receive.withUnsafeBytes { input in
                    send.withUnsafeMutableBytes { out in
                        out.storeBytes(of: UInt32(board).littleEndian, toByteOffset: MessageHeader.size, as: UInt32.self)
                        let x = (input.baseAddress! + MessageHeader.size).assumingMemoryBound(to: Float.self)
                        let y = (out.baseAddress! + MessageHeader.size + 4).assumingMemoryBound(to: Float.self)
                        engine.run(input: x, output: y)
                        do throws(WireError) {
                            let n = try Wire.seal(kind: .activation, requestID: header.requestID, step: header.step,
                                                  payloadLength: 4 + 4 * engine.outputCount, in: out)
                            do throws(NetError) { try outbox.send(UnsafeRawBufferPointer(rebasing: out[0..<n])) } catch { sent = .net(error) }
                        } catch { sent = .wire(error) }
                    }
                }
                if let sent { throw sent }
                inferencesServed += 1
                lastStepNs = iop_monotonic_ns() &- started
            case .heartbeat:
                break
            case .shutdown:
                return
            default:
                throw .protocolViolation("unexpected message kind " + String(header.kind.rawValue) + " while serving")
            }
            if !supervisor.check() { return }
        }
    }
}
