import CIOPSystem
import IOPCore
import IOPNet
import IOPProgram
import IOPWire

/// Setting a cluster up: hellos, programs, arenas, weight shards.
extension Leader {
    /// Waits for every worker's hello, sends the programs, allocates its own
    /// arena, sends the weight shards (read from `bundleBytes`, the bundle the
    /// schedule came from), and returns once all are ready. A refusal or a
    /// silent board stops every worker and throws.
    /// With `bundleIsMapped` (a read-only file mapping), each shard's pages are
    /// dropped once sent or packed, so loading never holds the whole bundle in memory.
    public func start(threads: Int, bundleBytes: UnsafeRawBufferPointer, bundleIsMapped: Bool = false) throws(NodeError)
    {
        releasesShards = bundleIsMapped
        self.threads = threads
        do throws(NodeError) {
            try setUp(threads: threads, bytes: bundleBytes)
        } catch {
            shutdown()
            throw error
        }
    }

    func setUp(threads: Int, bytes: UnsafeRawBufferPointer) throws(NodeError) {
        // Hellos, in any order (a board that came back may have said hello already).
        var budgets = [Int](repeating: 0, count: boards.count)
        var pending = Set(workers)
        // Workers still loaded with exactly this program (this leader restarted with the same bundle).
        var loaded = Set<Int>()
        var early = rejoined
        rejoined = []
        var deadline = waitDeadline()
        while !pending.isEmpty {
            let hello: Hello
            if let first = early.popLast() {
                hello = first.hello
            } else {
                guard let (h, payload) = try receiveFrame(waitingFor: "hello from " + names(pending), until: deadline)
                else { continue }
                var decoded: Hello?
                if h.kind == .hello { payload.withUnsafeBytes { decoded = try? Hello.decode($0) } }
                guard let d = decoded else {
                    rejected.reject(
                        "a frame of kind " + String(h.kind.rawValue) + " that is no hello, while registering")
                    continue
                }
                hello = d
            }
            let name = String(decoding: hello.name, as: UTF8.self)
            guard let i = boards.firstIndex(where: { $0.name == name }), pending.remove(i) != nil else {
                rejected.reject("a hello from unknown or repeated board '" + name + "'")
                continue
            }
            deadline = waitDeadline()
            // A worker that bound port `*` says where it listens; otherwise use the cluster file's endpoint.
            budgets[i] = Int(clamping: hello.budgetBytes)  // a 64-bit board's, on a 32-bit leader
            if hello.heldProgram != 0
                && hello.heldProgram == adler32(UnsafeRawBufferPointer(rebasing: bytes[programBytes[i]]))
            {
                loaded.insert(i)
            }
            let reported = String(decoding: hello.endpoint, as: UTF8.self)
            outboxes[i] = try link(name, reported.isEmpty ? boards[i].endpoint : reported)
            monitors[i] = links[name]?.monitor
        }
        // A board whose arena cannot fit its budget is refused before anything is sent: its
        // socket would drop messages larger than the budget, and it could not say why.
        budgets[leaderIndex] = boards[leaderIndex].budgetBytes
        if let over = boards.indices.first(where: { programs[$0].arenaBytes > budgets[$0] }) {
            throw .refused(
                board: boards[over].name, reason: .overBudget, bytesNeeded: programs[over].arenaBytes,
                budgetBytes: budgets[over])
        }
        // Programs (no weights yet): each board sizes its arena and answers ready, or refuses.
        for d in workers {
            if loaded.contains(d) {
                try send(.ready, requestID: UInt64(d), to: d)  // keep serving what you hold
            } else {
                try send(.program, requestID: UInt64(d), payload: Array(bytes[programBytes[d]]), to: d)
            }
        }
        try collectReadies(Set(workers))
        // The leader's own arena, its parameters packed straight from the bundle.
        let own = programs[leaderIndex]
        let engine: Engine
        do throws(CoreError) { engine = try Engine(arenaFloats: own.arenaFloats, threads: threads) } catch {
            if case .outOfMemory = error {
                throw .refused(
                    board: boards[leaderIndex].name, reason: .cannotAllocate, bytesNeeded: own.arenaBytes,
                    budgetBytes: boards[leaderIndex].budgetBytes)
            }
            throw .core(error)
        }
        self.engine = engine
        engine.prefault()
        arenaBytes[leaderIndex] = own.arenaBytes
        // Weight shards, whole channels per message, each frame built in the leader's
        // activation region (free until serving) and small enough for the board's. The workers' go first:
        // each waits for its shards with a time limit, and a leader held to a small CPU share can take
        // longer than that to pack its own.
        let stagingBytes = 4 * own.activationFloats
        for d in workers where !loaded.contains(d) {
            let frameBytes = min(
                stagingBytes, 4 * programs[d].activationFloats,
                max(ShardCodec.frameLimit, 4 * largestChannel(programs[d])))
            for ref in shards[d] {
                try sendShard(ref, to: d, program: programs[d], bytes: bytes, engine: engine, frameBytes: frameBytes)
            }
            try send(.ready, requestID: UInt64(d), to: d)
        }
        for ref in shards[leaderIndex] {
            let op = own.ops[ref.op], per = op.kind.weightsPerChannel
            // A few MiB at a time, so a mapped bundle's pages can go as soon as they are packed.
            let step = max(1, ShardCodec.frameLimit / max(4 * per, 1))
            var first = 0
            while first < ref.channels {
                let channels = first..<min(ref.channels, first + step)
                engine.load(
                    op, channels: channels, weights: floats(bytes, ref.weights) + first * per,
                    bias: ref.bias.map { floats(bytes, $0) + first })
                release(bytes, from: ref.weights + 4 * first * per, count: 4 * channels.count * per)
                first = channels.upperBound
            }
            if let bias = ref.bias { release(bytes, from: bias, count: 4 * ref.channels) }
        }
        try collectReadies(Set(workers).subtracting(loaded))
        resumedBoards = loaded.count
    }

