import IOPCore
import IOPWire

/// Turns segment programs into board programs. The planner's memory figure
/// comes from the same placement (`footprint`), so a board's arena is exactly
/// the plan's figure for it.
public enum BoardLayout {
    /// A worker's step: the part's layers (a chain, or a graph region) with room for a message header before
    /// each buffer, so activations are received into and sent from the arena.
    /// `sources` gets the layer each placed op comes from (its weights become the op's shard).
    static func placeWorker(
        _ part: BoardPart, segment: Int, wire: WirePrecision = .fp32, into layout: inout ArenaLayout,
        sources: inout [Layer]
    ) -> ProgramStep {
        layout.beginStep()
        let kinds = part.layers.map { $0.kind }
        let placed = layout.graph(part.layers, framed: true)
        sources += part.layers
        for k in kinds where k.parameterChannels > 0 { layout.require(ShardCodec.stagingFloats(k)) }
        return ProgramStep(
            segment: segment, ops: placed.ops, input: placed.input, inputCount: kinds[0].inputCount,
            output: placed.output, outputCount: kinds[kinds.count - 1].outputCount, wire: wire)
    }

    /// The phases of the leader's segment, the time its buffers live in.
    enum Phase {
        static let scatter = 0, own = 1, gather = 2, reduce = 3
        static let whole = scatter...reduce
    }

    /// The leader's segment. `current` is placed first, so it sits at offset 0 in every segment and
    /// one segment's output is the next one's input. The message frames stay reserved for the whole
    /// segment (a frame handed to ZeroMQ is the segment's until it ends); the own part lives while
    /// the workers compute, and the reduction, which runs after it, reuses its floats.
    static func placeLeader(
        _ seg: SegmentProgram, segment: Int, leader: Int, into layout: inout ArenaLayout,
        steps: inout [ProgramStep], sources: inout [Layer]
    ) -> LeaderSegment {
        layout.beginStep()
        let current = layout.place(max(seg.inputCount, seg.outputCount), phases: Phase.whole)
        let assembled = layout.place(seg.assembledCount, phases: Phase.own...Phase.reduce)
        var remote: [RemotePart] = []
        for p in seg.parts where p.board != leader {
            let kinds = p.layers.map { $0.kind }
            remote.append(
                RemotePart(
                    board: p.board, input: p.input, inputCount: p.input.count(ofWhole: seg.inputCount),
                    output: p.output, outputCount: kinds[kinds.count - 1].outputCount))
            for k in kinds where k.parameterChannels > 0 { layout.require(ShardCodec.stagingFloats(k)) }
        }
        var placed = LeaderSegment(
            inputCount: seg.inputCount, outputCount: seg.outputCount, assembledCount: seg.assembledCount,
            sumsPartials: seg.partialCount > 0, current: current, assembled: assembled,
            sendPayload: 0, receivePayload: 0, remote: remote, own: nil, reduce: nil, wire: seg.wire)
        if !remote.isEmpty {
            placed.sendPayload = layout.place(
                placed.largestRemoteInput, room: ArenaLayout.frameRoom, phases: Phase.whole)
            placed.receivePayload = layout.place(
                placed.largestRemoteOutput, room: ArenaLayout.frameRoom, phases: Phase.whole)
        }
        if let part = seg.parts.first(where: { $0.board == leader }) {
            let kinds = part.layers.map { $0.kind }
            let chain = layout.graph(part.layers, input: part.input == .all ? current : nil, phase: Phase.own)
            sources += part.layers
            steps.append(
                ProgramStep(
                    segment: segment, ops: chain.ops, input: chain.input, inputCount: kinds[0].inputCount,
                    output: chain.output, outputCount: kinds[kinds.count - 1].outputCount))
            placed.own = LeaderSegment.OwnPart(step: steps.count - 1, input: part.input, output: part.output)
        }
        if !seg.reduceLayers.isEmpty {
            let chain = layout.graph(seg.reduceLayers, input: assembled, output: current, phase: Phase.reduce)
            // `current` holds the segment's input until the reduction writes its output there, element by element.
            if seg.addsShortcut { layout.setOther(chain.ops.upperBound - 1, current) }
            sources += seg.reduceLayers
            steps.append(
                ProgramStep(
                    segment: segment, ops: chain.ops, input: assembled, inputCount: seg.assembledCount,
                    output: chain.output, outputCount: seg.outputCount))
            placed.reduce = steps.count - 1
        }
        return placed
    }

    /// What one segment adds to board `board`'s arena: its parameters, and the
    /// activation region it needs (an arena holds the sum of the first and the
    /// largest of the second over all segments).
    public static func footprint(_ seg: SegmentProgram, board: Int, leader: Int) -> (
        parameterBytes: Int, activationBytes: Int
    ) {
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
    /// `leaderTailFloats` more floats end the leader's arena: a stream's front end, patch and output
    /// (`StreamSpec.leaderFloats`), alive as long as the arena.
    public static func compile(_ segments: [SegmentProgram], boards: Int, leader: Int, leaderTailFloats: Int = 0)
        -> (programs: [BoardProgram], schedule: [LeaderSegment], sources: [[Layer]])
    {
        var layouts = [ArenaLayout](repeating: ArenaLayout(), count: boards)
        var steps = [[ProgramStep]](repeating: [], count: boards)
        var sources = [[Layer]](repeating: [], count: boards)
        var schedule: [LeaderSegment] = []
        for (k, seg) in segments.enumerated() {
            for part in seg.parts where part.board != leader {
                steps[part.board].append(
                    placeWorker(
                        part, segment: k, wire: seg.wire, into: &layouts[part.board], sources: &sources[part.board]))
            }
            schedule.append(
                placeLeader(
                    seg, segment: k, leader: leader, into: &layouts[leader], steps: &steps[leader],
                    sources: &sources[leader]))
        }
        let programs = (0..<boards).map { d -> BoardProgram in
            let (ops, floats) = layouts[d].finish()
            precondition(ops.count == sources[d].count, "one source layer per op")
            return BoardProgram(
                arenaFloats: floats + (d == leader ? leaderTailFloats : 0),
                activationFloats: layouts[d].activationFloats, ops: ops, steps: steps[d])
        }
        return (programs, schedule, sources)
    }
}
