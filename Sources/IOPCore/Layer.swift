/// What one executable layer computes. Channel-local work (ReLU, Clip) is fused
/// into the conv or linear layer before it when the loader can.
public enum LayerKind: Equatable, Sendable {
    case conv(ConvGeometry, Activation)
    /// ONNX ConvTranspose (a decoder's learned upsampling), its activation fused as a conv's.
    case convTranspose(ConvTransposeGeometry, Activation)
    case linear(LinearGeometry, Activation)
    case maxPool(PoolGeometry)
    case averagePool(PoolGeometry)
    case globalAveragePool(channels: Int, plane: Int)
    case globalMaxPool(channels: Int, plane: Int)
    /// Stand-alone ReLU / Clip, in place.
    case clamp(count: Int, Activation)
    /// In place: x = act(x + bias[channel]); finishes a reduction of partial sums.
    case addBias(channels: Int, plane: Int, Activation)
    /// Over `count` values `inner` apart, for each of the `outer` x `inner` vectors (ONNX's axis: a vector's
    /// features, a CHW tensor's channels, rows or columns).
    case softmax(count: Int, outer: Int = 1, inner: Int = 1)
    /// Local response normalization across channels: x / (bias + alpha / size * sum of x^2 over `size`
    /// channels around) ^ beta.
    case lrn(channels: Int, plane: Int, size: Int, alpha: Float, beta: Float, bias: Float)
    /// Elementwise sum of the op's input and its `other` input (a residual connection), then the activation.
    case add(count: Int, Activation)
    /// The op's input (`first` floats) followed by its `other` input (`second`): for CHW tensors of one
    /// image, concatenation along channels.
    case concat(first: Int, second: Int)
    /// In place: x = act(x * scale[channel] + shift[channel]), the scales as weights and the shifts as
    /// bias: a batch norm with no conv before it, or a Mul or Add by per-channel constants.
    case scale(channels: Int, plane: Int, Activation)
    case pad(PadGeometry)
    /// ShuffleNet's channel shuffle of a CHW tensor: `groups` groups of channels interleaved.
    case channelShuffle(groups: Int, channels: Int, plane: Int)
    /// Nearest-neighbour upsampling of CHW planes by whole factors.
    case upsample(channels: Int, inHeight: Int, inWidth: Int, scaleH: Int, scaleW: Int)
    /// In place: x = f(x) over CHW planes (a PRelu's slopes, one per channel, as weights).
    case pointwise(channels: Int, plane: Int, PointwiseFunction)
}

/// One layer with its weights in the interchange layout (OIHW for conv,
/// [out][in] for linear); the engine packs them into its arena once.
public struct Layer: Sendable {
    public var name: String
    public var kind: LayerKind
    public var weights: [Float]
    public var bias: [Float]
    /// The layers whose outputs this one reads, as indices into the list that holds it (-1: the list's
    /// input); empty for the usual case, the layer just before (or the input, for the first layer).
    /// A binary op (`add`, `concat`) names two.
    public var inputs: [Int]
    /// When it reads a run of its first input rather than the whole (a conv on its input-channel slice of
    /// a residual block's input, which other layers read whole): the elements before the run.
    public var inputOffset: Int? = nil

    public init(name: String, kind: LayerKind, weights: [Float] = [], bias: [Float] = [], inputs: [Int] = []) {
        self.name = name; self.kind = kind; self.weights = weights; self.bias = bias; self.inputs = inputs
    }

    public var inputCount: Int { kind.inputCount }
    public var outputCount: Int { kind.outputCount }
    public var flops: Int { kind.flops }

    public var opName: String {
        switch kind {
        case .conv: return "Conv"
        case .convTranspose: return "ConvTranspose"
        case .linear: return "Linear"
        case .maxPool: return "MaxPool"
        case .averagePool: return "AveragePool"
        case .globalAveragePool: return "GlobalAveragePool"
        case .globalMaxPool: return "GlobalMaxPool"
        case .lrn: return "LRN"
        case .pad: return "Pad"
        case .channelShuffle: return "ChannelShuffle"
        case .upsample: return "Resize"
        case .clamp: return "Clip"
        case .softmax: return "Softmax"
        case .addBias: return "AddBias"
        case .add: return "Add"
        case .concat: return "Concat"
        case .scale: return "Scale"
        case .pointwise(_, _, let f):
            switch f {
            case .leakyRelu: return "LeakyRelu"
            case .prelu: return "PRelu"
            case .sigmoid: return "Sigmoid"
            case .hardSigmoid: return "HardSigmoid"
            case .hardSwish: return "HardSwish"
            case .tanh: return "Tanh"
            }
        }
    }

