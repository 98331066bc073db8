import IOPCore
import IOPWire

/// Binary form of a board program, carried in a `program` message and stored
/// in bundles: little-endian, no Foundation, so a board decodes it in Embedded
/// Swift. No weights: they follow as `weightShard` messages.
///
///     u32 arena floats, u32 activation floats, u32 op count, u32 step count
///     per op:   u8 kind, u8 n, u32 geometry[n], f32 activation low, f32 high,
///               u32 weights, bias, input, output, scratch (arena offsets in floats)
///     per step: u32 segment, first op, op count, input, input count, output, output count
public enum ProgramCodec {
    public static func encode(_ p: BoardProgram) -> [UInt8] {
        var w = ByteWriter()
        w.u32(p.arenaFloats); w.u32(p.activationFloats); w.u32(p.ops.count); w.u32(p.steps.count)
        for op in p.ops {
            let (tag, fields, act) = describe(op.kind)
            w.u8(tag); w.u8(UInt8(fields.count))
            for f in fields { w.u32(f) }
            w.u32(Int(act.low.bitPattern)); w.u32(Int(act.high.bitPattern))
            for v in [op.weights, op.bias, op.input, op.output, op.scratch] { w.u32(v) }
        }
        for s in p.steps {
            for v in [s.segment, s.ops.lowerBound, s.ops.count, s.input, s.inputCount, s.output, s.outputCount] { w.u32(v) }
        }
        return w.bytes
    }

    /// Decodes and checks a program: every geometry valid, every region inside the arena.
    public static func decode(_ payload: UnsafeRawBufferPointer) throws(WireError) -> BoardProgram {
        var r = PayloadReader(payload)
        func int(_ r: inout PayloadReader) throws(WireError) -> Int { Int(try r.read(UInt32.self)) }
        let arena = try int(&r), activation = try int(&r), opCount = try int(&r), stepCount = try int(&r)
        guard opCount <= 1 << 16, stepCount <= 1 << 16 else { throw .malformedPayload }
        var ops: [Op] = []
        for _ in 0..<opCount {
            let tag = try r.read(UInt8.self)
            let n = Int(try r.read(UInt8.self))
            var f: [Int] = []
            for _ in 0..<n {
                // Bounded so geometry arithmetic (channels x rows x ...) cannot overflow.
                let v = try r.read(UInt32.self)
                guard v <= 1 << 20 else { throw .malformedPayload }
                f.append(Int(v))
            }
            let act = Activation(low: Float(bitPattern: try r.read(UInt32.self)), high: Float(bitPattern: try r.read(UInt32.self)))
            let kind = try kindFrom(tag: tag, fields: f, activation: act)
            do throws(CoreError) { try kind.validate() } catch { throw .malformedPayload }
            ops.append(Op(kind: kind, weights: try int(&r), bias: try int(&r), input: try int(&r), output: try int(&r), scratch: try int(&r)))
        }
        var steps: [ProgramStep] = []
        for _ in 0..<stepCount {
            let segment = try int(&r), first = try int(&r), count = try int(&r)
            guard segment < 1 << 16, count <= opCount else { throw .malformedPayload }
            steps.append(ProgramStep(segment: segment, ops: first..<(first + count), input: try int(&r), inputCount: try int(&r),
                                     output: try int(&r), outputCount: try int(&r)))
        }
        guard r.isAtEnd else { throw .malformedPayload }
        let program = BoardProgram(arenaFloats: arena, activationFloats: activation, ops: ops, steps: steps)
        guard program.isWithinArena else { throw .malformedPayload }
        return program
    }

    static func describe(_ kind: LayerKind) -> (tag: UInt8, fields: [Int], activation: Activation) {
        switch kind {
        case .conv(let g, let a):
            return (1, [g.inChannels, g.inHeight, g.inWidth, g.outChannels, g.kernelH, g.kernelW, g.strideH, g.strideW,
                        g.dilationH, g.dilationW, g.padTop, g.padLeft, g.padBottom, g.padRight, g.groups], a)
        case .linear(let g, let a): return (2, [g.inFeatures, g.outFeatures], a)
        case .maxPool(let g), .averagePool(let g):
            var tag: UInt8 = 4
            if case .maxPool = kind { tag = 3 }
            return (tag, [g.channels, g.inHeight, g.inWidth, g.outHeight, g.outWidth, g.kernelH, g.kernelW, g.strideH, g.strideW,
                          g.padTop, g.padLeft, g.padBottom, g.padRight, g.countIncludePad ? 1 : 0], .none)
        case .globalAveragePool(let c, let plane): return (5, [c, plane], .none)
        case .clamp(let n, let a): return (6, [n], a)
        case .softmax(let n): return (7, [n], .none)
        case .addBias(let c, let plane, let a): return (8, [c, plane], a)
        }
    }

