import IOPCore
import IOPWire

/// Binary form of a board program, carried in a `program` message and stored
/// in bundles: little-endian, no Foundation, so a board decodes it in Embedded
/// Swift. No weights: they follow as `weightShard` messages.
///
///     u32 arena floats, u32 activation floats, u32 op count, u32 step count
///     per op:   u8 kind, u8 n, u32 geometry[n] (a conv's ends with its algorithm), f32 activation low, f32 high,
///               u32 weights, bias, input, output, scratch, other (arena offsets in floats)
///               (a pad's fill, a pointwise op's two f32 parameters, alpha and beta, take the activation's place, and
///               LRN's alpha and beta too: its bias travels as two 16-bit halves among the fields)
///     per step: u32 segment, first op, op count, input, input count, output, output count, wire
///               (0 fp32, 1 fp16: `WirePrecision`)
public enum ProgramCodec {
    public static func encode(_ p: BoardProgram) -> [UInt8] {
        var w = ByteWriter()
        for v in [p.arenaFloats, p.activationFloats, p.ops.count, p.steps.count] { w.write(u32: v) }
        for op in p.ops {
            let (tag, fields, act) = describe(op.kind)
            w.write(tag); w.write(UInt8(fields.count))
            for f in fields { w.write(u32: f) }
            w.write(act.low.bitPattern); w.write(act.high.bitPattern)
            for v in [op.weights, op.bias, op.input, op.output, op.scratch, op.other] { w.write(u32: v) }
        }
        for s in p.steps {
            for v in [
                s.segment, s.ops.lowerBound, s.ops.count, s.input, s.inputCount, s.output, s.outputCount,
                Int(s.wire.rawValue),
            ] { w.write(u32: v) }
        }
        return w.bytes
    }

    /// Decodes and checks a program: every geometry valid, every region inside the arena.
    public static func decode(_ payload: UnsafeRawBufferPointer) throws(WireError) -> BoardProgram {
        var r = ByteReader(payload)
        // The arena's byte count must fit an Int (a 32-bit board's too).
        let arena = try r.readInt(atMost: Int.max / MemoryLayout<Float>.stride), activation = try r.readInt(),
            opCount = try r.readInt(),
            stepCount = try r.readInt()
        guard opCount <= 1 << 16, stepCount <= 1 << 16 else { throw .malformedPayload }
        var ops: [Op] = []
        for _ in 0..<opCount {
            let tag = try r.read(UInt8.self)
            let n = Int(try r.read(UInt8.self))
            var f: [Int] = []
            // Bounded so geometry arithmetic (channels x rows x ...) cannot overflow.
            for _ in 0..<n { f.append(try r.readInt(atMost: 1 << 20)) }
            let act = Activation(
                low: Float(bitPattern: try r.read(UInt32.self)), high: Float(bitPattern: try r.read(UInt32.self)))
            let kind = try kindFrom(tag: tag, fields: f, activation: act)
            do throws(CoreError) { try kind.validate() } catch { throw .malformedPayload }
            ops.append(
                Op(
                    kind: kind, weights: try r.readInt(), bias: try r.readInt(), input: try r.readInt(),
                    output: try r.readInt(), scratch: try r.readInt(), other: try r.readInt()))
        }
        var steps: [ProgramStep] = []
        for _ in 0..<stepCount {
            let segment = try r.readInt(atMost: 1 << 16 - 1), first = try r.readInt(),
                count = try r.readInt(atMost: opCount)
            var step = ProgramStep(
                segment: segment, ops: first..<(first + count), input: try r.readInt(),
                inputCount: try r.readInt(), output: try r.readInt(), outputCount: try r.readInt())
            guard let wire = WirePrecision(rawValue: UInt8(try r.readInt(atMost: 255))) else {
                throw .malformedPayload
            }
            step.wire = wire
            steps.append(step)
        }
        try r.expectEnd()
        let program = BoardProgram(arenaFloats: arena, activationFloats: activation, ops: ops, steps: steps)
        guard program.isWithinArena else { throw .malformedPayload }
        return program
    }

