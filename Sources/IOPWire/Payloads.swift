/// The payloads of the message kinds, each defined once and used by both ends.
/// Setup and tool payloads encode to arrays; the serving path (`PartResult`,
/// `InferenceRequest` on the leader) reads and writes in place, allocating nothing.

/// A worker introducing itself to the leader, with the endpoint it listens on, and the program it still holds
/// (its arena loaded) after its leader went away: the Adler-32 of the program's bytes, 0 for none.
///
///     u16 n, name[n], u16 m, endpoint[m], u64 budget bytes, u16 threads, u32 held program checksum
public struct Hello: Equatable, Sendable {
    public var name: [UInt8]
    public var endpoint: [UInt8]
    public var budgetBytes: UInt64
    public var threads: UInt16
    public var heldProgram: UInt32
    public init(name: [UInt8], endpoint: [UInt8] = [], budgetBytes: UInt64, threads: UInt16, heldProgram: UInt32 = 0) {
        self.name = name; self.endpoint = endpoint; self.budgetBytes = budgetBytes; self.threads = threads
        self.heldProgram = heldProgram
    }

    public func encode() -> [UInt8] {
        var w = ByteWriter()
        w.write(lengthPrefixed: name); w.write(lengthPrefixed: endpoint); w.write(budgetBytes); w.write(threads)
        w.write(heldProgram)
        return w.bytes
    }
    public static func decode(_ payload: UnsafeRawBufferPointer) throws(WireError) -> Hello {
        var r = ByteReader(payload)
        let h = Hello(
            name: try r.readLengthPrefixed(), endpoint: try r.readLengthPrefixed(),
            budgetBytes: try r.read(UInt64.self), threads: try r.read(UInt16.self), heldProgram: try r.read(UInt32.self)
        )
        try r.expectEnd()
        return h
    }
}

/// A worker declining its program.
///
///     u8 reason, u64 bytes needed, u64 budget bytes
public struct Refuse: Equatable, Sendable {
    public enum Reason: UInt8, Sendable {
        /// The program's arena exceeds the board's budget.
        case overBudget = 1
        /// The arena is within budget, but the operating system would not give the board that much memory.
        case cannotAllocate = 2
    }
    public var reason: Reason
    public var bytesNeeded: UInt64
    public var budgetBytes: UInt64
    public init(reason: Reason, bytesNeeded: UInt64, budgetBytes: UInt64) {
        self.reason = reason; self.bytesNeeded = bytesNeeded; self.budgetBytes = budgetBytes
    }

    public func encode() -> [UInt8] {
        var w = ByteWriter()
        w.write(reason.rawValue); w.write(bytesNeeded); w.write(budgetBytes)
        return w.bytes
    }
    public static func decode(_ payload: UnsafeRawBufferPointer) throws(WireError) -> Refuse {
        var r = ByteReader(payload)
        guard let reason = Reason(rawValue: try r.read(UInt8.self)) else { throw .malformedPayload }
        let v = Refuse(reason: reason, bytesNeeded: try r.read(UInt64.self), budgetBytes: try r.read(UInt64.self))
        try r.expectEnd()
        return v
    }
}

/// A worker that has its arena (and, the second time, its weights): the arena's size.
///
///     u64 arena bytes
public struct Ready: Equatable, Sendable {
    public var arenaBytes: UInt64
    public init(arenaBytes: UInt64) { self.arenaBytes = arenaBytes }

    public func encode() -> [UInt8] {
        var w = ByteWriter()
        w.write(arenaBytes)
        return w.bytes
    }
    public static func decode(_ payload: UnsafeRawBufferPointer) throws(WireError) -> Ready {
        var r = ByteReader(payload)
        let v = Ready(arenaBytes: try r.read(UInt64.self))
        try r.expectEnd()
        return v
    }
}

/// A worker's result for one segment, sent in an `activation` frame built in
/// place in its arena: the board's index, the CPU time its process has used since it started (every thread,
/// ZeroMQ's included: what a trial run calibrates the cost model with), then its output floats.
///
///     u32 board, u64 process cpu ns, f32 output[n]
public enum PartResult {
    public static let headerSize = 12

