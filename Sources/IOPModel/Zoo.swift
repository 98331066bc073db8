import Foundation
import IOPAudio
import IOPCore

/// Built-in models with the torchvision layouts and seeded, deterministic He
/// initialisation, so every run (and every board) sees the same weights.
public enum Zoo {
    public static let names = [
        "lenet5", "alexnet", "vgg11", "vgg13", "vgg16", "vgg19", "valve", "resnet18", "mobilenet_v2",
        "squeezenet1_1",
    ]

    /// The spatial input size; for `valve`, the frames of a log-mel patch (its 64 mel bands are fixed).
    public static func defaultInputSize(_ name: String) -> Int {
        switch name {
        case "lenet5": return 32
        case "valve": return valveFrames
        default: return 224
        }
    }

    /// The valve-leak detector's input: 96 frames (0.96 s) of 64 log-mel bands (examples/valve-leak/frontend.py).
    public static let valveFrames = 96, valveMelBands = 64

    static let vggConfigs: [String: [Int]] = [  // 0 = max pool
        "vgg11": [64, 0, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0],
        "vgg13": [64, 64, 0, 128, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0],
        "vgg16": [64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0],
        "vgg19": [64, 64, 0, 128, 128, 0, 256, 256, 256, 256, 0, 512, 512, 512, 512, 0, 512, 512, 512, 512, 0],
    ]

    /// Builds a zoo model. `inputSize` changes the spatial input size (the first
    /// linear layer follows the feature map it gets); `withWeights: false` gives
    /// the architecture only, for listing and planning.
    public static func make(_ name: String, inputSize: Int? = nil, seed: UInt64 = 1, withWeights: Bool = true) throws
        -> Network
    {
        let size = inputSize ?? defaultInputSize(name)
        var b = Builder(
            channels: name == "lenet5" || name == "valve" ? 1 : 3, height: size,
            width: name == "valve" ? valveMelBands : size, seed: seed, withWeights: withWeights, model: name)
        switch name {
        case "valve":
            // VGGish's layout (Hershey et al., 2017) on one log-mel patch: a seeded backbone, and a leak
            // score trained on its 4096 features (examples/valve-leak/train.py writes ValveHead.swift).
            for (i, width) in [64, 0, 128, 0, 256, 256, 0, 512, 512, 0].enumerated() {
                if width == 0 {
                    try b.maxPool(2, 2, name: "pool\(i)")
                } else {
                    try b.conv(width, k: 3, p: 1, name: "conv\(i)")
                }
            }
            b.linear(4096, relu: true, name: "fc1"); b.linear(4096, relu: true, name: "fc2")
            // The trained head: a hidden ReLU layer when train.py fitted one (an MLP), then the score.
            let hidden = ValveHead.hiddenBias.count
            if hidden > 0 { b.linear(hidden, relu: true, name: "hidden") }
            b.linear(1, relu: false, name: "score")
            let trained = ValveHead.weights.count == (hidden > 0 ? hidden : 4096) && ValveHead.bias.count == 1
            if withWeights && trained {
                if hidden > 0 {
                    b.layers[b.layers.count - 2].weights = ValveHead.hiddenWeights
                    b.layers[b.layers.count - 2].bias = ValveHead.hiddenBias
                }
                b.layers[b.layers.count - 1].weights = ValveHead.weights
                b.layers[b.layers.count - 1].bias = ValveHead.bias
            }
            let audio = AudioParameters(patchFrames: size, patchHop: min(size, AudioParameters().patchHop))
            let rule = AlertRule(threshold: ValveHead.threshold, consecutive: ValveHead.consecutive)
            return Network(
                name: name, inputShape: [1, 1, size, valveMelBands], layers: b.layers,
                stream: StreamSpec(audio: audio, alerts: rule))
        case "lenet5":
            try b.conv(6, k: 5, name: "conv1"); try b.maxPool(2, 2, name: "pool1")
            try b.conv(16, k: 5, name: "conv2"); try b.maxPool(2, 2, name: "pool2")
            b.linear(120, relu: true, name: "fc1"); b.linear(84, relu: true, name: "fc2");
            b.linear(10, relu: false, name: "fc3")
        case "resnet18": try b.resnet18()
        case "mobilenet_v2": try b.mobilenetV2()
        case "squeezenet1_1": try b.squeezenet11()
        case "alexnet":
            try b.conv(64, k: 11, s: 4, p: 2, name: "features.0"); try b.maxPool(3, 2, name: "features.2")
            try b.conv(192, k: 5, p: 2, name: "features.3"); try b.maxPool(3, 2, name: "features.5")
            try b.conv(384, k: 3, p: 1, name: "features.6"); try b.conv(256, k: 3, p: 1, name: "features.8")
            try b.conv(256, k: 3, p: 1, name: "features.10"); try b.maxPool(3, 2, name: "features.12")
            b.linear(4096, relu: true, name: "classifier.1"); b.linear(4096, relu: true, name: "classifier.4")
            b.linear(1000, relu: false, name: "classifier.6")
        default:
            guard let config = vggConfigs[name] else {
                throw ModelError.invalidModel(
                    "unknown zoo model '\(name)'; available: \(names.joined(separator: ", "))")
            }
            var index = 0
            for v in config {
                if v == 0 {
                    try b.maxPool(2, 2, name: "features.\(index)"); index += 1
                } else {
                    try b.conv(v, k: 3, p: 1, name: "features.\(index)"); index += 2
                }
            }
            b.linear(4096, relu: true, name: "classifier.0"); b.linear(4096, relu: true, name: "classifier.3")
            b.linear(1000, relu: false, name: "classifier.6")
        }
        return Network(name: name, inputShape: [1, name == "lenet5" ? 1 : 3, size, size], layers: b.layers)
    }

