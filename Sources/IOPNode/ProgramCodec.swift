import IOPCore
import IOPWire

/// Binary form of the layers a board runs for one step (a segment's part),
/// carried in a `program` message: little-endian, no Foundation, so a board
/// decodes it in Embedded Swift.
///
///     u32 step, u32 layer count, then per layer:
///     u8 kind, u32 geometry fields..., f32 activation low, f32 high,
///     u32 weight count, f32 weights..., u32 bias count, f32 bias...
public struct StepProgram: Sendable {
    public var step: UInt32
    public var layers: [Layer]
    public init(step: UInt32, layers: [Layer]) { self.step = step; self.layers = layers }
}

public enum ProgramCodec {
    public static func encodedSize(_ p: StepProgram) -> Int {
        8 + p.layers.reduce(0) { $0 + 1 + 4 * 20 + 8 + 8 + 4 * ($1.weights.count + $1.bias.count) }
    }

    public static func encode(_ p: StepProgram, into buffer: UnsafeMutableRawBufferPointer) throws(WireError) -> Int {
        var w = PayloadWriter(buffer)
        try w.write(p.step)
        try w.write(UInt32(p.layers.count))
        for l in p.layers {
            var fields: [Int] = []
            var act = Activation.none
            let tag: UInt8
            switch l.kind {
            case .conv(let g, let a):
                tag = 1; act = a
                fields = [g.inChannels, g.inHeight, g.inWidth, g.outChannels, g.kernelH, g.kernelW, g.strideH, g.strideW,
                          g.dilationH, g.dilationW, g.padTop, g.padLeft, g.padBottom, g.padRight, g.groups]
            case .linear(let g, let a): tag = 2; act = a; fields = [g.inFeatures, g.outFeatures]
            case .maxPool(let g), .averagePool(let g):
                if case .maxPool = l.kind { tag = 3 } else { tag = 4 }
                fields = [g.channels, g.inHeight, g.inWidth, g.outHeight, g.outWidth, g.kernelH, g.kernelW, g.strideH, g.strideW,
                          g.padTop, g.padLeft, g.padBottom, g.padRight, g.countIncludePad ? 1 : 0]
            case .globalAveragePool(let c, let plane): tag = 5; fields = [c, plane]
            case .clamp(let n, let a): tag = 6; act = a; fields = [n]
            case .softmax(let n): tag = 7; fields = [n]
            case .addBias(let c, let plane, let a): tag = 8; act = a; fields = [c, plane]
            }
            try w.write(tag)
            try w.write(UInt8(fields.count))
            for f in fields { try w.write(UInt32(f)) }
            try w.write(act.low.bitPattern)
            try w.write(act.high.bitPattern)
            try w.write(UInt32(l.weights.count))
            for v in l.weights { try w.write(v.bitPattern) }
            try w.write(UInt32(l.bias.count))
            for v in l.bias { try w.write(v.bitPattern) }
        }
        return w.offset
    }

    public static func decode(_ payload: UnsafeRawBufferPointer) throws(WireError) -> StepProgram {
        var r = PayloadReader(payload)
        let step = try r.read(UInt32.self)
        let count = Int(try r.read(UInt32.self))
        guard count <= 4096 else { throw .malformedPayload }
        var layers: [Layer] = []
        for i in 0..<count {
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
            let weights = try floats(&r)
            let bias = try floats(&r)
            func need(_ k: Int) throws(WireError) { if f.count != k { throw .malformedPayload } }
            let kind: LayerKind
            switch tag {
            case 1:
                try need(15)
                kind = .conv(ConvGeometry(inChannels: f[0], inHeight: f[1], inWidth: f[2], outChannels: f[3], kernelH: f[4], kernelW: f[5],
                                          strideH: f[6], strideW: f[7], dilationH: f[8], dilationW: f[9], padTop: f[10], padLeft: f[11],
                                          padBottom: f[12], padRight: f[13], groups: f[14]), act)
            case 2: try need(2); kind = .linear(LinearGeometry(inFeatures: f[0], outFeatures: f[1]), act)
            case 3, 4:
                try need(14)
                var g = PoolGeometry(channels: f[0], inHeight: f[1], inWidth: f[2], kernelH: f[5], kernelW: f[6], strideH: f[7], strideW: f[8],
                                     padTop: f[9], padLeft: f[10], padBottom: f[11], padRight: f[12], countIncludePad: f[13] != 0)
                // Output sizes travel explicitly: ceil mode and row bands set them.
                g.outHeight = f[3]; g.outWidth = f[4]
                kind = tag == 3 ? .maxPool(g) : .averagePool(g)
            case 5: try need(2); kind = .globalAveragePool(channels: f[0], plane: f[1])
            case 6: try need(1); kind = .clamp(count: f[0], act)
            case 7: try need(1); kind = .softmax(count: f[0])
            case 8: try need(2); kind = .addBias(channels: f[0], plane: f[1], act)
            default: throw .malformedPayload
            }
            let layer = Layer(name: "step" + String(step) + "." + String(i), kind: kind, weights: weights, bias: bias)
            do throws(CoreError) { try layer.validate() } catch { throw .malformedPayload }
            layers.append(layer)
        }
        guard r.isAtEnd else { throw .malformedPayload }
        return StepProgram(step: step, layers: layers)
    }

    static func floats(_ r: inout PayloadReader) throws(WireError) -> [Float] {
        let n = Int(try r.read(UInt32.self))
        guard n * 4 <= r.remaining else { throw .malformedPayload }
        var out = [Float](repeating: 0, count: n)
        for i in 0..<n { out[i] = Float(bitPattern: try r.read(UInt32.self)) }
        return out
    }
}