    public func validate() throws(CoreError) {
        do throws(CoreError) { try kind.validate() } catch {
            if case .invalidShape(let m) = error { throw .invalidShape(name + ": " + m) }
            throw error
        }
        let channels = kind.parameterChannels
        if case .addBias = kind, bias.count != channels {
            throw .invalidShape(name + ": bias has " + String(bias.count) + " values, expected " + String(channels))
        }
        if !bias.isEmpty && bias.count != channels {
            throw .invalidShape(name + ": bias has " + String(bias.count) + " values, expected " + String(channels))
        }
        let expectedWeights = channels * kind.weightsPerChannel
        if weights.count != expectedWeights {
            throw .invalidShape(
                name + ": has " + String(weights.count) + " weights, expected " + String(expectedWeights))
        }
    }
}

/// Every target packs into the same arena layout: packed weights are reserved
/// with output channels rounded up to this many, the widest channel block any
/// target's kernels use (4 x SIMD16). A plan's memory figure is then the board's
/// arena size whatever the board's SIMD width.
public let portableChannelBlock = 64

extension LayerKind {
    /// Checks the geometry alone (a program from the wire names kinds without weights).
    public func validate() throws(CoreError) {
        switch self {
        case .conv(let g, _): try g.validate()
        case .convTranspose(let g, _): try g.validate()
        case .linear(let g, _): try g.validate()
        case .maxPool(let g), .averagePool(let g): try g.validate()
        case .pad(let g): try g.validate()
        case .channelShuffle(let g, let c, let p):
            if c <= 0 || p <= 0 { throw .invalidShape("empty tensor") }
            if g <= 0 || c % g != 0 { throw .invalidShape("channels must split into the groups") }
        case .upsample(let c, let h, let w, let sh, let sw):
            if c <= 0 || h <= 0 || w <= 0 { throw .invalidShape("empty tensor") }
            if sh <= 0 || sw <= 0 { throw .invalidShape("upsampling factors must be positive") }
        case .globalAveragePool(let c, let p), .globalMaxPool(let c, let p), .addBias(let c, let p, _):
            if c <= 0 || p <= 0 { throw .invalidShape("empty tensor") }
        case .clamp(let n, _), .add(let n, _):
            if n <= 0 { throw .invalidShape("empty tensor") }
        case .softmax(let n, let outer, let inner):
            if n <= 0 || outer <= 0 || inner <= 0 { throw .invalidShape("empty tensor") }
        case .lrn(let c, let p, let size, _, _, _):
            if c <= 0 || p <= 0 { throw .invalidShape("empty tensor") }
            if size <= 0 { throw .invalidShape("LRN size must be positive") }
        case .concat(let a, let b):
            if a <= 0 || b <= 0 { throw .invalidShape("empty tensor") }
        case .scale(let c, let p, _), .pointwise(let c, let p, _):
            if c <= 0 || p <= 0 { throw .invalidShape("empty tensor") }
        }
    }

    /// Floats of the second input of a binary op (`add`, `concat`), 0 for the others.
    public var otherInputCount: Int {
        switch self {
        case .add(let n, _): return n
        case .concat(_, let b): return b
        default: return 0
        }
    }

    public var inputCount: Int {
        switch self {
        case .conv(let g, _): return g.inputCount
        case .convTranspose(let g, _): return g.inputCount
        case .linear(let g, _): return g.inFeatures
        case .maxPool(let g), .averagePool(let g): return g.inputCount
        case .pad(let g): return g.inputCount
        case .channelShuffle(_, let c, let p): return c * p
        case .upsample(let c, let h, let w, _, _): return c * h * w
        case .globalAveragePool(let c, let p), .globalMaxPool(let c, let p): return c * p
        case .clamp(let n, _): return n
        case .softmax(let n, let outer, let inner): return outer * n * inner
        case .lrn(let c, let p, _, _, _, _): return c * p
        case .addBias(let c, let p, _), .scale(let c, let p, _), .pointwise(let c, let p, _): return c * p
        case .add(let n, _): return n
        case .concat(let a, _): return a
        }
    }

    public var outputCount: Int {
        switch self {
        case .conv(let g, _): return g.outputCount
        case .convTranspose(let g, _): return g.outputCount
        case .linear(let g, _): return g.outFeatures
        case .maxPool(let g), .averagePool(let g): return g.outputCount
        case .pad(let g): return g.outputCount
        case .channelShuffle(_, let c, let p): return c * p
        case .upsample(let c, let h, let w, let sh, let sw): return c * h * sh * w * sw
        case .globalAveragePool(let c, _), .globalMaxPool(let c, _): return c
        case .clamp(let n, _): return n
        case .softmax(let n, let outer, let inner): return outer * n * inner
        case .lrn(let c, let p, _, _, _, _): return c * p
        case .addBias(let c, let p, _), .scale(let c, let p, _), .pointwise(let c, let p, _): return c * p
        case .add(let n, _): return n
        case .concat(let a, let b): return a + b
        }
    }