    static func kindFrom(tag: UInt8, fields f: [Int], activation act: Activation) throws(WireError) -> LayerKind {
        func need(_ k: Int) throws(WireError) { if f.count != k { throw .malformedPayload } }
        switch tag {
        case 1:
            try need(15)
            return .conv(ConvGeometry(inChannels: f[0], inHeight: f[1], inWidth: f[2], outChannels: f[3], kernelH: f[4], kernelW: f[5],
                                      strideH: f[6], strideW: f[7], dilationH: f[8], dilationW: f[9], padTop: f[10], padLeft: f[11],
                                      padBottom: f[12], padRight: f[13], groups: f[14]), act)
        case 2: try need(2); return .linear(LinearGeometry(inFeatures: f[0], outFeatures: f[1]), act)
        case 3, 4:
            try need(14)
            var g = PoolGeometry(channels: f[0], inHeight: f[1], inWidth: f[2], kernelH: f[5], kernelW: f[6], strideH: f[7], strideW: f[8],
                                 padTop: f[9], padLeft: f[10], padBottom: f[11], padRight: f[12], countIncludePad: f[13] != 0)
            // Output sizes travel explicitly: ceil mode and row bands set them.
            g.outHeight = f[3]; g.outWidth = f[4]
            return tag == 3 ? .maxPool(g) : .averagePool(g)
        case 5: try need(2); return .globalAveragePool(channels: f[0], plane: f[1])
        case 6: try need(1); return .clamp(count: f[0], act)
        case 7: try need(1); return .softmax(count: f[0])
        case 8: try need(2); return .addBias(channels: f[0], plane: f[1], act)
        default: throw .malformedPayload
        }
    }
}

/// A weight shard: whole output channels of one op's parameters in
/// interchange layout, which the board packs straight into its arena.
///
///     u32 op, u32 first channel, u32 channel count, u32 flags (bit 0: bias follows),
///     f32 weights[count x kind.weightsPerChannel], f32 bias[count] (if flagged)
public enum ShardCodec {
    public static let headerSize = 16
    /// Shard messages are at most this big (or the smaller board's activation region)...
    public static let frameLimit = 1 << 20
    /// ...and at most this many wait in a socket queue at either end, so loading a
    /// board costs its arena plus a few MiB of queued messages, not a second copy of its weights.
    public static let queueLength: Int32 = 8

    public struct Header: Equatable, Sendable {
        public var op: Int, first: Int, count: Int, hasBias: Bool
        public init(op: Int, first: Int, count: Int, hasBias: Bool) { self.op = op; self.first = first; self.count = count; self.hasBias = hasBias }
        public var channels: Range<Int> { first..<(first + count) }
    }

    public static func payloadSize(_ kind: LayerKind, channels: Int, hasBias: Bool) -> Int {
        headerSize + 4 * channels * (kind.weightsPerChannel + (hasBias ? 1 : 0))
    }

    /// Channels of `kind` per message so a shard frame fits `bytes` (at least one).
    public static func channelsPerMessage(_ kind: LayerKind, hasBias: Bool, frameBytes bytes: Int) -> Int {
        let perChannel = 4 * (kind.weightsPerChannel + (hasBias ? 1 : 0))
        return max(1, (bytes - MessageHeader.size - headerSize) / max(perChannel, 1))
    }

    public static func write(_ h: Header, into payload: UnsafeMutableRawPointer) {
        payload.storeBytes(of: UInt32(h.op).littleEndian, toByteOffset: 0, as: UInt32.self)
        payload.storeBytes(of: UInt32(h.first).littleEndian, toByteOffset: 4, as: UInt32.self)
        payload.storeBytes(of: UInt32(h.count).littleEndian, toByteOffset: 8, as: UInt32.self)
        payload.storeBytes(of: UInt32(h.hasBias ? 1 : 0).littleEndian, toByteOffset: 12, as: UInt32.self)
    }

    /// Reads a shard's header and checks it against the program: a parameter
    /// op, channels in order after the `loaded` ones, and exactly the payload they need.
    public static func read(_ payload: UnsafeRawBufferPointer, ops: [Op], loaded: [Int]) throws(WireError) -> Header {
        var r = PayloadReader(payload)
        let op = Int(try r.read(UInt32.self)), first = Int(try r.read(UInt32.self)), count = Int(try r.read(UInt32.self))
        let flags = try r.read(UInt32.self)
        guard op < ops.count, flags <= 1, count > 0 else { throw .malformedPayload }
        let kind = ops[op].kind
        guard kind.parameterChannels > 0, first == loaded[op], count <= kind.parameterChannels - first,
              payload.count == payloadSize(kind, channels: count, hasBias: flags == 1) else { throw .malformedPayload }
        if case .addBias = kind, flags != 1 { throw .malformedPayload }
        return Header(op: op, first: first, count: count, hasBias: flags == 1)
    }
}