    static func describe(_ kind: LayerKind) -> (tag: UInt8, fields: [Int], activation: Activation) {
        switch kind {
        case .conv(let g, let a):
            return (
                1,
                [
                    g.inChannels, g.inHeight, g.inWidth, g.outChannels, g.kernelH, g.kernelW, g.strideH, g.strideW,
                    g.dilationH, g.dilationW, g.padTop, g.padLeft, g.padBottom, g.padRight, g.groups,
                    Int(g.algorithm.rawValue),
                ], a
            )
        case .convTranspose(let g, let a):
            return (
                18,
                [
                    g.inChannels, g.inHeight, g.inWidth, g.outChannels, g.kernelH, g.kernelW, g.strideH, g.strideW,
                    g.dilationH, g.dilationW, g.padTop, g.padLeft, g.padBottom, g.padRight, g.outputPaddingH,
                    g.outputPaddingW, g.groups,
                ], a
            )
        case .linear(let g, let a): return (2, [g.inFeatures, g.outFeatures], a)
        case .maxPool(let g), .averagePool(let g):
            var tag: UInt8 = 4
            if case .maxPool = kind { tag = 3 }
            return (
                tag,
                [
                    g.channels, g.inHeight, g.inWidth, g.outHeight, g.outWidth, g.kernelH, g.kernelW, g.strideH,
                    g.strideW,
                    g.padTop, g.padLeft, g.padBottom, g.padRight, g.countIncludePad ? 1 : 0,
                ] + (g.isDilated ? [g.dilationH, g.dilationW] : []), .none
            )
        case .globalAveragePool(let c, let plane): return (5, [c, plane], .none)
        case .clamp(let n, let a): return (6, [n], a)
        case .softmax(let n, let outer, let inner):
            return (7, outer == 1 && inner == 1 ? [n] : [n, outer, inner], .none)
        case .globalMaxPool(let c, let plane): return (13, [c, plane], .none)
        case .pad(let g):
            return (
                15, [g.channels, g.inHeight, g.inWidth, g.top, g.left, g.bottom, g.right, g.mode.rawValue],
                Activation(low: g.value, high: 0)
            )
        case .upsample(let c, let h, let w, let sh, let sw): return (16, [c, h, w, sh, sw], .none)
        case .channelShuffle(let g, let c, let plane): return (17, [g, c, plane], .none)
        case .lrn(let c, let plane, let size, let alpha, let beta, let bias):
            let b = Int(bias.bitPattern)
            return (14, [c, plane, size, b >> 16, b & 0xFFFF], Activation(low: alpha, high: beta))
        case .addBias(let c, let plane, let a): return (8, [c, plane], a)
        case .add(let n, let a): return (9, [n], a)
        case .concat(let first, let second): return (10, [first, second], .none)
        case .scale(let c, let plane, let a): return (11, [c, plane], a)
        case .pointwise(let c, let plane, let f):
            switch f {
            case .leakyRelu(let alpha): return (12, [c, plane, 0], Activation(low: alpha, high: 0))
            case .prelu: return (12, [c, plane, 1], .none)
            case .sigmoid: return (12, [c, plane, 2], .none)
            case .hardSigmoid(let alpha, let beta): return (12, [c, plane, 3], Activation(low: alpha, high: beta))
            case .hardSwish: return (12, [c, plane, 4], .none)
            case .tanh: return (12, [c, plane, 5], .none)
            }
        }
    }