    /// When a wait that starts now gives up: `timeoutMs` from now, or never when it is negative.
    func waitDeadline() -> UInt64 {
        timeoutMs < 0 ? UInt64.max : iop_monotonic_ns() &+ UInt64(timeoutMs) &* 1_000_000
    }

    /// One setup frame, or nil for a frame rejected as corrupted (counted); a socket failure throws, and so does
    /// silence until `deadline` (monotonic ns).
    func receiveFrame(waitingFor what: String, until deadline: UInt64) throws(NodeError) -> (MessageHeader, [UInt8])? {
        while true {
            do throws(NodeError) { return try inbox.receiveFrame(waitingFor: what, maxPayload: 1024) } catch {
                if error.isTimeout {
                    if iop_monotonic_ns() < deadline { continue }
                    throw error
                }
                guard case .wire(let e) = error else { throw error }
                rejected.reject("a bad frame while setting up: " + e.message)
                return nil
            }
        }
    }

    /// The biggest single-channel shard frame of a program: frames never split a channel.
    func largestChannel(_ p: BoardProgram) -> Int { p.ops.reduce(0) { max($0, ShardCodec.stagingFloats($1.kind)) } }

    /// Drops pages of a mapped bundle once their floats are sent or packed.
    func release(_ bytes: UnsafeRawBufferPointer, from offset: Int, count: Int) {
        if releasesShards { iop_release_mapped(bytes.baseAddress! + offset, count) }
    }

    /// Shard floats inside the bundle (4-byte aligned there).
    func floats(_ bytes: UnsafeRawBufferPointer, _ offset: Int) -> UnsafePointer<Float> {
        (bytes.baseAddress! + offset).assumingMemoryBound(to: Float.self)
    }

    func sendShard(
        _ ref: ProgramBundle.ShardRef, to d: Int, program: BoardProgram, bytes: UnsafeRawBufferPointer, engine: Engine,
        frameBytes: Int
    ) throws(NodeError) {
        let kind = program.ops[ref.op].kind
        let hasBias = ref.bias != nil
        let per = ShardCodec.channelsPerMessage(kind, hasBias: hasBias, frameBytes: frameBytes)
        var first = 0
        while first < ref.channels {
            let count = min(per, ref.channels - first)
            let payloadLength = ShardCodec.payloadSize(kind, channels: count, hasBias: hasBias)
            let frame = UnsafeMutableRawBufferPointer(rebasing: engine.bytes[0..<(MessageHeader.size + payloadLength)])
            let payload = frame.baseAddress! + MessageHeader.size
            do throws(WireError) {
                try ShardCodec.write(
                    .init(op: ref.op, first: first, count: count, hasBias: hasBias),
                    into: UnsafeMutableRawBufferPointer(rebasing: frame[MessageHeader.size...]))
            } catch { throw .wire(error) }
            let weights = count * kind.weightsPerChannel
            (payload + ShardCodec.headerSize).copyMemory(
                from: floats(bytes, ref.weights) + first * kind.weightsPerChannel, byteCount: 4 * weights)
            if let bias = ref.bias {
                (payload + ShardCodec.headerSize + 4 * weights).copyMemory(
                    from: floats(bytes, bias) + first, byteCount: 4 * count)
            }
            let n: Int
            do throws(WireError) {
                n = try Wire.seal(kind: .weightShard, requestID: UInt64(d), payloadLength: payloadLength, in: frame)
            } catch { throw .wire(error) }
            try send(UnsafeRawBufferPointer(rebasing: frame[0..<n]), to: d)
            release(bytes, from: ref.weights + 4 * first * kind.weightsPerChannel, count: 4 * weights)
            first += count
        }
        if let bias = ref.bias { release(bytes, from: bias, count: 4 * ref.channels) }
    }

    /// Every worker's answer, ready (with its arena bytes) or refuse; all are
    /// awaited before deciding, so a refusal is reported the same way every time.
    func collectReadies(_ expected: Set<Int>) throws(NodeError) {
        var waiting = expected
        var refusals: [(board: Int, refuse: Refuse)] = []
        var deadline = waitDeadline()
        while !waiting.isEmpty {
            guard let (h, payload) = try receiveFrame(waitingFor: "ready from " + names(waiting), until: deadline)
            else { continue }
            let board = Int(h.requestID)
            var ready: Ready?, refuse: Refuse?
            if h.kind == .ready { payload.withUnsafeBytes { ready = try? Ready.decode($0) } }
            if h.kind == .refuse { payload.withUnsafeBytes { refuse = try? Refuse.decode($0) } }
            guard ready != nil || refuse != nil, waiting.remove(board) != nil else {
                rejected.reject(
                    "a frame of kind " + String(h.kind.rawValue) + " from board " + String(board)
                        + " while waiting for ready or refuse")
                continue
            }
            // Clamped: a 64-bit worker's arena may not fit a 32-bit leader's Int (the figure is only reported).
            if let ready { arenaBytes[board] = Int(clamping: ready.arenaBytes) }
            if let refuse { refusals.append((board, refuse)) }
            deadline = waitDeadline()
        }
        if let first = refusals.min(by: { $0.board < $1.board }) {
            throw .refused(
                board: boards[first.board].name, reason: first.refuse.reason,
                bytesNeeded: Int(clamping: first.refuse.bytesNeeded),
                budgetBytes: Int(clamping: first.refuse.budgetBytes))
        }
    }
}
