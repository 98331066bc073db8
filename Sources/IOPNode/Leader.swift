import CIOPSystem
import IOPCore
import IOPNet
import IOPWire

/// The board that holds the input: sends every worker its program and weight
/// shards, runs its own parts, scatters each segment's inputs, gathers or
/// reduces the results. Its tensors and message frames live in its own arena,
/// laid out by the bundle's schedule.
public final class Leader {
    public let boards: [Bundle.BoardEntry]
    let leaderIndex: Int
    let schedule: [LeaderSegment]
    let programs: [BoardProgram]
    let programBytes: [Range<Int>]
    let shards: [[Bundle.ShardRef]]
    let inbox: Socket
    var outboxes: [Socket?]
    /// The leader's arena, allocated by `start`.
    var engine: Engine?
    var releasesShards = false
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
    /// Each board's arena bytes as the board reported it once ready (the leader's: its own).
    public private(set) var arenaBytes: [Int]
    public let inputCount: Int
    public let outputCount: Int

    /// Binds `listen` (port `*` picks one: see `endpoint`). `start` then registers the workers.
    public init(context: Context, listen: String, bundle: Bundle, timeoutMs: Int32 = 30_000) throws(NodeError) {
        boards = bundle.boards; leaderIndex = bundle.leaderIndex; schedule = bundle.schedule
        programs = bundle.programs; programBytes = bundle.programBytes; shards = bundle.shards
        bytesSent = Array(repeating: 0, count: boards.count); messagesSent = bytesSent; arenaBytes = bytesSent
        answered = Array(repeating: false, count: boards.count)
        inputCount = schedule.first?.inputCount ?? 0
        outputCount = schedule.last?.outputCount ?? 0
        do throws(NetError) {
            inbox = try Socket(context, .pull)
            try inbox.setHighWaterMark(64)
            try inbox.setTimeouts(sendMs: timeoutMs, receiveMs: timeoutMs)
            try inbox.bind(listen)
            var sockets: [Socket?] = []
            for i in boards.indices {
                if i == leaderIndex { sockets.append(nil); continue }
                let s = try Socket(context, .push)
                try s.setHighWaterMark(ShardCodec.queueLength)
                try s.setTimeouts(sendMs: timeoutMs, receiveMs: timeoutMs)
                sockets.append(s)
            }
            outboxes = sockets
        } catch { throw .net(error) }
    }

    /// Waits for every worker's hello, sends the programs, allocates its own
    /// arena, sends the weight shards (read from `bundleBytes`, the bundle the
    /// schedule came from), and returns once all are ready. A refusal or a
    /// silent board stops every worker and throws.
    /// With `bundleIsMapped` (a read-only file mapping), each shard's pages are
    /// dropped once sent or packed, so loading never holds the whole bundle in memory.
    public func start(threads: Int, bundleBytes: UnsafeRawBufferPointer, bundleIsMapped: Bool = false) throws(NodeError) {
        releasesShards = bundleIsMapped
        do throws(NodeError) {
            try register(threads: threads, bytes: bundleBytes)
        } catch {
            shutdown()
            throw error
        }
    }

    public var endpoint: String { (try? inbox.boundEndpoint()) ?? "" }
    var workers: [Int] { boards.indices.filter { $0 != leaderIndex } }

