import IOPCore
import IOPWire

/// How a segment's activations cross the wire: fp32 as computed, or IEEE half precision (`fp16`,
/// rounded to nearest even: half the bytes), which the receiver widens into its fp32 arena. Either
/// way every board computes, and the leader reduces, in fp32. The planner chooses per segment.
public enum WirePrecision: UInt8, Equatable, Sendable {
    case fp32 = 0
    case fp16 = 1

    /// Bytes one activation element takes in a message.
    public var bytesPerElement: Int { self == .fp16 ? 2 : 4 }
    public var name: String { self == .fp16 ? "fp16" : "fp32" }
}

/// One step of a board's program: a run of its ops, where the step's input
/// arrives and where its result is left, all as arena offsets (floats).
public struct ProgramStep: Equatable, Sendable {
    /// The plan segment this step computes (the `step` field of its messages).
    public var segment: Int
    public var ops: Range<Int>
    public var input: Int, inputCount: Int
    public var output: Int, outputCount: Int
    /// How the step's input arrives and its result leaves (a worker's step; the leader's steps send nothing).
    public var wire: WirePrecision
    public init(
        segment: Int, ops: Range<Int>, input: Int, inputCount: Int, output: Int, outputCount: Int,
        wire: WirePrecision = .fp32
    ) {
        self.segment = segment; self.ops = ops; self.input = input; self.inputCount = inputCount
        self.output = output; self.outputCount = outputCount; self.wire = wire
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

    /// Whether every op and step stays inside the arena, so a program from the wire cannot make a board
    /// write outside it.
    public var isWithinArena: Bool {
        guard activationFloats >= 0, activationFloats <= arenaFloats else { return false }
        for op in ops where !op.fits(arenaFloats: arenaFloats) { return false }
        for s in steps {
            guard s.ops.lowerBound >= 0, s.ops.upperBound <= ops.count, s.inputCount > 0, s.outputCount > 0,
                s.input >= 0, s.input <= activationFloats - s.inputCount, s.output >= 0,
                s.output <= activationFloats - s.outputCount
            else { return false }
        }
        return true
    }
}
