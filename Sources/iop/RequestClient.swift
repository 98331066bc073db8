import Foundation
import IOPNet
import IOPNode
import IOPWire

struct CommandFailure: Error, CustomStringConvertible { var description: String }

/// Sends requests to a leader and waits for the answers (`InferenceRequest`, `StatsRequest`).
final class RequestClient {
    let context: Context
    let push: Socket, pull: Socket
    let replyEndpoint: [UInt8]
    var nextID: UInt64 = 1

    /// With `keys` (a client's, from `iop keys`), requests go over CURVE to the keyring's leader and only that
    /// leader's answers are let in; nil sends plain frames (a leader started with --insecure).
    init(leader: String, reply: String = "tcp://127.0.0.1:*", timeoutMs: Int32 = 60_000, keys: Keyring?) throws {
        context = try Context()
        if let keys, keys.leader == nil {
            throw CommandFailure(description: "the client keys of '\(keys.name)' name no leader")
        }
        if let keys { try keys.admit([.leader], domain: Keyring.Domain.replies, context: context) }
        pull = try Socket(context, .pull)
        if let keys { try pull.makeCurveServer(keys.own, domain: Keyring.Domain.replies) }
        try pull.setTimeouts(sendMs: timeoutMs, receiveMs: timeoutMs)
        try pull.bind(reply)
        replyEndpoint = Array(try pull.boundEndpoint().utf8)
        push = try Socket(context, .push)
        if let keys { try push.makeCurveClient(keys.own, server: keys.leader!.publicKey) }
        try push.setTimeouts(sendMs: timeoutMs, receiveMs: timeoutMs)
        try push.connect(leader)
    }

    func infer(_ input: [Float]) throws -> [Float] { try inferWithPlan(input).output }

    /// The answer and which plan gave it (0: the full plan; k: the one without the full plan's board k - 1).
    func inferWithPlan(_ input: [Float]) throws -> (output: [Float], plan: UInt32) {
        let (header, payload) = try ask(
            .request, InferenceRequest.encode(replyEndpoint: replyEndpoint, input: input), answer: .result)
        return (payload.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }, header.step)
    }

    /// The leader's counters since it started.
    func stats() throws -> ClusterStats {
        let (_, payload) = try ask(.stats, StatsRequest.encode(replyEndpoint: replyEndpoint), answer: .stats)
        return try payload.withUnsafeBytes { try ClusterStats.decode($0) }
    }

    func shutdownLeader() throws { try send(.shutdown, payload: [], id: 0) }

    /// Sends one request and returns the payload of its answer (an `error` answer throws the leader's message).
    func ask(_ kind: MessageKind, _ payload: [UInt8], answer: MessageKind) throws -> (MessageHeader, ArraySlice<UInt8>)
    {
        let id = nextID
        nextID += 1
        try send(kind, payload: payload, id: id)
        while true {
            let bytes: [UInt8]
            do { bytes = try pull.receiveMessage() } catch {
                throw CommandFailure(
                    description: error.isTimeout ? "no answer from the leader within the timeout" : error.message)
            }
            let header = try bytes.withUnsafeBytes { try Wire.decode($0, maxPayload: bytes.count) }
            guard header.requestID == id else { continue }
            let payload = bytes[MessageHeader.size...]
            if header.kind == .error {
                throw CommandFailure(description: "the leader failed: " + String(decoding: payload, as: UTF8.self))
            }
            guard header.kind == answer else {
                throw CommandFailure(description: "unexpected answer kind \(header.kind.rawValue)")
            }
            return (header, payload)
        }
    }

    func send(_ kind: MessageKind, payload: [UInt8], id: UInt64) throws {
        var frame = [UInt8](repeating: 0, count: MessageHeader.size + payload.count)
        _ = try payload.withUnsafeBytes { p in
            try frame.withUnsafeMutableBytes { try Wire.encode(kind: kind, requestID: id, payload: p, into: $0) }
        }
        try frame.withUnsafeBytes { try push.send($0) }
    }
}
