import CIOPSystem
import IOPCore
import IOPNet
import IOPWire

/// The board that holds the input: distributes the programs, runs its own
/// parts, scatters each segment's inputs, gathers or reduces the results.
public final class Leader {
    public struct Board: Sendable {
        public var name: String
        public var endpoint: String
        public init(name: String, endpoint: String) { self.name = name; self.endpoint = endpoint }
    }

    struct Remote { var board: Int; var output: BoardPart.Output; var outputCount: Int }
    struct Step {
        var program: SegmentProgram
        var own: (part: BoardPart, engine: Engine)?
        var remote: [Remote]
        var reduce: Engine?
    }

    let boards: [Board]
    let leaderIndex: Int
    let inbox: Socket
    var outboxes: [Socket?]
    var steps: [Step] = []
    let segments: [SegmentProgram]
    /// Tensors (the segment input, the assembled output, the leader's own part
    /// in and out) and the two message frames: allocated once, at registration.
    var current: UnsafeMutablePointer<Float>, assembled: UnsafeMutablePointer<Float>
    var ownIn: UnsafeMutablePointer<Float>, ownOut: UnsafeMutablePointer<Float>
    var frame: UnsafeMutableRawBufferPointer, reply: UnsafeMutableRawBufferPointer
    var nextRequest: UInt64 = 1
    /// Which boards have answered the step being gathered (preallocated).
    var answered: [Bool]
    /// Per board, what it sent and how many messages, over all inferences so far.
    public private(set) var bytesSent: [Int]
    public private(set) var messagesSent: [Int]
    public private(set) var inferences = 0
    /// The last served request, receive to reply.
    public private(set) var lastRequestNs: UInt64 = 0
    /// Asked between requests whether to go on serving (see `serve`).
    public var supervisor = Supervisor()
    /// Each board's arena bytes (the leader's: its own parts and reductions), known once started.
    public private(set) var arenaBytes: [Int]
    public let inputCount: Int
    public let outputCount: Int

    /// Binds `listen` (port `*` picks one: see `endpoint`). `start` then registers the workers.
    public init(context: Context, listen: String, boards: [Board], leaderIndex: Int, segments: [SegmentProgram],
                timeoutMs: Int32 = 30_000) throws(NodeError) {
        self.boards = boards; self.leaderIndex = leaderIndex; self.segments = segments
        bytesSent = Array(repeating: 0, count: boards.count); messagesSent = bytesSent; arenaBytes = bytesSent
        answered = Array(repeating: false, count: boards.count)
        inputCount = segments.first?.inputCount ?? 0
        outputCount = segments.last?.outputCount ?? 0
        var tensor = 0, message = 0
        for seg in segments {
            tensor = max(tensor, seg.inputCount, seg.assembledCount, seg.outputCount)
            for part in seg.parts { message = max(message, 4 * seg.inputCount, 4 + 4 * (part.layers.last?.outputCount ?? 0)) }
        }
        current = .allocate(capacity: tensor); assembled = .allocate(capacity: tensor)
        ownIn = .allocate(capacity: tensor); ownOut = .allocate(capacity: tensor)
        frame = .allocate(byteCount: MessageHeader.size + message, alignment: 64)
        reply = .allocate(byteCount: MessageHeader.size + message, alignment: 64)
        do throws(NetError) {
            inbox = try Socket(context, .pull)
            try inbox.setHighWaterMark(64)
            try inbox.setTimeouts(sendMs: timeoutMs, receiveMs: timeoutMs)
            try inbox.bind(listen)
            var sockets: [Socket?] = []
            for i in boards.indices {
                if i == leaderIndex { sockets.append(nil); continue }
                let s = try Socket(context, .push)
                try s.setTimeouts(sendMs: timeoutMs, receiveMs: timeoutMs)
                sockets.append(s)
            }
            outboxes = sockets
        } catch { throw .net(error) }
    }

    /// Waits for every worker's hello, connects to it, sends its programs, and
    /// returns once all are ready; a refusal or a silent board stops every
    /// worker and throws.
    public func start(threads: Int) throws(NodeError) {
        do throws(NodeError) {
            try register(segments: segments, threads: threads)
        } catch {
            shutdown()
            throw error
        }
    }

    deinit {
        current.deallocate(); assembled.deallocate(); ownIn.deallocate(); ownOut.deallocate()
        frame.deallocate(); reply.deallocate()
    }

