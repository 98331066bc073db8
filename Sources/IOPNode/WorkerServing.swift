import CIOPSystem
import IOPCore
import IOPNet
import IOPProgram
import IOPWire

/// A serving worker: each activation in, its step run in the arena, the result out.
extension Worker {
    func serve(_ program: BoardProgram, engine: Engine, board: UInt64, control: UnsafeMutableRawBufferPointer)
        throws(NodeError)
    {
        // Which step serves each segment, and the one place every step's input arrives.
        var stepOf = [Int](repeating: -1, count: (program.steps.map { $0.segment }.max() ?? 0) + 1)
        for (i, s) in program.steps.enumerated() { stepOf[s.segment] = i }
        let largestInput = program.steps.reduce(0) { max($0, $1.inputCount) }
        let inputAt = 4 * (program.steps.first?.input ?? 0)
        let inputFrame =
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
            let header: MessageHeader
            switch receive(into: inputFrame, maxPayload: 4 * largestInput) {
            case .success(let h): header = h; idle.restart()
            case .failure(.timedOut):
                // The leader is gone (it exited, or missed three heartbeats): register again and wait for it, the
                // arena kept loaded for a leader that comes back with the same bundle.
                if leaderLink.takeDisconnections() > 0 {
                    registerAgain = true
                    keepsArena = true
                    return
                }
                // A quiet slice: the supervisor's turn; the idle limit counts whole slices.
                switch idle.sliceElapsed(supervisor) {
                case .again: continue
                case .stop: return
                case .expired: throw .timedOut(waitingFor: "work from the leader")
                }
            case .failure(.wire(let e)):
                rejected.reject("a bad frame while serving: " + e.message)
                if !supervisor.check() { return }
                continue
            case .failure(let e): throw e
            }
            let started = iop_monotonic_ns()
            switch header.kind {
            case .activation:
                let segment = Int(header.step)
                guard segment < stepOf.count, stepOf[segment] >= 0,
                    Int(header.payloadLength)
                        == program.steps[stepOf[segment]].wire.bytesPerElement
                        * program.steps[stepOf[segment]].inputCount
                else {
                    rejected.reject("an activation for step " + String(segment) + " that this board's program lacks")
                    if !supervisor.check() { return }
                    continue
                }
                let step = program.steps[stepOf[segment]]
                let wireBytes = step.wire.bytesPerElement
                // fp16 arrived where its floats belong: widened in place, from the end.
                if step.wire == .fp16 {
                    let input = engine.bytes.baseAddress! + 4 * step.input
                    Half.widen(input, count: step.inputCount, into: input)
                }
                for i in step.ops { engine.run(program.ops[i]) }
                // The reply frame is built in place: header, board index, then the output already in the arena
                // (fp16: narrowed in place, from the start).
                if step.wire == .fp16 {
                    let output = engine.bytes.baseAddress! + 4 * step.output
                    Half.narrow(output, count: step.outputCount, into: output)
                }
                let payloadAt = 4 * step.output - PartResult.headerSize
                let frame = UnsafeMutableRawBufferPointer(
                    rebasing: engine.bytes[
                        (payloadAt - MessageHeader.size)..<(4 * step.output + wireBytes * step.outputCount)])
                do throws(WireError) {
                    try PartResult.writeHeader(
                        board: Int(board), cpuNs: iop_process_cpu_ns(),
                        into: UnsafeMutableRawBufferPointer(rebasing: frame[MessageHeader.size...]))
                } catch { throw .wire(error) }
                let n: Int
                do throws(WireError) {
                    n = try Wire.seal(
                        kind: .activation, requestID: header.requestID, step: header.step,
                        payloadLength: PartResult.headerSize + wireBytes * step.outputCount, in: frame)
                } catch { throw .wire(error) }
                do throws(NetError) { try outbox.send(UnsafeRawBufferPointer(rebasing: frame[0..<n])) } catch {
                    throw .net(error)
                }
                inferencesServed += 1
                lastStepNs = iop_monotonic_ns() &- started
            case .shutdown:
                leaderShutDown()
                return
            case .hello:
                // The leader moves to another plan: this arena goes, a new program comes.
                registerAgain = true
                return
            default:
                rejected.reject("a message of kind " + String(header.kind.rawValue) + " while serving")
            }
            if !supervisor.check() { return }
        }
    }
}
