import CIOPSystem
import IOPCore
import IOPNet
import IOPProgram
import IOPWire

/// A worker's setup after its program arrives: the arena, or a refusal; then the weight shards.
extension Worker {
    /// Allocates the one arena (or refuses), packs the weight shards into it, then serves.
    func load(_ program: BoardProgram, checksum: UInt32, board: UInt64, wait: inout SlicedWait) throws(NodeError) {
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
        engine.prefault()
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
            let header: MessageHeader
            switch receive(into: staging, maxPayload: staging.count) {
            case .success(let h): header = h
            case .failure(.timedOut):
                switch wait.sliceElapsed(supervisor) {
                case .again: continue loading
                case .stop: return
                case .expired: throw .timedOut(waitingFor: "the leader's weight shards")
                }
            case .failure(.wire(let e)):
                rejected.reject("a bad frame while loading weights: " + e.message)
                continue loading
            case .failure(let e): throw e
            }
            wait.restart()
            switch header.kind {
            case .weightShard:
                let payload = UnsafeRawBufferPointer(
                    rebasing: staging[MessageHeader.size..<(MessageHeader.size + Int(header.payloadLength))])
                let shard: ShardCodec.Header
                do throws(WireError) { shard = try ShardCodec.read(payload, ops: program.ops, loaded: loaded) } catch {
                    rejected.reject("a weight shard that does not fit the program: " + error.message)
                    continue loading
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
                    rejected.reject(
                        "ready after " + String(loaded[missing]) + " of op " + String(missing) + "'s "
                            + String(program.ops[missing].kind.parameterChannels) + " weight channels")
                    continue loading
                }
                break loading
            case .shutdown:
                leaderShutDown()
                return
            case .hello:
                registerAgain = true
                return
            default:
                rejected.reject("a message of kind " + String(header.kind.rawValue) + " while loading weights")
            }
        }
        // Serving starts now (systemd hears READY=1 here), before the leader can count this board ready.
        held = (program, engine, board, checksum)
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
}

extension Worker {
    /// One frame into `buffer`, checked: its header, a timeout, a frame to reject (`.wire`), or a socket failure.
    func receive(into buffer: UnsafeMutableRawBufferPointer, maxPayload: Int) -> Result<MessageHeader, NodeError> {
        do throws(NetError) {
            let n = try inbox.receive(into: buffer)
            do throws(WireError) {
                return .success(
                    try Wire.decode(UnsafeRawBufferPointer(rebasing: buffer[0..<n]), maxPayload: maxPayload))
            } catch { return .failure(.wire(error)) }
        } catch {
            if error.isTimeout { return .failure(.timedOut(waitingFor: "the leader")) }
            // Longer than the buffer: no frame this board expects.
            if error.truncatedLength > 0 {
                return .failure(.wire(.oversized(length: error.truncatedLength, limit: buffer.count)))
            }
            return .failure(.net(error))
        }
    }
}