    public var endpoint: String { (try? inbox.boundEndpoint()) ?? "" }

    func register(segments: [SegmentProgram], threads: Int) throws(NodeError) {
        // Hellos, in any order.
        var budgets = [Int](repeating: 0, count: boards.count)
        var pending = Set(boards.indices.filter { $0 != leaderIndex })
        while !pending.isEmpty {
            let (h, payload) = try inbox.receiveFrame(waitingFor: "hello from " + names(pending), maxPayload: 1024)
            guard h.kind == .hello else { throw .protocolViolation("expected hello, got kind " + String(h.kind.rawValue)) }
            var decoded: Hello?
            payload.withUnsafeBytes { decoded = try? Hello.decode($0) }
            guard let hello = decoded else { throw .wire(.malformedPayload) }
            let name = String(decoding: hello.name, as: UTF8.self)
            guard let i = boards.firstIndex(where: { $0.name == name }), pending.remove(i) != nil else {
                throw .protocolViolation("hello from unknown or repeated board '" + name + "'")
            }
            // A worker that bound port `*` says where it listens; otherwise use the cluster file's endpoint.
            budgets[i] = Int(hello.budgetBytes)
            let reported = String(decoding: hello.endpoint, as: UTF8.self)
            do throws(NetError) { try outboxes[i]!.connect(reported.isEmpty ? boards[i].endpoint : reported) } catch { throw .net(error) }
        }
        // A board whose programs cannot fit its budget is refused before anything is sent: its
        // socket would drop messages larger than the budget, and it could not say why.
        var needed = [Int](repeating: 0, count: boards.count)
        for seg in segments { for part in seg.parts where part.board != leaderIndex { needed[part.board] += Engine.arenaBytes(for: part.layers) } }
        if let over = boards.indices.first(where: { $0 != leaderIndex && needed[$0] > budgets[$0] }) {
            throw .refused(board: boards[over].name, bytesNeeded: needed[over], budgetBytes: budgets[over])
        }
        // Programs, then `ready` to close each board's list.
        for (k, seg) in segments.enumerated() {
            var step = Step(program: seg, own: nil, remote: [], reduce: nil)
            for part in seg.parts {
                if part.board == leaderIndex {
                    do throws(CoreError) { step.own = (part, try Engine(layers: part.layers, threads: threads)) } catch { throw .core(error) }
                    continue
                }
                let program = StepProgram(step: UInt32(k), layers: part.layers)
                var payload = [UInt8](repeating: 0, count: ProgramCodec.encodedSize(program))
                var failure: WireError?
                var written = 0
                payload.withUnsafeMutableBytes { b in
                    do throws(WireError) { written = try ProgramCodec.encode(program, into: b) } catch { failure = error }
                }
                if let failure { throw .wire(failure) }
                try outboxes[part.board]!.sendFrame(.program, requestID: UInt64(part.board), payload: Array(payload[0..<written]))
                step.remote.append(Remote(board: part.board, output: part.output, outputCount: part.layers.last!.outputCount))
            }
            if !seg.reduceLayers.isEmpty {
                do throws(CoreError) { step.reduce = try Engine(layers: seg.reduceLayers, threads: threads) } catch { throw .core(error) }
            }
            steps.append(step)
        }
        arenaBytes[leaderIndex] = steps.reduce(0) { $0 + ($1.own?.engine.arenaBytes ?? 0) + ($1.reduce?.arenaBytes ?? 0) }
        for (i, out) in outboxes.enumerated() where out != nil { try out!.sendFrame(.ready, requestID: UInt64(i)) }
        // Every board answers before anything is decided, so a refusal is reported the same way every time.
        var waiting = Set(boards.indices.filter { $0 != leaderIndex })
        var refusals: [(board: Int, refuse: Refuse?)] = []
        while !waiting.isEmpty {
            let (h, payload) = try inbox.receiveFrame(waitingFor: "ready from " + names(waiting), maxPayload: 1024)
            let board = Int(h.requestID)
            guard waiting.remove(board) != nil else { throw .protocolViolation("unexpected answer from board " + String(board)) }
            switch h.kind {
            case .ready:
                if payload.count == 8 { arenaBytes[board] = Int(UInt64(littleEndian: payload.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })) }
            case .refuse:
                var r: Refuse?
                payload.withUnsafeBytes { r = try? Refuse.decode($0) }
                refusals.append((board, r))
            default: throw .protocolViolation("expected ready or refuse, got kind " + String(h.kind.rawValue))
            }
        }
        if let first = refusals.min(by: { $0.board < $1.board }) {
            throw .refused(board: boards[first.board].name, bytesNeeded: Int(first.refuse?.bytesNeeded ?? 0),
                           budgetBytes: Int(first.refuse?.budgetBytes ?? 0))
        }
    }

    func names(_ set: Set<Int>) -> String {
        var s = ""
        for i in set.sorted() { s += (s.isEmpty ? "" : ", ") + "'" + boards[i].name + "'" }
        return s
    }

    /// One cooperative inference. Allocates nothing.
    public func infer(input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>) throws(NodeError) {
        let request = nextRequest
        nextRequest += 1
        current.update(from: input, count: inputCount)
        for (k, step) in steps.enumerated() {
            let seg = step.program
            for part in seg.parts where part.board != leaderIndex {
                let payload = (frame.baseAddress! + MessageHeader.size).assumingMemoryBound(to: Float.self)
                let n = part.input.select(from: current, count: seg.inputCount, into: payload)
                let length: Int
                do throws(WireError) { length = try Wire.seal(kind: .activation, requestID: request, step: UInt32(k), payloadLength: 4 * n, in: frame) } catch { throw .wire(error) }
                do throws(NetError) { try outboxes[part.board]!.send(UnsafeRawBufferPointer(rebasing: frame[0..<length])) } catch { throw .net(error) }
                bytesSent[leaderIndex] += length; messagesSent[leaderIndex] += 1
            }
            // The leader's own part, while the others compute.
            assembled.update(repeating: 0, count: seg.assembledCount)
            if let own = step.own {
                var src = UnsafePointer(current)
                if own.part.input != .all {
                    _ = own.part.input.select(from: current, count: seg.inputCount, into: ownIn)
                    src = UnsafePointer(ownIn)
                }
                own.engine.run(input: src, output: ownOut)
                own.part.output.place(ownOut, count: own.engine.outputCount, into: assembled)
            }
            try gather(step, request: request, index: k)
            if let reduce = step.reduce {
                reduce.run(input: assembled, output: current)
            } else {
                current.update(from: assembled, count: seg.outputCount)
            }
        }
        output.update(from: current, count: outputCount)
        inferences += 1
    }

    /// Receives one result from every other board of the step and places it.
    func gather(_ step: Step, request: UInt64, index k: Int) throws(NodeError) {
        for r in step.remote { answered[r.board] = false }
        for _ in 0..<step.remote.count {
            let length: Int
            do throws(NetError) { length = try inbox.receive(into: reply) } catch {
                if error.isTimeout {
                    var missing = ""
                    for r in step.remote where !answered[r.board] { missing += (missing.isEmpty ? "'" : ", '") + boards[r.board].name + "'" }
                    throw .timedOut(waitingFor: "step " + String(k) + " results from " + missing + " (did the board stop?)")
                }
                throw .net(error)
            }
            let header: MessageHeader
            do throws(WireError) { header = try Wire.decode(UnsafeRawBufferPointer(rebasing: reply[0..<length]), maxPayload: reply.count) } catch { throw .wire(error) }
            guard header.kind == .activation, header.requestID == request, Int(header.step) == k, header.payloadLength >= 4 else {
                throw .protocolViolation("result for request " + String(header.requestID) + " step " + String(header.step)
                                         + " while waiting for request " + String(request) + " step " + String(k))
            }
            let board = Int(UInt32(littleEndian: reply.loadUnaligned(fromByteOffset: MessageHeader.size, as: UInt32.self)))
            guard let remote = step.remote.first(where: { $0.board == board }), Int(header.payloadLength) == 4 + 4 * remote.outputCount else {
                throw .protocolViolation("unexpected result from board " + String(board) + " for step " + String(k))
            }
            let y = UnsafePointer((reply.baseAddress! + MessageHeader.size + 4).assumingMemoryBound(to: Float.self))
            remote.output.place(y, count: remote.outputCount, into: assembled)
            answered[board] = true
            bytesSent[board] += length; messagesSent[board] += 1
        }
    }

    /// Tells every worker to stop; safe to call more than once.
    public func shutdown() {
        for out in outboxes where out != nil { try? out!.sendFrame(.shutdown) }
    }
}

