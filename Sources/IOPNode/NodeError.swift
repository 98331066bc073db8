import IOPCore
import IOPNet
import IOPWire

public enum NodeError: Error, Sendable {
    case net(NetError)
    case wire(WireError)
    case core(CoreError)
    /// A board's arena would exceed its memory budget.
    case refused(board: String, bytesNeeded: Int, budgetBytes: Int)
    /// A peer sent something the protocol does not allow here.
    case protocolViolation(String)
    /// No answer within the timeout (a peer died or hangs).
    case timedOut(waitingFor: String)

    /// No answer in time, whether the socket or a protocol wait said so.
    public var isTimeout: Bool {
        switch self {
        case .timedOut: return true
        case .net(let e): return e.isTimeout
        default: return false
        }
    }

    public var message: String {
        switch self {
        case .net(let e): return e.message
        case .wire(let e): return "bad message from a peer: " + e.message
        case .core(let e): return e.message
        case .refused(let b, let n, let budget):
            return "board '" + b + "' refused its program: it needs " + String(n) + " bytes, its budget is " + String(budget)
        case .protocolViolation(let m): return "protocol violation: " + m
        case .timedOut(let w): return "timed out waiting for " + w
        }
    }
}

/// Small helpers shared by both roles.
extension Socket {
    func sendFrame(_ kind: MessageKind, requestID: UInt64 = 0, step: UInt32 = 0, payload: [UInt8] = []) throws(NodeError) {
        var frame = [UInt8](repeating: 0, count: MessageHeader.size + payload.count)
        var failure: NodeError?
        payload.withUnsafeBytes { p in
            frame.withUnsafeMutableBytes { f in
                do throws(WireError) { _ = try Wire.encode(kind: kind, requestID: requestID, step: step, payload: p, into: f) } catch { failure = .wire(error) }
            }
        }
        if let failure { throw failure }
        frame.withUnsafeBytes { b in
            do throws(NetError) { try send(b) } catch { failure = .net(error) }
        }
        if let failure { throw failure }
    }

    /// One whole message and its header (setup path: allocates).
    func receiveFrame(waitingFor what: String, maxPayload: Int) throws(NodeError) -> (MessageHeader, [UInt8]) {
        let bytes: [UInt8]
        do { bytes = try receiveMessage() } catch {
            if error.isTimeout { throw .timedOut(waitingFor: what) }
            throw .net(error)
        }
        var result: Result<MessageHeader, WireError> = .failure(.malformedPayload)
        bytes.withUnsafeBytes { b in
            do throws(WireError) { result = .success(try Wire.decode(b, maxPayload: maxPayload)) } catch { result = .failure(error) }
        }
        switch result {
        case .success(let header): return (header, Array(bytes[MessageHeader.size...]))
        case .failure(let e): throw .wire(e)
        }
    }
}