    func register(threads: Int, bytes: UnsafeRawBufferPointer) throws(NodeError) {
        // Hellos, in any order.
        var budgets = [Int](repeating: 0, count: boards.count)
        var pending = Set(workers)
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
        // A board whose arena cannot fit its budget is refused before anything is sent: its
        // socket would drop messages larger than the budget, and it could not say why.
        budgets[leaderIndex] = boards[leaderIndex].budgetBytes
        if let over = boards.indices.first(where: { programs[$0].arenaBytes > budgets[$0] }) {
            throw .refused(board: boards[over].name, bytesNeeded: programs[over].arenaBytes, budgetBytes: budgets[over])
        }
        // Programs (no weights yet): each board sizes its arena and answers ready, or refuses.
        for d in workers { try outboxes[d]!.sendFrame(.program, requestID: UInt64(d), payload: Array(bytes[programBytes[d]])) }
        try collectReadies()
        // The leader's own arena, its parameters packed straight from the bundle.
        let own = programs[leaderIndex]
        let engine: Engine
        do throws(CoreError) { engine = try Engine(arenaFloats: own.arenaFloats, threads: threads) } catch { throw .core(error) }
        self.engine = engine
        arenaBytes[leaderIndex] = own.arenaBytes
        for ref in shards[leaderIndex] {
            let op = own.ops[ref.op], per = op.kind.weightsPerChannel
            // A few MiB at a time, so a mapped bundle's pages can go as soon as they are packed.
            let step = max(1, ShardCodec.frameLimit / max(4 * per, 1))
            var first = 0
            while first < ref.channels {
                let channels = first..<min(ref.channels, first + step)
                engine.load(op, channels: channels, weights: floats(bytes, ref.weights) + first * per, bias: ref.bias.map { floats(bytes, $0) + first })
                release(bytes, from: ref.weights + 4 * first * per, count: 4 * channels.count * per)
                first = channels.upperBound
            }
            if let bias = ref.bias { release(bytes, from: bias, count: 4 * ref.channels) }
        }
        // Weight shards, whole channels per message, each frame built in the leader's
        // activation region (free until serving) and small enough for the board's.
        let stagingBytes = 4 * own.activationFloats
        for d in workers {
            let frameBytes = min(stagingBytes, 4 * programs[d].activationFloats, max(ShardCodec.frameLimit, 4 * largestChannel(programs[d])))
            for ref in shards[d] {
                try sendShard(ref, to: d, program: programs[d], bytes: bytes, engine: engine, frameBytes: frameBytes)
            }
            try outboxes[d]!.sendFrame(.ready, requestID: UInt64(d))
        }
        try collectReadies()
    }

    /// The biggest single-channel shard frame of a program: frames never split a channel.
    func largestChannel(_ p: BoardProgram) -> Int { p.ops.reduce(0) { max($0, BoardLayout.stagingFloats($1.kind)) } }

    /// Drops pages of a mapped bundle once their floats are sent or packed.
    func release(_ bytes: UnsafeRawBufferPointer, from offset: Int, count: Int) {
        if releasesShards { iop_release_mapped(bytes.baseAddress! + offset, count) }
    }

    /// Shard floats inside the bundle (4-byte aligned there).
    func floats(_ bytes: UnsafeRawBufferPointer, _ offset: Int) -> UnsafePointer<Float> {
        (bytes.baseAddress! + offset).assumingMemoryBound(to: Float.self)
    }

    func sendShard(_ ref: Bundle.ShardRef, to d: Int, program: BoardProgram, bytes: UnsafeRawBufferPointer, engine: Engine, frameBytes: Int) throws(NodeError) {
        let kind = program.ops[ref.op].kind
        let hasBias = ref.bias != nil
        let per = ShardCodec.channelsPerMessage(kind, hasBias: hasBias, frameBytes: frameBytes)
        var first = 0
        while first < ref.channels {
            let count = min(per, ref.channels - first)
            let payloadLength = ShardCodec.payloadSize(kind, channels: count, hasBias: hasBias)
            let frame = UnsafeMutableRawBufferPointer(rebasing: engine.bytes[0..<(MessageHeader.size + payloadLength)])
            let payload = frame.baseAddress! + MessageHeader.size
            ShardCodec.write(.init(op: ref.op, first: first, count: count, hasBias: hasBias), into: payload)
            let weights = count * kind.weightsPerChannel
            (payload + ShardCodec.headerSize).copyMemory(from: floats(bytes, ref.weights) + first * kind.weightsPerChannel, byteCount: 4 * weights)
            if let bias = ref.bias {
                (payload + ShardCodec.headerSize + 4 * weights).copyMemory(from: floats(bytes, bias) + first, byteCount: 4 * count)
            }
            let n: Int
            do throws(WireError) { n = try Wire.seal(kind: .weightShard, requestID: UInt64(d), payloadLength: payloadLength, in: frame) } catch { throw .wire(error) }
            do throws(NetError) { try outboxes[d]!.send(UnsafeRawBufferPointer(rebasing: frame[0..<n])) } catch { throw .net(error) }
            release(bytes, from: ref.weights + 4 * first * kind.weightsPerChannel, count: 4 * weights)
            first += count
        }
        if let bias = ref.bias { release(bytes, from: bias, count: 4 * ref.channels) }
    }

