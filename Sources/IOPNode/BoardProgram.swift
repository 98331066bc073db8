import IOPCore
import IOPWire

/// One step of a board's program: a run of its ops, where the step's input
/// arrives and where its result is left, all as arena offsets (floats).
public struct ProgramStep: Equatable, Sendable {
    /// The plan segment this step computes (the `step` field of its messages).
    public var segment: Int
    public var ops: Range<Int>
    public var input: Int, inputCount: Int
    public var output: Int, outputCount: Int
    public init(segment: Int, ops: Range<Int>, input: Int, inputCount: Int, output: Int, outputCount: Int) {
        self.segment = segment; self.ops = ops; self.input = input; self.inputCount = inputCount
        self.output = output; self.outputCount = outputCount
    }
}

/// Everything a board runs, decided at compile time: the size of its one
/// arena, a flat list of ops naming arena offsets, and the steps that group
/// them. Its parameters arrive separately, as weight shards.
public struct BoardProgram: Equatable, Sendable {
    public var arenaFloats: Int
    /// The arena's first floats hold every step's buffers; setup stages weight-shard messages there.
    public var activationFloats: Int
    public var ops: [Op]
    public var steps: [ProgramStep]
    public init(arenaFloats: Int, activationFloats: Int, ops: [Op], steps: [ProgramStep]) {
        self.arenaFloats = arenaFloats; self.activationFloats = activationFloats; self.ops = ops; self.steps = steps
    }

    public var arenaBytes: Int { arenaFloats * MemoryLayout<Float>.stride }

    /// Whether every op and step stays inside the arena, so a program from the wire cannot make a board write outside it.
    public var isWithinArena: Bool {
        guard activationFloats >= 0, activationFloats <= arenaFloats else { return false }
        for op in ops where !op.fits(arenaFloats: arenaFloats) { return false }
        for s in steps {
            guard s.ops.lowerBound >= 0, s.ops.upperBound <= ops.count, s.inputCount > 0, s.outputCount > 0,
                  s.input >= 0, s.input <= activationFloats - s.inputCount, s.output >= 0, s.output <= activationFloats - s.outputCount
            else { return false }
        }
        return true
    }
}

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

    /// Elements of the largest part the leader sends and receives.
    public var largestRemoteInput: Int { remote.reduce(0) { max($0, $1.inputCount) } }
    public var largestRemoteOutput: Int { remote.reduce(0) { max($0, $1.outputCount) } }
}

/// Turns segment programs into board programs. The planner's memory figure
/// comes from the same placement (`footprint`), so a board's arena is exactly
/// the plan's figure for it.
public enum BoardLayout {
    /// Bytes of a weight-shard message carrying one channel of `kind`: every
    /// board stages at least one in its activation region while loading.
    static func stagingFloats(_ kind: LayerKind) -> Int {
        (MessageHeader.size + ShardCodec.headerSize) / 4 + 1 + kind.weightsPerChannel + 1
    }

    /// A worker's step: the part's chain with room for a message header before
    /// each buffer, so activations are received into and sent from the arena.
    /// `sources` gets the layer each placed op comes from (its weights become the op's shard).
    static func placeWorker(_ part: BoardPart, segment: Int, into layout: inout ArenaLayout, sources: inout [Layer]) -> ProgramStep {
        layout.beginStep()
        let kinds = part.layers.map { $0.kind }
        let placed = layout.chain(kinds, framed: true)
        sources += part.layers
        for k in kinds where k.parameterChannels > 0 { layout.require(stagingFloats(k)) }
        return ProgramStep(segment: segment, ops: placed.ops, input: placed.input, inputCount: kinds[0].inputCount,
                           output: placed.output, outputCount: kinds[kinds.count - 1].outputCount)
    }

