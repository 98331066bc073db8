/// Places ops and their buffers in one arena, ahead of time: where every
/// activation buffer, scratch region and packed parameter lives. Buffers are
/// placed by lifetime (as TensorFlow Lite Micro's memory planner and ggml's
/// graph allocator do): a buffer lives from the phase of a step where it is
/// first written to the phase where it is last read, and goes at the lowest
/// offset where it overlaps no buffer alive at the same time. Nothing lives
/// across steps, so every step reuses the activation region from offset 0, and
/// the parameters of every op follow that region:
///
///     0                                      activationFloats                     arena
///     | step k's buffers, by lifetime:          | op 0's weights, bias | op 1's ... |
///     |   phase 0  [ current ][ frame ]          |                      |            |
///     |   phase 1  [ current ][ frame ][ own ]   |                      |            |
///     |   phase 2  [ current ][ frame ][reduce]  |   <- reduce reuses the dead own part's floats
///
/// The arena is then the largest step's buffers plus all parameters: what a
/// plan's memory figure adds up segment by segment.
public struct ArenaLayout {
    /// Floats of the activation region: the high-water mark over all steps.
    public private(set) var activationFloats = 0
    /// Floats of all parameters placed so far.
    public private(set) var parameterFloats = 0
    /// Ops placed so far; parameter offsets are relative to the parameter region until `finish`.
    public private(set) var ops: [Op] = []
    /// Floats left free before a framed buffer, so a message header can sit right in front of its payload.
    public static let frameRoom = 16

    /// The current step's buffers: the floats each occupies (room included) and the phases it lives in.
    var placed: [(floats: Range<Int>, phases: ClosedRange<Int>)] = []

    public init() {}

    /// Starts a step: the buffers of the step before are dead.
    public mutating func beginStep() { placed.removeAll(keepingCapacity: true) }

    /// Places a buffer of `floats` that lives during `phases` of the current step, after `room`
    /// free floats, at the lowest offset clear of every buffer alive at the same time; returns
    /// where its floats start. Sizes round up to whole 64-byte lines.
    public mutating func place(_ floats: Int, room: Int = 0, phases: ClosedRange<Int>) -> Int {
        let size = room + roundUp(floats, arenaAlignment)
        var start = 0
        let alive = placed.filter { $0.phases.overlaps(phases) }.map { $0.floats }.sorted {
            $0.lowerBound < $1.lowerBound
        }
        for other in alive where start + size > other.lowerBound { start = max(start, other.upperBound) }
        placed.append((start..<(start + size), phases))
        activationFloats = max(activationFloats, start + size)
        return start + room
    }

    /// Makes the activation region at least `floats` (room to stage a message).
    public mutating func require(_ floats: Int) {
        activationFloats = max(activationFloats, roundUp(floats, arenaAlignment))
    }

    /// Lays out a chain of layers that runs during `phase`. It reads `input` (a fresh buffer when
    /// nil, sized for the input and every output), ping-pongs between buffers it places when
    /// needed, and the last op that is not in place writes `output` when given. `framed` leaves
    /// `frameRoom` before each buffer. Scratch, shared by the chain's ops, lives as long.
    public mutating func chain(
        _ kinds: [LayerKind], input: Int? = nil, output target: Int? = nil, framed: Bool = false, phase: Int = 0
    ) -> (ops: Range<Int>, input: Int, output: Int) {
        let room = framed ? ArenaLayout.frameRoom : 0
        let largest = kinds.reduce(0) { $1.isInPlace ? $0 : max($0, $1.outputCount) }
        let first = ops.count
        var buffers: [Int] = []
        var current: Int
        if let input {
            current = input
        } else {
            current = place(max(kinds.first?.inputCount ?? 0, largest), room: room, phases: phase...phase)
            buffers.append(current)
        }
        let start = current
        let lastWriter = kinds.lastIndex { !$0.isInPlace }
        for (i, kind) in kinds.enumerated() {
            var out = current
            if !kind.isInPlace {
                if i == lastWriter, let target {
                    out = target
                } else if let other = buffers.first(where: { $0 != current }) {
                    out = other
                } else {
                    out = place(largest, room: room, phases: phase...phase)
                    buffers.append(out)
                }
            }
            let w = parameterFloats
            parameterFloats += kind.reservedWeightFloats
            let b = parameterFloats
            parameterFloats += kind.reservedBiasFloats
            ops.append(Op(kind: kind, weights: w, bias: b, input: current, output: out, scratch: 0))
            current = out
        }
        let scratch = kinds.reduce(0) { max($0, $1.scratchCount) }
        if scratch > 0 {
            let at = place(scratch, phases: phase...phase)
            for i in first..<ops.count where ops[i].kind.scratchCount > 0 { ops[i].scratch = at }
        }
        return (first..<ops.count, start, current)
    }

    /// The ops with their final parameter offsets, and the arena's size in floats.
    public func finish() -> (ops: [Op], arenaFloats: Int) {
        let base = activationFloats
        return (
            ops.map {
                var op = $0; op.weights += base; op.bias += base; return op
            }, base + parameterFloats
        )
    }
}