    /// Every worker's answer, ready (with its arena bytes) or refuse; all are
    /// awaited before deciding, so a refusal is reported the same way every time.
    func collectReadies() throws(NodeError) {
        var waiting = Set(workers)
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
        guard let engine else { throw .protocolViolation("inference before the leader started") }
        let program = programs[leaderIndex]
        let request = nextRequest
        nextRequest += 1
        engine.floats(at: schedule[0].current).update(from: input, count: inputCount)
        for (k, seg) in schedule.enumerated() {
            let current = engine.floats(at: seg.current)
            if !seg.remote.isEmpty {
                let payload = engine.floats(at: seg.sendPayload)
                let frame = UnsafeMutableRawBufferPointer(start: UnsafeMutableRawPointer(payload) - MessageHeader.size,
                                                          count: MessageHeader.size + 4 * seg.largestRemoteInput)
                for part in seg.remote {
                    let n = part.input.select(from: current, count: seg.inputCount, into: payload)
                    let length: Int
                    do throws(WireError) { length = try Wire.seal(kind: .activation, requestID: request, step: UInt32(k), payloadLength: 4 * n, in: frame) } catch { throw .wire(error) }
                    do throws(NetError) { try outboxes[part.board]!.send(UnsafeRawBufferPointer(rebasing: frame[0..<length])) } catch { throw .net(error) }
                    bytesSent[leaderIndex] += length; messagesSent[leaderIndex] += 1
                }
            }
            // The leader's own part, while the others compute.
            let assembled = engine.floats(at: seg.assembled)
            // Placed parts cover the whole tensor; only partial sums add onto it.
            if seg.sumsPartials { assembled.update(repeating: 0, count: seg.assembledCount) }
            if let own = seg.own {
                let step = program.steps[own.step]
                if own.input != .all { _ = own.input.select(from: current, count: seg.inputCount, into: engine.floats(at: step.input)) }
                for i in step.ops { engine.run(program.ops[i]) }
                own.output.place(engine.floats(at: step.output), count: step.outputCount, into: assembled)
            }
            try gather(seg, engine: engine, request: request, index: k)
            if let reduce = seg.reduce {
                let step = program.steps[reduce]
                for i in step.ops { engine.run(program.ops[i]) }
                if step.output != seg.current { current.update(from: engine.floats(at: step.output), count: seg.outputCount) }
            } else {
                current.update(from: assembled, count: seg.outputCount)
            }
        }
        output.update(from: engine.floats(at: schedule[schedule.count - 1].current), count: outputCount)
        inferences += 1
    }

    /// Receives one result from every other board of the segment and places it.
    func gather(_ seg: LeaderSegment, engine: Engine, request: UInt64, index k: Int) throws(NodeError) {
        if seg.remote.isEmpty { return }
        let payload = engine.floats(at: seg.receivePayload)
        // Each result is the board's index, then its floats, which land at `receivePayload`.
        let reply = UnsafeMutableRawBufferPointer(start: UnsafeMutableRawPointer(payload) - 4 - MessageHeader.size,
                                                  count: MessageHeader.size + 4 + 4 * seg.largestRemoteOutput)
        let assembled = engine.floats(at: seg.assembled)
        for r in seg.remote { answered[r.board] = false }
        for _ in 0..<seg.remote.count {
            let length: Int
            do throws(NetError) { length = try inbox.receive(into: reply) } catch {
                if error.isTimeout {
                    var missing = ""
                    for r in seg.remote where !answered[r.board] { missing += (missing.isEmpty ? "'" : ", '") + boards[r.board].name + "'" }
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
            guard let remote = seg.remote.first(where: { $0.board == board }), !answered[board],
                  Int(header.payloadLength) == 4 + 4 * remote.outputCount else {
                throw .protocolViolation("unexpected result from board " + String(board) + " for step " + String(k))
            }
            remote.output.place(payload, count: remote.outputCount, into: assembled)
            answered[board] = true
            bytesSent[board] += length; messagesSent[board] += 1
        }
    }

    /// Tells every worker to stop; safe to call more than once.
    /// Each message gets up to 2 s to reach its board once the socket closes (see `Context.terminate`).
    public func shutdown() {
        for out in outboxes where out != nil {
            try? out!.sendFrame(.shutdown)
            try? out!.setLinger(2000)
        }
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