    struct Builder {
        var c: Int, h: Int, w: Int
        var features = 0  // flattened size once a linear layer starts
        var rng: SplitMix64
        let withWeights: Bool
        let model: String
        var layers: [Layer] = []
        /// The layer whose output the next layer reads (-1: the model's input), for graphs.
        var at = -1

        init(channels: Int, height: Int, width: Int, seed: UInt64, withWeights: Bool, model: String) {
            c = channels; h = height; w = width
            rng = SplitMix64(seed: seed ^ UInt64(model.utf8.reduce(5381) { ($0 &* 33) &+ Int($1) } & 0x7fffffff))
            self.withWeights = withWeights
            self.model = model
        }

        func tooSmall(_ layer: String) -> ModelError {
            .invalidModel("input size too small for \(model): layer \(layer) would get an empty feature map")
        }

        /// Appends a layer reading the current tensor (naming it when it is not the layer just before).
        mutating func append(_ layer: Layer) {
            var layer = layer
            if at != layers.count - 1 && layer.inputs.isEmpty { layer.inputs = [at] }
            layers.append(layer)
            at = layers.count - 1
        }

        /// Conv followed by ReLU (fused) unless `act` says otherwise; a batch norm after it is folded
        /// into its weights and bias (the seeded values stand for the folded ones).
        mutating func conv(
            _ out: Int, k: Int, s: Int = 1, p: Int = 0, groups: Int = 1, act: Activation = .relu, name: String
        ) throws {
            let g = ConvGeometry(
                inChannels: c, inHeight: h, inWidth: w, outChannels: out, kernelH: k, kernelW: k,
                strideH: s, strideW: s, padTop: p, padLeft: p, padBottom: p, padRight: p, groups: groups)
            guard g.outHeight > 0, g.outWidth > 0 else { throw tooSmall(name) }
            let fanIn = c / groups * k * k
            append(
                Layer(
                    name: name, kind: .conv(g, act), weights: weights(g.weightCount, fanIn: fanIn),
                    bias: biases(out, fanIn: fanIn)))
            c = out; h = g.outHeight; w = g.outWidth
        }

        mutating func maxPool(_ k: Int, _ s: Int, p: Int = 0, ceil: Bool = false, name: String) throws {
            let g = PoolGeometry(
                channels: c, inHeight: h, inWidth: w, kernelH: k, kernelW: k, strideH: s, strideW: s, padTop: p,
                padLeft: p, padBottom: p, padRight: p, ceilMode: ceil)
            guard g.outHeight > 0, g.outWidth > 0 else { throw tooSmall(name) }
            append(Layer(name: name, kind: .maxPool(g)))
            h = g.outHeight; w = g.outWidth
        }

        mutating func linear(_ out: Int, relu: Bool, name: String) {
            let inFeatures = features > 0 ? features : c * h * w
            append(
                Layer(
                    name: name,
                    kind: .linear(LinearGeometry(inFeatures: inFeatures, outFeatures: out), relu ? .relu : .none),
                    weights: weights(out * inFeatures, fanIn: inFeatures), bias: biases(out, fanIn: inFeatures)))
            features = out
        }

        /// He (Kaiming) normal: N(0, 2 / fan_in).
        mutating func weights(_ count: Int, fanIn: Int) -> [Float] {
            guard withWeights else { return [] }
            let std = (2.0 / Double(fanIn)).squareRoot()
            var out = [Float](repeating: 0, count: count)
            var i = 0
            while i < count {
                let (a, b) = rng.nextGaussianPair()
                out[i] = Float(a * std)
                if i + 1 < count { out[i + 1] = Float(b * std) }
                i += 2
            }
            return out
        }

        /// PyTorch's default bias: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
        mutating func biases(_ count: Int, fanIn: Int) -> [Float] {
            guard withWeights else { return [] }
            let bound = 1 / Double(fanIn).squareRoot()
            return (0..<count).map { _ in Float((rng.nextUnit() * 2 - 1) * bound) }
        }
    }
}

/// SplitMix64: small, fast and fully specified, so weights are reproducible everywhere.
public struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    public mutating func nextUnit() -> Double { Double(next() >> 11) * 0x1.0p-53 }
    /// Two independent standard normals (Box–Muller).
    public mutating func nextGaussianPair() -> (Double, Double) {
        let u1 = max(nextUnit(), 1e-300), u2 = nextUnit()
        let r = (-2 * Foundation.log(u1)).squareRoot()
        return (r * Foundation.cos(2 * .pi * u2), r * Foundation.sin(2 * .pi * u2))
    }
}

extension Network {
    /// Loads a zoo name or an `.onnx` path.
    public static func load(_ model: String, inputSize: Int? = nil) throws -> Network {
        if Zoo.names.contains(model) { return try Zoo.make(model, inputSize: inputSize) }
        if model.hasSuffix(".onnx") || FileManager.default.fileExists(atPath: model) {
            if inputSize != nil {
                throw ModelError.invalidModel("--input-size applies to zoo models only, not to \(model)")
            }
            return try ONNXImporter.load(path: model)
        }
        throw ModelError.invalidModel(
            "'\(model)' is neither a zoo model (\(Zoo.names.joined(separator: ", "))) nor an existing .onnx file")
    }
}
