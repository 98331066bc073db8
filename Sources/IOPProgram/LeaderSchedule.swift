import IOPCore

/// One other board's part of a segment, as the leader scatters and gathers it.
public struct RemotePart: Equatable, Sendable {
    public var board: Int
    public var input: BoardPart.Input
    public var inputCount: Int
    public var output: BoardPart.Output
    public var outputCount: Int
}

/// What the leader does for one segment, with the arena offsets of its tensors
/// and message frames: scatter from `current`, run its own step, gather into
/// `assembled` (summing partials), reduce, and leave the result in `current`.
public struct LeaderSegment: Equatable, Sendable {
    public var inputCount: Int, outputCount: Int, assembledCount: Int
    public var sumsPartials: Bool
    public var current: Int, assembled: Int
    /// Payload offsets of the outgoing and incoming frames (their headers sit just before).
    public var sendPayload: Int, receivePayload: Int
    public var remote: [RemotePart]
    /// The leader's own part: its step in the leader's program, and where it reads and writes.
    public struct OwnPart: Equatable, Sendable {
        public var step: Int
        public var input: BoardPart.Input
        public var output: BoardPart.Output
    }
    public var own: OwnPart?
    /// The reduction's step in the leader's program (its output is `current` unless it only works in place).
    public var reduce: Int?
    /// How the segment's scatter and gather messages carry their elements; the frames are sized for
    /// fp32, so fp16 needs no bytes of its own.
    public var wire: WirePrecision = .fp32

    /// Elements of the largest part the leader sends and receives.
    public var largestRemoteInput: Int { remote.reduce(0) { max($0, $1.inputCount) } }
    public var largestRemoteOutput: Int { remote.reduce(0) { max($0, $1.outputCount) } }
}
