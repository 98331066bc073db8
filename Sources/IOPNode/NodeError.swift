import IOPCore
import IOPNet
import IOPWire

public enum NodeError: Error, Sendable {
    case net(NetError)
    case wire(WireError)
    case core(CoreError)
    /// A board cannot hold its program: its arena would exceed its budget, or the system would not give it the memory.
    case refused(board: String, reason: Refuse.Reason, bytesNeeded: Int, budgetBytes: Int)
    /// A peer sent something the protocol does not allow here.
    case protocolViolation(String)
    /// No answer within the timeout (a peer died or hangs).
    case timedOut(waitingFor: String)
    /// A worker stopped answering: its link dropped (it exited, or missed three heartbeats), or a step timed out.
    case lost(board: String, reason: String)
    /// The keyring lacks a key this node needs.
    case keys(String)

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
        case .refused(let b, .overBudget, let n, let budget):
            return "board '" + b + "' refused its program: it needs " + String(n) + " bytes, its budget is "
                + String(budget)
        case .refused(let b, .cannotAllocate, let n, _):
            return "board '" + b + "' refused its program: the system would not give it an arena of " + String(n)
                + " bytes (its budget allows it; lower the budget or free memory)"
        case .protocolViolation(let m): return "protocol violation: " + m
        case .timedOut(let w): return "timed out waiting for " + w
        case .keys(let m): return "keys: " + m
        case .lost(let board, let reason): return "board '" + board + "' was lost: " + reason
        }
    }
}