    /// Writes the board index and CPU time in front of the floats already at `payload + headerSize`.
    public static func writeHeader(
        board: Int, cpuNs: UInt64, into payload: UnsafeMutableRawBufferPointer
    ) throws(WireError) {
        var w = ByteWriter(into: payload)
        try w.write(UInt32(truncatingIfNeeded: board))
        try w.write(cpuNs)
    }

    /// The board a result comes from and its CPU time so far (its floats follow at `headerSize`).
    public static func read(_ payload: UnsafeRawBufferPointer) throws(WireError) -> (board: Int, cpuNs: UInt64) {
        var r = ByteReader(payload)
        return (try r.readInt(), try r.read(UInt64.self))
    }
}

/// A client asking the leader for one inference, and where to send the answer.
///
///     u16 n, reply endpoint[n], f32 input[inputCount]
///
/// The answer is a `result` frame (the output floats) or an `error` frame (a UTF-8 message).
public enum InferenceRequest {
    public static func encode(replyEndpoint: [UInt8], input: [Float]) -> [UInt8] {
        var w = ByteWriter()
        w.write(lengthPrefixed: replyEndpoint)
        w.write(floats: input)
        return w.bytes
    }

    /// Byte ranges of a request's parts inside its payload (nothing is copied).
    public struct Parts: Equatable, Sendable {
        public var replyEndpoint: Range<Int>
        public var input: Range<Int>
        public init(replyEndpoint: Range<Int>, input: Range<Int>) {
            self.replyEndpoint = replyEndpoint; self.input = input
        }
    }

    /// Checks a request for a model of `inputCount` inputs.
    public static func parse(_ payload: UnsafeRawBufferPointer, inputCount: Int) throws(WireError) -> Parts {
        var r = ByteReader(payload)
        let endpoint = try r.lengthPrefixedRange()
        guard !endpoint.isEmpty, r.remaining == 4 * inputCount else { throw .malformedPayload }
        return Parts(replyEndpoint: endpoint, input: r.offset..<payload.count)
    }

    /// Bytes of the largest request for `inputCount` inputs.
    public static func maxSize(inputCount: Int) -> Int { 2 + 255 + 4 * inputCount }
}

/// The leader's counters since it started, as a `stats` answer: what `iop
/// cluster` reports per board.
///
///     u64 inferences, u64 rejected frames, u64 rejected handshakes,
///     u32 boards, per board: u16 n, name[n], u64 arena bytes, u64 bytes sent, u64 messages sent,
///     then (leaders since segment times) u64 inferences on the active plan, u32 segments,
///     per segment: u64 scatter, own, gather, reduce ns,
///     then (leaders since CPU reports) u64 inferences the CPU was counted over, per board: u64 cpu ns
public struct ClusterStats: Equatable, Sendable {
    /// Where the leader's time went in one segment of the active plan, summed over its inferences on that plan:
    /// what the cost model's per-segment figure is checked against.
    public struct SegmentTime: Equatable, Sendable {
        public var scatterNs: UInt64 = 0
        public var ownNs: UInt64 = 0
        public var gatherNs: UInt64 = 0
        public var reduceNs: UInt64 = 0
        public init(scatterNs: UInt64 = 0, ownNs: UInt64 = 0, gatherNs: UInt64 = 0, reduceNs: UInt64 = 0) {
            self.scatterNs = scatterNs; self.ownNs = ownNs; self.gatherNs = gatherNs; self.reduceNs = reduceNs
        }
    }
    public struct Board: Equatable, Sendable {
        public var name: [UInt8]
        /// The board's arena as it reported it once ready (the leader's: its own).
        public var arenaBytes: UInt64
        /// What the board sent in segments (the leader: scatters; workers: results), over all inferences.
        public var bytesSent: UInt64
        public var messagesSent: UInt64
        /// The CPU time the board's process used over the active plan's last `cpuInferences` inferences, every
        /// thread counted, as it reported it with its results (the leader: its own clock).
        public var cpuNs: UInt64
        public init(name: [UInt8], arenaBytes: UInt64, bytesSent: UInt64, messagesSent: UInt64, cpuNs: UInt64 = 0) {
            self.name = name; self.arenaBytes = arenaBytes; self.bytesSent = bytesSent; self.messagesSent = messagesSent
            self.cpuNs = cpuNs
        }
    }
    public var inferences: UInt64
    /// Frames the leader turned away (corrupted, stale, wrong kind), and peers its ZAP handler refused.
    public var rejectedFrames: UInt64
    public var rejectedHandshakes: UInt64
    public var boards: [Board]
    /// Inferences on the active plan (the counters restart when the leader switches plans), and its segments' times.
    public var planInferences: UInt64
    public var segments: [SegmentTime]
    /// Inferences each board's `cpuNs` spans: those on the active plan after its first (whose end starts the count).
    public var cpuInferences: UInt64
    /// A board's CPU milliseconds per counted inference (0 before two inferences on the plan).
    public func cpuMsPerInference(_ b: Board) -> Double {
        cpuInferences == 0 ? 0 : Double(b.cpuNs) / 1e6 / Double(cpuInferences)
    }
    public init(
        inferences: UInt64, rejectedFrames: UInt64 = 0, rejectedHandshakes: UInt64 = 0, boards: [Board],
        planInferences: UInt64 = 0, segments: [SegmentTime] = [], cpuInferences: UInt64 = 0
    ) {
        self.inferences = inferences; self.rejectedFrames = rejectedFrames; self.rejectedHandshakes = rejectedHandshakes
        self.boards = boards; self.planInferences = planInferences; self.segments = segments
        self.cpuInferences = cpuInferences
    }

