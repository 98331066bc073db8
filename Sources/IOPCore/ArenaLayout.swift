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

    /// The current step's buffers: the floats each occupies (room included) and the ticks it lives in.
    var placed: [(floats: Range<Int>, ticks: ClosedRange<Int>)] = []
    /// A phase is this many ticks: a graph laid out in one phase gives each of its ops a tick of its
    /// own, so its buffers are placed by lifetime inside the phase.
    static let ticksPerPhase = 1 << 20

    public init() {}

    /// Starts a step: the buffers of the step before are dead.
    public mutating func beginStep() { placed.removeAll(keepingCapacity: true) }

    /// Places a buffer of `floats` that lives during `phases` of the current step, after `room`
    /// free floats, at the lowest offset clear of every buffer alive at the same time; returns
    /// where its floats start. Sizes round up to whole 64-byte lines.
    public mutating func place(_ floats: Int, room: Int = 0, phases: ClosedRange<Int>) -> Int {
        let t = ArenaLayout.ticksPerPhase
        return place(floats, room: room, ticks: (phases.lowerBound * t)...(phases.upperBound * t + t - 1))
    }

    mutating func place(_ floats: Int, room: Int, ticks: ClosedRange<Int>) -> Int {
        let size = room + roundUp(floats, arenaAlignment)
        var start = 0
        let alive = placed.filter { $0.ticks.overlaps(ticks) }.map { $0.floats }.sorted {
            $0.lowerBound < $1.lowerBound
        }
        for other in alive where start + size > other.lowerBound { start = max(start, other.upperBound) }
        placed.append((start..<(start + size), ticks))
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

    /// Lays out layers that run during `phase`, as `chain` does when they form a chain. A graph
    /// (`LayerGraph`) runs in list order, op i at tick i + 1 of the phase; each output buffer lives
    /// from its op to its last reader (the list's output to the phase's end) and goes where it
    /// overlaps nothing alive, so a residual's shortcut keeps its floats only while it is needed. An
    /// op in place shares its input's buffer. It reads `input` (a fresh buffer when nil); the op whose
    /// buffer holds the output writes `output` when given. A conv's scratch lives during its op.
    public mutating func graph(
        _ layers: [Layer], input: Int? = nil, output target: Int? = nil, framed: Bool = false, phase: Int = 0
    ) -> (ops: Range<Int>, input: Int, output: Int) {
        let graph = LayerGraph(layers)
        if graph.isChain && layers.allSatisfy({ $0.inputOffset == nil }) {
            return chain(layers.map { $0.kind }, input: input, output: target, framed: framed, phase: phase)
        }
        let n = layers.count, first = ops.count
        let room = framed ? ArenaLayout.frameRoom : 0
        let base = phase * ArenaLayout.ticksPerPhase, end = base + ArenaLayout.ticksPerPhase - 1
        func slot(_ t: Int) -> Int { t < 0 ? n : t }
        // The tensor whose buffer each op writes: its own, or for an op in place its input's (n: the input).
        var owner = [Int](0...n)
        var inputCount = 0
        for i in 0..<n {
            let p = graph.producers[i]
            if layers[i].kind.isInPlace { owner[i] = owner[slot(p[0])] }
            for (k, t) in p.enumerated() where t < 0 {
                inputCount = max(
                    inputCount,
                    k == 0 ? (layers[i].inputOffset ?? 0) + layers[i].inputCount : layers[i].kind.otherInputCount)
            }
        }
        // The last tick each buffer is read (the output's buffer: the phase's end).
        var until = [Int](repeating: base, count: n + 1)
        until[n] = base + graph.lastReader(of: -1) + 1
        for i in 0..<n {
            let reader = graph.lastReader(of: i)
            let last = i == n - 1 ? end : base + max(reader, i) + 1
            until[owner[i]] = max(until[owner[i]], last)
        }
        var at = [Int](repeating: 0, count: n + 1)
        at[n] = input ?? place(inputCount, room: room, ticks: base...until[n])
        for i in 0..<n {
            let kind = layers[i].kind
            if owner[i] == i {
                if i == owner[n - 1], let target {
                    at[i] = target
                } else {
                    at[i] = place(kind.outputCount, room: room, ticks: (base + i + 1)...until[i])
                }
            }
            let p = graph.producers[i]
            let w = parameterFloats
            parameterFloats += kind.reservedWeightFloats
            let b = parameterFloats
            parameterFloats += kind.reservedBiasFloats
            var op = Op(
                kind: kind, weights: w, bias: b, input: at[owner[slot(p[0])]] + (layers[i].inputOffset ?? 0),
                output: at[owner[i]], scratch: 0,
                other: p.count > 1 ? at[owner[slot(p[1])]] : 0)
            if kind.scratchCount > 0 {
                op.scratch = place(kind.scratchCount, room: 0, ticks: (base + i + 1)...(base + i + 1))
            }
            ops.append(op)
        }
        return (first..<ops.count, at[n], at[owner[n - 1]])
    }

    /// Makes op `index` read its second input (`Op.other`) at `offset`, a tensor placed outside its list
    /// (the leader's copy of a residual block's input).
    public mutating func setOther(_ index: Int, _ offset: Int) { ops[index].other = offset }

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