    static func kindFrom(tag: UInt8, fields f: [Int], activation act: Activation) throws(WireError) -> LayerKind {
        func need(_ k: Int) throws(WireError) { if f.count != k { throw .malformedPayload } }
        switch tag {
        case 1:
            try need(16)
            guard let algorithm = UInt8(exactly: f[15]).flatMap(ConvAlgorithm.init(rawValue:)) else {
                throw .malformedPayload
            }
            return .conv(
                ConvGeometry(
                    inChannels: f[0], inHeight: f[1], inWidth: f[2], outChannels: f[3], kernelH: f[4], kernelW: f[5],
                    strideH: f[6], strideW: f[7], dilationH: f[8], dilationW: f[9], padTop: f[10], padLeft: f[11],
                    padBottom: f[12], padRight: f[13], groups: f[14], algorithm: algorithm), act)
        case 18:
            try need(17)
            return .convTranspose(
                ConvTransposeGeometry(
                    inChannels: f[0], inHeight: f[1], inWidth: f[2], outChannels: f[3], kernelH: f[4], kernelW: f[5],
                    strideH: f[6], strideW: f[7], dilationH: f[8], dilationW: f[9], padTop: f[10], padLeft: f[11],
                    padBottom: f[12], padRight: f[13], outputPaddingH: f[14], outputPaddingW: f[15], groups: f[16]),
                act)
        case 2: try need(2); return .linear(LinearGeometry(inFeatures: f[0], outFeatures: f[1]), act)
        case 3, 4:
            if f.count != 16 { try need(14) }
            var g = PoolGeometry(
                channels: f[0], inHeight: f[1], inWidth: f[2], kernelH: f[5], kernelW: f[6], strideH: f[7],
                strideW: f[8],
                padTop: f[9], padLeft: f[10], padBottom: f[11], padRight: f[12], dilationH: f.count == 16 ? f[14] : 1,
                dilationW: f.count == 16 ? f[15] : 1, countIncludePad: f[13] != 0)
            // Output sizes travel explicitly: ceil mode and row bands set them.
            g.outHeight = f[3]; g.outWidth = f[4]
            return tag == 3 ? .maxPool(g) : .averagePool(g)
        case 5: try need(2); return .globalAveragePool(channels: f[0], plane: f[1])
        case 6: try need(1); return .clamp(count: f[0], act)
        case 7:
            if f.count != 3 { try need(1) }
            return .softmax(count: f[0], outer: f.count == 3 ? f[1] : 1, inner: f.count == 3 ? f[2] : 1)
        case 13: try need(2); return .globalMaxPool(channels: f[0], plane: f[1])
        case 15:
            try need(8)
            guard let mode = PadMode(rawValue: f[7]) else { throw .malformedPayload }
            return .pad(
                PadGeometry(
                    channels: f[0], inHeight: f[1], inWidth: f[2], top: f[3], left: f[4], bottom: f[5], right: f[6],
                    mode: mode, value: act.low))
        case 17: try need(3); return .channelShuffle(groups: f[0], channels: f[1], plane: f[2])
        case 16:
            try need(5); return .upsample(channels: f[0], inHeight: f[1], inWidth: f[2], scaleH: f[3], scaleW: f[4])
        case 14:
            try need(5)
            guard f[3] <= 0xFFFF, f[4] <= 0xFFFF else { throw .malformedPayload }
            let bias = Float(bitPattern: UInt32(f[3] << 16 | f[4]))
            return .lrn(channels: f[0], plane: f[1], size: f[2], alpha: act.low, beta: act.high, bias: bias)
        case 8: try need(2); return .addBias(channels: f[0], plane: f[1], act)
        case 9: try need(1); return .add(count: f[0], act)
        case 10: try need(2); return .concat(first: f[0], second: f[1])
        case 11: try need(2); return .scale(channels: f[0], plane: f[1], act)
        case 12:
            try need(3)
            let functions: [PointwiseFunction] = [
                .leakyRelu(alpha: act.low), .prelu, .sigmoid, .hardSigmoid(alpha: act.low, beta: act.high), .hardSwish,
                .tanh,
            ]
            guard f[2] < functions.count else { throw .malformedPayload }
            return .pointwise(channels: f[0], plane: f[1], functions[f[2]])
        default: throw .malformedPayload
        }
    }
}