extension Leader {
    /// One inference from and into arrays: for tools and tests, not the allocation-free path.
    public func infer(_ input: [Float]) throws(NodeError) -> [Float] {
        var out = [Float](repeating: 0, count: outputCount)
        var failure: NodeError?
        input.withUnsafeBufferPointer { i in
            out.withUnsafeMutableBufferPointer { o in
                do throws(NodeError) { try infer(input: i.baseAddress!, output: o.baseAddress!) } catch { failure = error }
            }
        }
        if let failure { throw failure }
        return out
    }
}

extension Leader {
    /// Answers inference requests arriving on `requests` until a client sends
    /// `shutdown` or the supervisor says stop (the request in hand is answered
    /// first); each result goes to the endpoint named in its request. A failed
    /// inference is answered with an `error` frame, then rethrown. Either way
    /// the workers are told to shut down.
    public func serve(_ requests: Socket, context: Context) throws(NodeError) {
        do throws(NetError) { try requests.setTimeouts(sendMs: 5000, receiveMs: supervisor.checkIntervalMs) } catch { throw .net(error) }
        let requestBytes = MessageHeader.size + 2 + 255 + 4 * inputCount
        let incoming = UnsafeMutableRawBufferPointer.allocate(byteCount: requestBytes, alignment: 64)
        let outgoing = UnsafeMutableRawBufferPointer.allocate(byteCount: MessageHeader.size + 4 * max(outputCount, 64), alignment: 64)
        let input = UnsafeMutablePointer<Float>.allocate(capacity: max(inputCount, 1))
        defer { incoming.deallocate(); outgoing.deallocate(); input.deallocate() }
        var replyEndpoint: [UInt8] = []
        var reply: Socket?
        while true {
            let length: Int
            do throws(NetError) { length = try requests.receive(into: incoming) } catch {
                if !error.isTimeout { throw .net(error) }
                if !supervisor.check() { shutdown(); return }
                continue
            }
            let started = iop_monotonic_ns()
            let header: MessageHeader
            do throws(WireError) { header = try Wire.decode(UnsafeRawBufferPointer(rebasing: incoming[0..<length]), maxPayload: requestBytes) } catch { continue }
            if header.kind == .shutdown { shutdown(); return }
            guard header.kind == .request else { continue }
            var r = PayloadReader(UnsafeRawBufferPointer(rebasing: incoming[MessageHeader.size..<length]))
            guard let n = try? r.read(UInt16.self), Int(n) <= r.remaining else { continue }
            let endpointRange = (MessageHeader.size + 2)..<(MessageHeader.size + 2 + Int(n))
            guard length - endpointRange.upperBound == 4 * inputCount else { continue }
            // Reuse the reply socket while the requester stays the same (no allocation per request).
            if reply == nil || !incoming[endpointRange].elementsEqual(replyEndpoint) {
                replyEndpoint = Array(incoming[endpointRange])
                do throws(NetError) {
                    let s = try Socket(context, .push)
                    try s.setTimeouts(sendMs: 5000, receiveMs: 5000)
                    try s.connect(String(decoding: replyEndpoint, as: UTF8.self))
                    reply = s
                } catch { continue }
            }
            UnsafeMutableRawPointer(input).copyMemory(from: incoming.baseAddress! + endpointRange.upperBound, byteCount: 4 * inputCount)
            let out = (outgoing.baseAddress! + MessageHeader.size).assumingMemoryBound(to: Float.self)
            do throws(NodeError) {
                try infer(input: input, output: out)
                let frame: Int
                do throws(WireError) { frame = try Wire.seal(kind: .result, requestID: header.requestID, payloadLength: 4 * outputCount, in: outgoing) } catch { throw .wire(error) }
                do throws(NetError) { try reply!.send(UnsafeRawBufferPointer(rebasing: outgoing[0..<frame])) } catch { throw .net(error) }
                lastRequestNs = iop_monotonic_ns() &- started
            } catch {
                try? reply!.sendFrame(.error, requestID: header.requestID, payload: Array(error.message.utf8))
                shutdown()
                throw error
            }
            if !supervisor.check() { shutdown(); return }
        }
    }
}
