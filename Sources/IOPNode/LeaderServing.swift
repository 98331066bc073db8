import CIOPSystem
import IOPCore
import IOPNet
import IOPProgram
import IOPWire

extension Leader {
    /// Binds the port clients send requests to. With keys it admits the keyring's clients and admins only.
    public func bindRequests(_ endpoint: String, context: Context) throws(NodeError) -> Socket {
        if let keys { try keys.admit([.client, .admin], domain: Keyring.Domain.requests, context: context) }
        do throws(NetError) {
            let s = try Socket(context, .pull)
            if let keys { try s.makeCurveServer(keys.own, domain: Keyring.Domain.requests) }
            try s.setMaxMessageSize(MessageHeader.size + InferenceRequest.maxSize(inputCount: inputCount))
            try s.bindRetrying(endpoint)
            return s
        } catch { throw .net(error) }
    }

    /// Answers requests arriving on `requests` until a client sends `shutdown`
    /// or the supervisor says stop (the request in hand is answered first).
    /// An inference request is answered with a `result` frame at the endpoint
    /// it names; a failed inference with an `error` frame, then rethrown. A
    /// `stats` request is answered with the counters. Frames that are not
    /// valid requests are rejected (counted), and so is `shutdown` from a client
    /// that is no admin. Either way out, the workers are told to shut down.
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
        let peer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 8)
        defer { incoming.deallocate(); outgoing.deallocate(); input.deallocate(); peer.deallocate() }
        var replies = ReplySockets(context: context, keys: keys)
        while true {
            let length: Int, peerLength: Int
            do throws(NetError) { (length, peerLength) = try requests.receive(into: incoming, peer: peer) } catch {
                if error.truncatedLength > 0 {
                    rejected.reject("a request of " + String(error.truncatedLength) + " bytes, larger than any")
                    continue
                }
                if !error.isTimeout { throw .net(error) }
                // A quiet interval: has a worker been lost, or has a lost one come back?
                _ = checkBoards()
                if !supervisor.check() { shutdown(); return }
                continue
            }
            let started = iop_monotonic_ns()
            let frame = UnsafeRawBufferPointer(rebasing: incoming[0..<length])
            let header: MessageHeader
            do throws(WireError) { header = try Wire.decode(frame, maxPayload: requestBytes) } catch {
                rejected.reject("a bad request frame: " + error.message)
                if !supervisor.check() { shutdown(); return }
                continue
            }
            let payload = UnsafeRawBufferPointer(rebasing: frame[MessageHeader.size...])
            switch header.kind {
            case .shutdown:
                let sender = UnsafeRawBufferPointer(rebasing: peer[0..<peerLength])
                guard keys == nil || keys!.peer(userID: sender)?.role == .admin else {
                    rejected.reject("shutdown from '" + String(decoding: sender, as: UTF8.self) + "', who is no admin")
                    break
                }
                shutdown()
                return
            case .stats:
                let sender = UnsafeRawBufferPointer(rebasing: peer[0..<peerLength])
                guard let endpoint = try? StatsRequest.parse(payload),
                    let reply = replies.socket(UnsafeRawBufferPointer(rebasing: payload[endpoint]), peer: sender)
                else {
                    rejected.reject("a stats request without a reachable reply endpoint")
                    break
                }
                try? reply.sendFrame(.stats, requestID: header.requestID, payload: stats.encode())
            case .request:
                let sender = UnsafeRawBufferPointer(rebasing: peer[0..<peerLength])
                guard let parts = try? InferenceRequest.parse(payload, inputCount: inputCount),
                    let reply = replies.socket(
                        UnsafeRawBufferPointer(rebasing: payload[parts.replyEndpoint]), peer: sender)
                else {
                    rejected.reject("a request that does not parse, or without a reachable reply endpoint")
                    break
                }
                UnsafeMutableRawPointer(input).copyMemory(
                    from: payload.baseAddress! + parts.input.lowerBound, byteCount: parts.input.count)
                let out = (outgoing.baseAddress! + MessageHeader.size).assumingMemoryBound(to: Float.self)
                do throws(NodeError) {
                    try inferSurvivingLoss(input: input, output: out)
                    let n: Int
                    do throws(WireError) {
                        // The answer's step field says which plan gave it (0: the full plan).
                        n = try Wire.seal(
                            kind: .result, requestID: header.requestID, step: UInt32(planID),
                            payloadLength: 4 * outputCount, in: outgoing)
                    } catch { throw .wire(error) }
                    do throws(NetError) {
                        try reply.send(UnsafeRawBufferPointer(rebasing: outgoing[0..<n]))
                    } catch { throw .net(error) }
                    lastRequestNs = iop_monotonic_ns() &- started
                } catch {
                    try? reply.sendFrame(.error, requestID: header.requestID, payload: Array(error.message.utf8))
                    // A lost board with no plan for the rest: answer errors until it comes back.
                    if case .lost = error { break }
                    shutdown()
                    throw error
                }
            default:
                rejected.reject("a frame of kind " + String(header.kind.rawValue) + " on the request port")
            }
            // Requests back to back leave no quiet interval: a board that came back is taken in here.
            if !rejoined.isEmpty { _ = checkBoards() }
            if !supervisor.check() { shutdown(); return }
        }
    }
}

extension Leader {
    /// One inference; when a worker is lost on the way, the leader moves to the survivors' plan and runs it
    /// again there. Throws `.lost` when no plan is left to run.
    func inferSurvivingLoss(input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>) throws(NodeError) {
        if engine == nil && !checkBoards() {
            throw .lost(board: lostName ?? "?", reason: "no plan was compiled for the boards that are left")
        }
        do throws(NodeError) { try infer(input: input, output: output) } catch {
            guard case .lost(let board, _) = error else { throw error }
            lostName = board
            guard switchPlan(lost: board) else { throw error }
            try infer(input: input, output: output)
        }
    }
}

/// The socket to the requester's reply endpoint, kept while the requester
/// stays the same, so a steady client costs no allocation per request. With
/// keys, the reply goes only to the key that sent the request.
struct ReplySockets {
    let context: Context
    let keys: Keyring?
    var endpoint: [UInt8] = []
    var peer: [UInt8] = []
    var current: Socket?

    init(context: Context, keys: Keyring?) { self.context = context; self.keys = keys }

    /// A connected socket to `endpoint`, or nil when it cannot be reached (the request is dropped).
    mutating func socket(_ endpoint: UnsafeRawBufferPointer, peer: UnsafeRawBufferPointer) -> Socket? {
        if let current, endpoint.elementsEqual(self.endpoint), peer.elementsEqual(self.peer) { return current }
        self.endpoint = Array(endpoint)
        self.peer = Array(peer)
        current = nil
        var serverKey: [UInt8]?
        if let keys {
            guard let p = keys.peer(userID: peer) else { return nil }
            serverKey = p.publicKey
        }
        do throws(NetError) {
            let s = try Socket(context, .push)
            if let keys, let serverKey { try s.makeCurveClient(keys.own, server: serverKey) }
            try s.setTimeouts(sendMs: 5000, receiveMs: 5000)
            try s.connect(String(decoding: self.endpoint, as: UTF8.self))
            current = s
        } catch { return nil }
        return current
    }
}
