import ArgumentParser
import Foundation
import IOPPlan

/// `iop cluster --fail NAME@K[:MS]`: board NAME's process is killed right after request K and, with `:MS`,
/// started again MS milliseconds later. The run then reports what the loss cost.
struct FailureSpec {
    var board: String
    var afterRequest: Int
    var restartMs: Int?

    init(parsing text: String) throws {
        let parts = text.split(separator: "@", omittingEmptySubsequences: false)
        let rest = parts.count == 2 ? parts[1].split(separator: ":", omittingEmptySubsequences: false) : []
        guard parts.count == 2, !parts[0].isEmpty, (1...2).contains(rest.count), let k = Int(rest[0]), k >= 1,
            rest.count == 1 || Int(rest[1]).map({ $0 >= 0 }) == true
        else {
            throw ValidationError(
                "--fail \(text): expected NAME@K or NAME@K:MS (after request K >= 1, restart MS >= 0)")
        }
        board = String(parts[0]); afterRequest = k; restartMs = rest.count == 2 ? Int(rest[1]) : nil
    }

    func check(_ cluster: Cluster, requests: Int) throws {
        guard let i = cluster.devices.firstIndex(where: { $0.name == board }) else {
            throw CommandFailure(
                description: "--fail: no board '\(board)' (boards: "
                    + cluster.devices.map(\.name).joined(separator: ", ") + ")")
        }
        guard i != cluster.leader else {
            throw CommandFailure(description: "--fail: '\(board)' is the leader; only a worker's loss is survived")
        }
        guard afterRequest < requests else {
            throw CommandFailure(description: "--fail: request \(afterRequest) is not before the last (\(requests))")
        }
    }
}

/// What one run with a lost board measured: answers and failures, and how long the service took to recover.
struct FailureRecord {
    let spec: FailureSpec
    var killedAt: UInt64?
    var restartedAt: UInt64?
    var answered = 0
    var failed = 0
    var failoverMs: Double?
    var rejoinMs: Double?
    var lastAnswerAt: UInt64?
    var maxGapMs = 0.0

    /// An answer at `now`, from plan `plan` (0: the full plan).
    mutating func answer(at now: UInt64, plan: UInt32) {
        answered += 1
        if let last = lastAnswerAt { maxGapMs = max(maxGapMs, Double(now - last) / 1e6) }
        lastAnswerAt = now
        if let killedAt, failoverMs == nil, plan != 0 { failoverMs = Double(now - killedAt) / 1e6 }
        if let restartedAt, rejoinMs == nil, plan == 0 { rejoinMs = Double(now - restartedAt) / 1e6 }
    }

    var json: [String: Any] {
        var out: [String: Any] = ["answered": answered, "failed": failed, "max_gap_ms": maxGapMs]
        if let failoverMs { out["failover_ms"] = failoverMs }
        if let rejoinMs { out["rejoin_ms"] = rejoinMs }
        return out
    }

    var summary: String {
        var s = "lost '\(spec.board)' after request \(spec.afterRequest): \(answered) answered, \(failed) failed"
        if let failoverMs { s += String(format: "; serving without it after %.0f ms", failoverMs) }
        if let rejoinMs { s += String(format: "; back on the full plan %.0f ms after its restart", rejoinMs) }
        return s + String(format: "; longest gap between answers %.0f ms", maxGapMs)
    }
}
