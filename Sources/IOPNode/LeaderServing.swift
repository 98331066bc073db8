import CIOPSystem
import IOPCore
import IOPNet
import IOPProgram
import IOPWire

extension Leader {
    /// Answers requests arriving on `requests` until a client sends `shutdown`
    /// or the supervisor says stop (the request in hand is answered first).
    /// An inference request is answered with a `result` frame at the endpoint
    /// it names; a failed inference with an `error` frame, then rethrown. A
    /// `stats` request is answered with the counters. Frames that are not
    /// valid requests are dropped. Either way out, the workers are told to shut down.
    public func serve(_ requests: Socket, context: Context) throws(NodeError) {
        do throws(NetError) {
            try requests.setTimeouts(sendMs: 5000, receiveMs: supervisor.checkIntervalMs)
        } catch { throw .net(error) }
        // Every buffer of the serving loop, allocated once.
        let requestBytes = MessageHeader.size + InferenceRequest.maxSize(inputCount: inputCount)
        let incoming = UnsafeMutableRawBufferPointer.allocate(byteCount: requestBytes, alignment: 64)
        let outgoing = UnsafeMutableRawBufferPointer.allocate(
            byteCount: MessageHeader.size + 4 * max(outputCount, 64), alignment: 64)
        let input = UnsafeMutablePointer<Float>.allocate(capacity: max(inputCount, 1))
        defer { incoming.deallocate(); outgoing.deallocate(); input.deallocate() }
        var replies = ReplySockets(context: context)
        while true {
            let length: Int
            do throws(NetError) { length = try requests.receive(into: incoming) } catch {
                if !error.isTimeout { throw .net(error) }
                if !supervisor.check() { shutdown(); return }
                continue
            }
            let started = iop_monotonic_ns()
            let frame = UnsafeRawBufferPointer(rebasing: incoming[0..<length])
            guard let header = try? Wire.decode(frame, maxPayload: requestBytes) else { continue }
            let payload = UnsafeRawBufferPointer(rebasing: frame[MessageHeader.size...])
            switch header.kind {
            case .shutdown:
                shutdown()
                return
            case .stats:
                guard let endpoint = try? StatsRequest.parse(payload),
                    let reply = replies.socket(UnsafeRawBufferPointer(rebasing: payload[endpoint]))
                else { continue }
                try? reply.sendFrame(.stats, requestID: header.requestID, payload: stats.encode())
            case .request:
                guard let parts = try? InferenceRequest.parse(payload, inputCount: inputCount),
                    let reply = replies.socket(UnsafeRawBufferPointer(rebasing: payload[parts.replyEndpoint]))
                else { continue }
                UnsafeMutableRawPointer(input).copyMemory(
                    from: payload.baseAddress! + parts.input.lowerBound, byteCount: parts.input.count)
                let out = (outgoing.baseAddress! + MessageHeader.size).assumingMemoryBound(to: Float.self)
                do throws(NodeError) {
                    try infer(input: input, output: out)
                    let n: Int
                    do throws(WireError) {
                        n = try Wire.seal(
                            kind: .result, requestID: header.requestID, payloadLength: 4 * outputCount, in: outgoing)
                    } catch { throw .wire(error) }
                    do throws(NetError) {
                        try reply.send(UnsafeRawBufferPointer(rebasing: outgoing[0..<n]))
                    } catch { throw .net(error) }
                    lastRequestNs = iop_monotonic_ns() &- started
                } catch {
                    try? reply.sendFrame(.error, requestID: header.requestID, payload: Array(error.message.utf8))
                    shutdown()
                    throw error
                }
            default:
                continue
            }
            if !supervisor.check() { shutdown(); return }
        }
    }
}

/// The socket to the requester's reply endpoint, kept while the requester
/// stays the same, so a steady client costs no allocation per request.
struct ReplySockets {
    let context: Context
    var endpoint: [UInt8] = []
    var current: Socket?

    init(context: Context) { self.context = context }

    /// A connected socket to `endpoint`, or nil when it cannot be reached (the request is dropped).
    mutating func socket(_ endpoint: UnsafeRawBufferPointer) -> Socket? {
        if let current, endpoint.elementsEqual(self.endpoint) { return current }
        self.endpoint = Array(endpoint)
        current = nil
        do throws(NetError) {
            let s = try Socket(context, .push)
            try s.setTimeouts(sendMs: 5000, receiveMs: 5000)
            try s.connect(String(decoding: self.endpoint, as: UTF8.self))
            current = s
        } catch { return nil }
        return current
    }
}