    /// The leader's segment: `current` first (so it stays put from one segment
    /// to the next), the assembled result, the two frames, its own part, and
    /// the reduction laid over the own part's buffers (which are dead by then).
    static func placeLeader(_ seg: SegmentProgram, segment: Int, leader: Int, into layout: inout ArenaLayout,
                            steps: inout [ProgramStep], sources: inout [Layer]) -> LeaderSegment {
        layout.beginStep()
        let current = layout.reserve(max(seg.inputCount, seg.outputCount))
        let assembled = layout.reserve(seg.assembledCount)
        var remote: [RemotePart] = []
        for p in seg.parts where p.board != leader {
            let kinds = p.layers.map { $0.kind }
            remote.append(RemotePart(board: p.board, input: p.input, inputCount: p.input == .all ? seg.inputCount : p.input.count,
                                     output: p.output, outputCount: kinds[kinds.count - 1].outputCount))
            for k in kinds where k.parameterChannels > 0 { layout.require(stagingFloats(k)) }
        }
        var placed = LeaderSegment(inputCount: seg.inputCount, outputCount: seg.outputCount, assembledCount: seg.assembledCount,
                                   sumsPartials: seg.partialCount > 0, current: current, assembled: assembled,
                                   sendPayload: 0, receivePayload: 0, remote: remote, own: nil, reduce: nil)
        if !remote.isEmpty {
            placed.sendPayload = layout.reserve(placed.largestRemoteInput, room: ArenaLayout.frameRoom)
            placed.receivePayload = layout.reserve(placed.largestRemoteOutput, room: ArenaLayout.frameRoom)
        }
        let mark = layout.cursor
        if let part = seg.parts.first(where: { $0.board == leader }) {
            let kinds = part.layers.map { $0.kind }
            let chain = layout.chain(kinds, input: part.input == .all ? current : nil)
            sources += part.layers
            steps.append(ProgramStep(segment: segment, ops: chain.ops, input: chain.input, inputCount: kinds[0].inputCount,
                                     output: chain.output, outputCount: kinds[kinds.count - 1].outputCount))
            placed.own = LeaderSegment.OwnPart(step: steps.count - 1, input: part.input, output: part.output)
        }
        let ownEnd = layout.cursor
        layout.cursor = mark
        if !seg.reduceLayers.isEmpty {
            let chain = layout.chain(seg.reduceLayers.map { $0.kind }, input: assembled, output: current)
            sources += seg.reduceLayers
            steps.append(ProgramStep(segment: segment, ops: chain.ops, input: assembled, inputCount: seg.assembledCount,
                                     output: chain.output, outputCount: seg.outputCount))
            placed.reduce = steps.count - 1
        }
        layout.cursor = max(layout.cursor, ownEnd)
        return placed
    }

    /// What one segment adds to board `board`'s arena: its parameters, and the
    /// activation region it needs (an arena holds the sum of the first and the
    /// largest of the second over all segments).
    public static func footprint(_ seg: SegmentProgram, board: Int, leader: Int) -> (parameterBytes: Int, activationBytes: Int) {
        var layout = ArenaLayout()
        var sources: [Layer] = []
        if board == leader {
            var steps: [ProgramStep] = []
            _ = placeLeader(seg, segment: 0, leader: leader, into: &layout, steps: &steps, sources: &sources)
        } else if let part = seg.parts.first(where: { $0.board == board }) {
            _ = placeWorker(part, segment: 0, into: &layout, sources: &sources)
        }
        return (layout.parameterFloats * 4, layout.activationFloats * 4)
    }

    /// Every board's program and the leader's schedule for a plan's segments,
    /// and for every board the layer each of its ops comes from (`sources[d][op]`).
    public static func compile(_ segments: [SegmentProgram], boards: Int, leader: Int)
        -> (programs: [BoardProgram], schedule: [LeaderSegment], sources: [[Layer]])
    {
        var layouts = [ArenaLayout](repeating: ArenaLayout(), count: boards)
        var steps = [[ProgramStep]](repeating: [], count: boards)
        var sources = [[Layer]](repeating: [], count: boards)
        var schedule: [LeaderSegment] = []
        for (k, seg) in segments.enumerated() {
            for part in seg.parts where part.board != leader {
                steps[part.board].append(placeWorker(part, segment: k, into: &layouts[part.board], sources: &sources[part.board]))
            }
            schedule.append(placeLeader(seg, segment: k, leader: leader, into: &layouts[leader], steps: &steps[leader], sources: &sources[leader]))
        }
        let programs = (0..<boards).map { d -> BoardProgram in
            let (ops, floats) = layouts[d].finish()
            precondition(ops.count == sources[d].count, "one source layer per op")
            return BoardProgram(arenaFloats: floats, activationFloats: layouts[d].activationFloats, ops: ops, steps: steps[d])
        }
        return (programs, schedule, sources)
    }
}