    public var flops: Int {
        switch self {
        case .conv(let g, _): return g.flops
        case .convTranspose(let g, _): return g.flops
        case .linear(let g, _): return g.flops
        case .maxPool(let g), .averagePool(let g): return g.outputCount * g.kernelH * g.kernelW
        case .globalAveragePool(let c, let p), .globalMaxPool(let c, let p): return c * p
        case .clamp(let n, _): return n
        case .softmax(let n, let outer, let inner): return 12 * outer * n * inner  // exp and a division
        case .lrn(let c, let p, let size, _, _, _): return (2 * size + 30) * c * p  // the window and the power
        case .addBias(let c, let p, _), .scale(let c, let p, _): return 2 * c * p
        case .add(let n, _): return n
        case .concat, .pad, .upsample, .channelShuffle: return 0
        case .pointwise(let c, let p, let f):
            switch f {
            case .sigmoid, .tanh: return 12 * c * p  // the exp polynomial and a division
            default: return 2 * c * p
            }
        }
    }

    /// Output channels the parameters are split by when they travel (weight
    /// shards carry whole channels), or 0 for a layer without parameters.
    public var parameterChannels: Int {
        switch self {
        case .conv(let g, _): return g.outChannels
        case .convTranspose(let g, _): return g.outChannels
        case .linear(let g, _): return g.outFeatures
        case .addBias(let c, _, _), .scale(let c, _, _): return c
        case .pointwise(let c, _, let f): return f.hasSlopes ? c : 0
        default: return 0
        }
    }

    /// Interchange-layout weights per output channel (OIHW and [out][in] keep a channel's weights together).
    public var weightsPerChannel: Int {
        switch self {
        case .conv(let g, _): return g.inGroupChannels * g.kernelH * g.kernelW
        // [out][in / group][kh][kw]: the loader transposes ONNX's [in][out / group][kh][kw] so a channel's
        // weights travel together.
        case .convTranspose(let g, _): return g.inGroupChannels * g.kernelH * g.kernelW
        case .linear(let g, _): return g.inFeatures
        case .scale: return 1
        case .pointwise(_, _, let f): return f.hasSlopes ? 1 : 0
        default: return 0
        }
    }

    /// Arena floats reserved for the packed weights and for the bias, each a
    /// whole number of 64-byte lines: enough for every target's packing.
    public var reservedWeightFloats: Int {
        switch self {
        case .conv(let g, _):
            if g.isDepthwise { return roundUp(g.weightCount, arenaAlignment) }
            if g.usesWinograd {
                return roundUp(
                    WinogradKernel.positions * roundUp(g.outChannels, portableChannelBlock) * g.inChannels,
                    arenaAlignment)
            }
            return roundUp(
                g.groups * roundUp(g.outGroupChannels, portableChannelBlock) * g.inGroupChannels * g.kernelH
                    * g.kernelW, arenaAlignment)
        case .convTranspose(let g, _):
            if g.packLanes == 1 { return roundUp(g.weightCount, arenaAlignment) }
            return roundUp(
                g.groups * roundUp(g.outGroupChannels, portableChannelBlock) * g.inGroupChannels * g.kernelH
                    * g.kernelW, arenaAlignment)
        case .linear(let g, _):
            return roundUp(roundUp(g.outFeatures, portableChannelBlock) * g.inFeatures, arenaAlignment)
        case .scale(let c, _, _): return roundUp(c, arenaAlignment)
        case .pointwise(let c, _, let f): return f.hasSlopes ? roundUp(c, arenaAlignment) : 0
        default: return 0
        }
    }
    public var reservedBiasFloats: Int {
        switch self {
        case .conv(let g, _):
            if g.isDepthwise { return roundUp(g.outChannels, arenaAlignment) }
            return roundUp(g.groups * roundUp(g.outGroupChannels, portableChannelBlock), arenaAlignment)
        case .convTranspose(let g, _):
            if g.packLanes == 1 { return roundUp(g.outChannels, arenaAlignment) }
            return roundUp(g.groups * roundUp(g.outGroupChannels, portableChannelBlock), arenaAlignment)
        case .linear(let g, _): return roundUp(roundUp(g.outFeatures, portableChannelBlock), arenaAlignment)
        case .addBias(let c, _, _), .scale(let c, _, _): return roundUp(c, arenaAlignment)
        default: return 0
        }
    }

    /// Floats of kernel scratch (a conv's zero-padded input copy).
    public var scratchCount: Int {
        if case .conv(let g, _) = self { return g.scratchCount }
        return 0
    }

    /// Works on its input buffer (the op's output is its input).
    public var isInPlace: Bool {
        switch self {
        case .clamp, .addBias, .scale, .pointwise: return true
        default: return false
        }
    }
}
