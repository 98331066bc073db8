import CIOPSystem
import IOPCore
import IOPNet
import IOPProgram
import IOPWire

/// One cooperative inference: scatter, the leader's own part, gather, reduce.
extension Leader {
    /// One cooperative inference. Allocates nothing.
    public func infer(input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>) throws(NodeError) {
        guard let engine else { throw .protocolViolation("inference before the leader started") }
        let program = programs[leaderIndex]
        let request = nextRequest
        nextRequest += 1
        // A board whose link dropped since the last request is lost before anything is sent.
        if let lost = lostWorker() { throw .lost(board: boards[lost].name, reason: "its link dropped") }
        engine.floats(at: schedule[0].current).update(from: input, count: inputCount)
        for (k, seg) in schedule.enumerated() {
            let began = iop_monotonic_ns()
            let current = engine.floats(at: seg.current)
            if !seg.remote.isEmpty {
                let payload = engine.floats(at: seg.sendPayload)
                let frame = UnsafeMutableRawBufferPointer(
                    start: UnsafeMutableRawPointer(payload) - MessageHeader.size,
                    count: MessageHeader.size + 4 * seg.largestRemoteInput)
                for part in seg.remote {
                    // fp16: narrowed while selected, into the same frame (sized for fp32, so the halves fit).
                    let n =
                        seg.wire == .fp16
                        ? part.input.selectNarrowing(from: current, count: seg.inputCount, into: payload)
                        : part.input.select(from: current, count: seg.inputCount, into: payload)
                    let length: Int
                    do throws(WireError) {
                        length = try Wire.seal(
                            kind: .activation, requestID: request, step: UInt32(k),
                            payloadLength: seg.wire.bytesPerElement * n, in: frame)
                    } catch { throw .wire(error) }
                    try send(UnsafeRawBufferPointer(rebasing: frame[0..<length]), to: part.board)
                    bytesSent[leaderIndex] += length; messagesSent[leaderIndex] += 1
                }
            }
            let scattered = iop_monotonic_ns()
            // The leader's own part, while the others compute.
            let assembled = engine.floats(at: seg.assembled)
            // Placed parts cover the whole tensor; only partial sums add onto it.
            if seg.sumsPartials { assembled.update(repeating: 0, count: seg.assembledCount) }
            if let own = seg.own {
                let step = program.steps[own.step]
                if own.input != .all {
                    _ = own.input.select(from: current, count: seg.inputCount, into: engine.floats(at: step.input))
                }
                for i in step.ops { engine.run(program.ops[i]) }
                own.output.place(engine.floats(at: step.output), count: step.outputCount, into: assembled)
            }
            let ownDone = iop_monotonic_ns()
            try gather(seg, engine: engine, request: request, index: k)
            let gathered = iop_monotonic_ns()
            if let reduce = seg.reduce {
                let step = program.steps[reduce]
                for i in step.ops { engine.run(program.ops[i]) }
                if step.output != seg.current {
                    current.update(from: engine.floats(at: step.output), count: seg.outputCount)
                }
            } else {
                current.update(from: assembled, count: seg.outputCount)
            }
            segmentTimes[k].scatterNs &+= scattered &- began
            segmentTimes[k].ownNs &+= ownDone &- scattered
            segmentTimes[k].gatherNs &+= gathered &- ownDone
            segmentTimes[k].reduceNs &+= iop_monotonic_ns() &- gathered
        }
        planInferences += 1
        cpuNow[leaderIndex] = iop_process_cpu_ns()
        if planInferences == 1 { for b in cpuNow.indices { cpuFrom[b] = cpuNow[b] } }
        output.update(from: engine.floats(at: schedule[schedule.count - 1].current), count: outputCount)
        inferences += 1
    }