    public func encode() -> [UInt8] {
        var w = ByteWriter()
        w.write(inferences); w.write(rejectedFrames); w.write(rejectedHandshakes); w.write(u32: boards.count)
        for b in boards {
            w.write(lengthPrefixed: b.name); w.write(b.arenaBytes); w.write(b.bytesSent); w.write(b.messagesSent)
        }
        w.write(planInferences); w.write(u32: segments.count)
        for t in segments { w.write(t.scatterNs); w.write(t.ownNs); w.write(t.gatherNs); w.write(t.reduceNs) }
        w.write(cpuInferences)
        for b in boards { w.write(b.cpuNs) }
        return w.bytes
    }
    public static func decode(_ payload: UnsafeRawBufferPointer) throws(WireError) -> ClusterStats {
        var r = ByteReader(payload)
        var s = ClusterStats(
            inferences: try r.read(UInt64.self), rejectedFrames: try r.read(UInt64.self),
            rejectedHandshakes: try r.read(UInt64.self), boards: [])
        let n = try r.readInt(atMost: 256)
        for _ in 0..<n {
            s.boards.append(
                Board(
                    name: try r.readLengthPrefixed(), arenaBytes: try r.read(UInt64.self),
                    bytesSent: try r.read(UInt64.self), messagesSent: try r.read(UInt64.self)))
        }
        // Older leaders end here.
        if r.remaining > 0 {
            s.planInferences = try r.read(UInt64.self)
            let segments = try r.readInt(atMost: 1 << 16)
            for _ in 0..<segments {
                s.segments.append(
                    SegmentTime(
                        scatterNs: try r.read(UInt64.self), ownNs: try r.read(UInt64.self),
                        gatherNs: try r.read(UInt64.self), reduceNs: try r.read(UInt64.self)))
            }
        }
        // Leaders before CPU reports end here.
        if r.remaining > 0 {
            s.cpuInferences = try r.read(UInt64.self)
            for k in s.boards.indices { s.boards[k].cpuNs = try r.read(UInt64.self) }
        }
        try r.expectEnd()
        return s
    }
}

/// A client asking the leader for its counters (a `stats` frame); the answer, a
/// `stats` frame carrying `ClusterStats`, goes to the reply endpoint.
///
///     u16 n, reply endpoint[n]
public enum StatsRequest {
    public static func encode(replyEndpoint: [UInt8]) -> [UInt8] {
        var w = ByteWriter()
        w.write(lengthPrefixed: replyEndpoint)
        return w.bytes
    }

    /// Where the reply endpoint lies inside the payload.
    public static func parse(_ payload: UnsafeRawBufferPointer) throws(WireError) -> Range<Int> {
        var r = ByteReader(payload)
        let endpoint = try r.lengthPrefixedRange()
        guard !endpoint.isEmpty else { throw .malformedPayload }
        try r.expectEnd()
        return endpoint
    }
}
