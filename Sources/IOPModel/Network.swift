import IOPAudio
import IOPCore

/// A whole model as iop runs it: layers in execution order (weights in
/// interchange layout), a chain or a graph (`Layer.inputs`), and its NCHW
/// interface. Zoo models, ONNX imports and exports all go through this one type.
public struct Network {
    public var name: String
    /// `[1, C, H, W]` for image models or `[1, K]` / `[K, 1]` for vector models.
    public var inputShape: [Int]
    public var layers: [Layer]
    /// For a model that listens (the zoo's `valve`): the audio front end it was trained with and its alert
    /// rule. Its one output is a logit.
    public var stream: StreamSpec?

    public init(name: String, inputShape: [Int], layers: [Layer], stream: StreamSpec? = nil) {
        self.name = name; self.inputShape = inputShape; self.layers = layers; self.stream = stream
    }

    public var inputCount: Int { inputShape.reduce(1, *) }
    public var outputCount: Int { layers.last?.outputCount ?? inputCount }
    /// Parameters from the geometry alone, so architectures built without
    /// weights (listing, planning) count the same; every conv and linear
    /// layer's bias is counted, as torchvision does.
    public var parameterCount: Int {
        layers.reduce(0) { total, l in
            switch l.kind {
            case .conv(let g, _): return total + g.weightCount + g.outChannels
            case .convTranspose(let g, _): return total + g.weightCount + g.outChannels
            case .linear(let g, _): return total + g.inFeatures * g.outFeatures + g.outFeatures
            case .scale(let c, _, _): return total + 2 * c
            case .pointwise(let c, _, let f): return total + (f.hasSlopes ? c : 0)
            default: return total
            }
        }
    }
    public var flops: Int { layers.reduce(0) { $0 + $1.flops } }

    /// Shape of every layer's output, in NCHW (image) or `[1, N]` (vector) form.
    public var layerOutputShapes: [[Int]] {
        var shapes: [[Int]] = []
        let producers = LayerGraph(layers).producers
        for (i, layer) in layers.enumerated() {
            let inputs = producers[i].map { $0 < 0 ? inputShape : shapes[$0] }
            var shape = inputs[0]
            switch layer.kind {
            case .conv(let g, _): shape = [1, g.outChannels, g.outHeight, g.outWidth]
            case .convTranspose(let g, _): shape = [1, g.outChannels, g.outHeight, g.outWidth]
            case .maxPool(let g), .averagePool(let g): shape = [1, g.channels, g.outHeight, g.outWidth]
            case .globalAveragePool(let c, _), .globalMaxPool(let c, _): shape = [1, c, 1, 1]
            case .linear(let g, _): shape = [1, g.outFeatures]
            case .pad(let g): shape = [1, g.channels, g.outHeight, g.outWidth]
            case .upsample(let c, let h, let w, let sh, let sw): shape = [1, c, h * sh, w * sw]
            case .concat:
                // Along channels: the second input's channels follow the first's.
                if shape.count == 4, inputs.count > 1, inputs[1].count == 4 {
                    shape[1] += inputs[1][1]
                } else {
                    shape = [1, layer.outputCount]
                }
            case .clamp, .softmax, .addBias, .add, .scale, .pointwise, .lrn, .channelShuffle: break
            }
            shapes.append(shape)
        }
        return shapes
    }

    public var outputShape: [Int] { layerOutputShapes.last ?? inputShape }

    public func makeEngine(threads: Int) throws -> Engine {
        do { return try Engine(layers: layers, threads: threads) } catch { throw ModelError.core(error) }
    }
}

/// Errors a user can cause with a bad model or tensor file. `description` is
/// the one line the CLI prints.
public enum ModelError: Error, CustomStringConvertible, Equatable {
    case unsupportedOperator(type: String, node: String)
    case invalidModel(String)
    case invalidTensorFile(path: String, reason: String)
    case shapeMismatch(expected: [Int], got: [Int])
    case core(CoreError)
    case io(path: String, reason: String)

    /// ONNX operator types the importer reads, with the restriction each has.
    public static let supportedOperators: [(type: String, restriction: String?)] = [
        ("Conv", nil), ("ConvTranspose", "2-D"), ("Gemm", nil), ("MatMul", nil),
        ("Add", "two tensors, or per-channel constants"),
        ("Sum", nil), ("Mul", "by per-channel constants"), ("Concat", "along channels"), ("Relu", nil), ("Clip", nil),
        ("LeakyRelu", nil), ("PRelu", "per-channel or single slope"), ("Sigmoid", nil), ("HardSigmoid", nil),
        ("HardSwish", nil), ("Tanh", nil),
        ("MaxPool", nil), ("AveragePool", nil), ("GlobalAveragePool", nil), ("GlobalMaxPool", nil),
        ("LRN", nil), ("Pad", "constant, reflect or edge, on H and W"),
        ("Resize", "nearest, whole factors"), ("Upsample", "nearest, whole factors"), ("Flatten", nil),
        ("Reshape", "a flatten, or around a channel shuffle"),
        ("Transpose", "a channel shuffle"), ("Softmax", "2-D or 4-D"), ("BatchNormalization", nil), ("Dropout", nil),
        ("Identity", nil),
        ("Constant", nil), ("Shape", "folded"), ("Gather", "folded, of constants"), ("Unsqueeze", "folded"),
        ("Squeeze", "folded"), ("Cast", "folded"), ("ConstantOfShape", "folded"), ("Sub", "folded, of constants"),
        ("Div", "folded, of constants"),
    ]

    public var description: String {
        switch self {
        case .unsupportedOperator(let type, let node):
            let supported = ModelError.supportedOperators.map { op in
                op.restriction.map { "\(op.type) (\($0))" } ?? op.type
            }
            return "unsupported operator '\(type)' (node '\(node)'); supported: \(supported.joined(separator: ", "))"
        case .invalidModel(let m): return "invalid model: \(m)"
        case .invalidTensorFile(let path, let reason): return "\(path): \(reason)"
        case .shapeMismatch(let e, let g): return "input shape \(g) does not match the model's input shape \(e)"
        case .core(let e): return e.message
        case .io(let path, let reason): return "\(path): \(reason)"
        }
    }
}
