import CIOPSystem

/// Frames a node turned away: corrupted, truncated, of the wrong kind for the moment, or stale. A node never
/// stops for one (whoever can reach a port can send anything); it counts them and says why, at most once per
/// `intervalNs`, so a flood cannot fill the journal.
public struct RejectedFrames {
    public internal(set) var count: UInt64 = 0
    /// Where the reasons go (the agent logs them); called with the reason and how many were rejected unlogged since.
    public var log: (_ reason: String, _ unlogged: UInt64) -> Void = { _, _ in }
    public var intervalNs: UInt64 = 5_000_000_000
    var lastLogNs: UInt64 = 0
    var unlogged: UInt64 = 0

    public init() {}

    mutating func reject(_ reason: @autoclosure () -> String) {
        count += 1
        let now = iop_monotonic_ns()
        if lastLogNs != 0 && now &- lastLogNs < intervalNs {
            unlogged += 1
            return
        }
        log(reason(), unlogged)
        lastLogNs = now
        unlogged = 0
    }
}
