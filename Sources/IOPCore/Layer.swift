/// What one executable layer computes. Channel-local work (ReLU, Clip) is fused
/// into the conv or linear layer before it when the loader can.
public enum LayerKind: Equatable, Sendable {
    case conv(ConvGeometry, Activation)
    case linear(LinearGeometry, Activation)
    case maxPool(PoolGeometry)
    case averagePool(PoolGeometry)
    case globalAveragePool(channels: Int, plane: Int)
    /// Stand-alone ReLU / Clip, in place.
    case clamp(count: Int, Activation)
    /// In place: x = act(x + bias[channel]); finishes a reduction of partial sums.
    case addBias(channels: Int, plane: Int, Activation)
    case softmax(count: Int)
}

/// One layer with its weights in the interchange layout (OIHW for conv,
/// [out][in] for linear); the engine packs them into its arena once.
public struct Layer: Sendable {
    public var name: String
    public var kind: LayerKind
    public var weights: [Float]
    public var bias: [Float]

    public init(name: String, kind: LayerKind, weights: [Float] = [], bias: [Float] = []) {
        self.name = name; self.kind = kind; self.weights = weights; self.bias = bias
    }

    public var inputCount: Int {
        switch kind {
        case .conv(let g, _): return g.inputCount
        case .linear(let g, _): return g.inFeatures
        case .maxPool(let g), .averagePool(let g): return g.inputCount
        case .globalAveragePool(let c, let p): return c * p
        case .clamp(let n, _), .softmax(let n): return n
        case .addBias(let c, let p, _): return c * p
        }
    }

    public var outputCount: Int {
        switch kind {
        case .conv(let g, _): return g.outputCount
        case .linear(let g, _): return g.outFeatures
        case .maxPool(let g), .averagePool(let g): return g.outputCount
        case .globalAveragePool(let c, _): return c
        case .clamp(let n, _), .softmax(let n): return n
        case .addBias(let c, let p, _): return c * p
        }
    }

    public var flops: Int {
        switch kind {
        case .conv(let g, _): return g.flops
        case .linear(let g, _): return g.flops
        case .maxPool(let g), .averagePool(let g): return g.outputCount * g.kernelH * g.kernelW
        case .globalAveragePool(let c, let p): return c * p
        case .clamp(let n, _): return n
        case .softmax(let n): return 3 * n
        case .addBias(let c, let p, _): return 2 * c * p
        }
    }

    var packedWeightCount: Int {
        switch kind {
        case .conv(let g, _): return g.packedWeightCount
        case .linear(let g, _): return g.packedWeightCount
        default: return 0
        }
    }
    var packedBiasCount: Int {
        switch kind {
        case .conv(let g, _): return g.packedBiasCount
        case .linear(let g, _): return g.packedBiasCount
        case .addBias(let c, _, _): return c
        default: return 0
        }
    }
    var scratchCount: Int {
        if case .conv(let g, _) = kind { return g.scratchCount }
        return 0
    }
    var isInPlace: Bool {
        switch kind {
        case .clamp, .addBias: return true
        default: return false
        }
    }

    public var opName: String {
        switch kind {
        case .conv: return "Conv"
        case .linear: return "Linear"
        case .maxPool: return "MaxPool"
        case .averagePool: return "AveragePool"
        case .globalAveragePool: return "GlobalAveragePool"
        case .clamp: return "Clip"
        case .softmax: return "Softmax"
        case .addBias: return "AddBias"
        }
    }

    public func validate() throws(CoreError) {
        var expectedWeights = 0
        switch kind {
        case .conv(let g, _):
            try g.validate()
            expectedWeights = g.weightCount
            if !bias.isEmpty && bias.count != g.outChannels { throw .invalidShape(name + ": bias has " + String(bias.count) + " values, expected " + String(g.outChannels)) }
        case .linear(let g, _):
            try g.validate()
            expectedWeights = g.inFeatures * g.outFeatures
            if !bias.isEmpty && bias.count != g.outFeatures { throw .invalidShape(name + ": bias has " + String(bias.count) + " values, expected " + String(g.outFeatures)) }
        case .maxPool(let g), .averagePool(let g):
            try g.validate()
        case .globalAveragePool(let c, let p):
            if c <= 0 || p <= 0 { throw .invalidShape(name + ": empty global pool") }
        case .clamp(let n, _), .softmax(let n):
            if n <= 0 { throw .invalidShape(name + ": empty tensor") }
        case .addBias(let c, let p, _):
            if c <= 0 || p <= 0 { throw .invalidShape(name + ": empty tensor") }
            if bias.count != c { throw .invalidShape(name + ": bias has " + String(bias.count) + " values, expected " + String(c)) }
        }
        if weights.count != expectedWeights {
            throw .invalidShape(name + ": has " + String(weights.count) + " weights, expected " + String(expectedWeights))
        }
    }
}