    /// Receives one result from every other board of the segment and places it.
    func gather(_ seg: LeaderSegment, engine: Engine, request: UInt64, index k: Int) throws(NodeError) {
        if seg.remote.isEmpty { return }
        let payload = engine.floats(at: seg.receivePayload)
        // Each result is the board's index, then its floats, which land at `receivePayload`.
        let reply = UnsafeMutableRawBufferPointer(
            start: UnsafeMutableRawPointer(payload) - PartResult.headerSize - MessageHeader.size,
            count: MessageHeader.size + PartResult.headerSize + 4 * seg.largestRemoteOutput)
        let assembled = engine.floats(at: seg.assembled)
        for r in seg.remote { answered[r.board] = false }
        var pending = seg.remote.count
        // Rejected frames do not extend the wait: the step has `timeoutMs` in all.
        let deadline = waitDeadline()
        var accepted = true
        while pending > 0 {
            // Only rejected frames are cut short at the deadline: a valid result that arrives late still counts.
            if !accepted && iop_monotonic_ns() > deadline { throw timedOut(seg, index: k) }
            accepted = false
            let length: Int
            do throws(NetError) { length = try inbox.receive(into: reply) } catch {
                if error.isTimeout {
                    // A heartbeat's wait with nothing: has a board we wait for dropped its link?
                    for r in seg.remote where !answered[r.board] && lost(r.board) {
                        throw .lost(board: boards[r.board].name, reason: "its link dropped during step " + String(k))
                    }
                    if iop_monotonic_ns() > deadline { throw timedOut(seg, index: k) }
                    continue
                }
                if error.truncatedLength > 0 {
                    rejected.reject(
                        "a result of " + String(error.truncatedLength) + " bytes, larger than any of step "
                            + String(k))
                    continue
                }
                throw .net(error)
            }
            let header: MessageHeader
            do throws(WireError) {
                header = try Wire.decode(UnsafeRawBufferPointer(rebasing: reply[0..<length]), maxPayload: reply.count)
            } catch {
                rejected.reject("a bad result frame: " + error.message)
                continue
            }
            if header.kind == .hello {
                noteHello(UnsafeRawBufferPointer(rebasing: reply[MessageHeader.size..<length]))
                continue
            }
            // A late answer to an earlier request, or a foreign frame: not this step's.
            guard header.kind == .activation, header.requestID == request, Int(header.step) == k,
                header.payloadLength >= PartResult.headerSize,
                let part = try? PartResult.read(UnsafeRawBufferPointer(rebasing: reply[MessageHeader.size..<length])),
                let remote = seg.remote.first(where: { $0.board == part.board }), !answered[part.board],
                Int(header.payloadLength) == PartResult.headerSize + seg.wire.bytesPerElement * remote.outputCount
            else {
                rejected.reject(
                    "a frame of kind " + String(header.kind.rawValue) + " for request " + String(header.requestID)
                        + " step " + String(header.step) + " while gathering request " + String(request) + " step "
                        + String(k))
                continue
            }
            if seg.wire == .fp16 {
                // Widened straight into the assembled tensor; partial sums are added in fp32.
                remote.output.placeWidening(UnsafeRawPointer(payload), count: remote.outputCount, into: assembled)
            } else {
                remote.output.place(payload, count: remote.outputCount, into: assembled)
            }
            let board = part.board
            answered[board] = true
            cpuNow[board] = part.cpuNs
            accepted = true
            pending -= 1
            bytesSent[board] += length; messagesSent[board] += 1
        }
    }

    /// A step that got no answer in time: its first silent board is declared lost.
    func timedOut(_ seg: LeaderSegment, index k: Int) -> NodeError {
        let silent = seg.remote.first { !answered[$0.board] }.map { boards[$0.board].name } ?? "?"
        return .lost(board: silent, reason: "no answer to step " + String(k) + " within " + String(timeoutMs) + " ms")
    }
}

extension Leader {
    /// One inference from and into arrays: for tools and tests, not the allocation-free path.
    public func infer(_ input: [Float]) throws(NodeError) -> [Float] {
        var out = [Float](repeating: 0, count: outputCount)
        var failure: NodeError?
        input.withUnsafeBufferPointer { i in
            out.withUnsafeMutableBufferPointer { o in
                do throws(NodeError) { try infer(input: i.baseAddress!, output: o.baseAddress!) } catch {
                    failure = error
                }
            }
        }
        if let failure { throw failure }
        return out
    }
}
