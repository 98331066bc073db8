import Foundation
import IOPCore
import SwiftProtobuf

/// Reads an ONNX model (float32, batch 1, a graph of supported operators, in
/// the file's node order) into a `Network`, folding BatchNormalization and Mul
/// or Add by per-channel constants into the conv or linear layer before them
/// (a per-channel scale layer where there is none), fusing Relu/Clip into the
/// layer before them, and dropping Dropout and Identity. A fold or fusion
/// happens only where no other node reads the tensor in between. Shape arithmetic on constants is
/// folded at load (`ONNXConstantFolding.swift`).
public enum ONNXImporter {
    public static func load(path: String) throws -> Network {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ModelError.io(path: path, reason: "cannot read file")
        }
        let name = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        do { return try load(data: data, name: name) } catch let e as ModelError {
            throw ModelError.io(path: path, reason: e.description)
        }
    }

    public static func load(data: Data, name: String) throws -> Network {
        let model: Onnx_ModelProto
        do { model = try Onnx_ModelProto(serializedBytes: data) } catch {
            throw ModelError.invalidModel("not a readable ONNX protobuf (truncated or corrupted): \(error)")
        }
        guard model.hasGraph else { throw ModelError.invalidModel("the file has no graph") }
        var builder = try Builder(
            graph: model.graph,
            opset: model.opsetImport.first { $0.domain.isEmpty || $0.domain == "ai.onnx" }?.version ?? 13)
        for node in model.graph.node { try builder.add(node) }
        return try builder.finish(name: name)
    }

    struct Tensor {
        var dims: [Int]
        var floats: [Float]
        var ints: [Int64]
    }

    /// A tensor of the graph as iop holds it: the layer whose output it is (-1: the graph input), its
    /// shape, and whether it is exactly that layer's output (not flattened), so a fold may change it.
    struct Value {
        var layer: Int
        var shape: [Int]
        var fresh: Bool
    }

    struct Builder {
        let graph: Onnx_GraphProto
        let opset: Int64
        var initializers: [String: Tensor] = [:]
        var inputShape: [Int]
        /// Every tensor made so far, by name.
        var values: [String: Value] = [:]
        /// How many nodes (and graph outputs) read each tensor.
        var readers: [String: Int] = [:]
        /// The node being read: its first input, and that input's shape (the node's output shape after it).
        var input = Value(layer: -1, shape: [], fresh: false)
        var inputName = ""
        var shape: [Int]
        var layers: [Layer] = []
        /// Set when the node's first input is the last layer's own output and nothing else reads it: the
        /// layer may still absorb a BatchNormalization, a per-channel Mul or Add, or an activation.
        var lastOutputIsLayer = false

        init(graph: Onnx_GraphProto, opset: Int64) throws {
            self.graph = graph
            self.opset = opset
            var constants: [String: Tensor] = [:]
            for t in graph.initializer { constants[t.name] = try Builder.decode(t) }
            initializers = constants
            let inputs = graph.input.filter { constants[$0.name] == nil }
            guard inputs.count == 1 else {
                throw ModelError.invalidModel(
                    "expected exactly one graph input, found \(inputs.count) "
                        + "(\(inputs.map(\.name).joined(separator: ", ")))"
                )
            }
            let input = inputs[0]
            guard input.type.tensorType.elemType == 1 else {
                throw ModelError.invalidModel(
                    "input '\(input.name)' must be float32 (elem_type 1), "
                        + "got elem_type \(input.type.tensorType.elemType)"
                )
            }
            var dims = input.type.tensorType.shape.dim.map { d -> Int in
                if case .dimValue(let v)? = d.value { return Int(v) }
                return 1  // a symbolic batch dimension: iop runs batch 1
            }
            if dims.count == 4 || dims.count == 2 {
                if dims.count == 4 || dims[1] != 1 { dims[0] = 1 }
            } else {
                throw ModelError.invalidModel(
                    "input '\(input.name)' has rank \(dims.count); expected NCHW (rank 4) or a [1, K] vector")
            }
            guard dims.allSatisfy({ $0 > 0 }) else {
                throw ModelError.invalidModel("input '\(input.name)' has a zero dimension")
            }
            inputShape = dims
            shape = dims
            values[input.name] = Value(layer: -1, shape: dims, fresh: false)
            // Shape only reads a tensor's shape, which is known at load (it folds): the data's readers are the others.
            for node in graph.node where node.opType != "Shape" {
                for i in node.input where !i.isEmpty { readers[i, default: 0] += 1 }
            }
            for o in graph.output { readers[o.name, default: 0] += 1 }
        }

        /// Appends a layer reading the node's first input (or the tensors `inputs` names).
        mutating func append(_ layer: Layer, inputs: [Int]? = nil) {
            var layer = layer
            let read = inputs ?? [input.layer]
            if read != [layers.count - 1] { layer.inputs = read }
            layers.append(layer)
        }

        /// The tensor a node reads as input `index`: made by an earlier node, or the graph input.
        func value(_ node: Onnx_NodeProto, _ index: Int, _ nodeName: String) throws -> Value {
            guard let v = values[node.input[index]] else {
                if !ModelError.supportedOperators.contains(where: { $0.type == node.opType }) {
                    throw ModelError.unsupportedOperator(type: node.opType, node: nodeName)
                }
                throw ModelError.invalidModel(
                    "node '\(nodeName)' (\(node.opType)) reads '\(node.input[index])', which no earlier node makes")
            }
            return v
        }

        static func decode(_ t: Onnx_TensorProto) throws -> Tensor {
            let dims = t.dims.map { Int($0) }
            guard dims.allSatisfy({ $0 >= 0 }) else {
                throw ModelError.invalidModel("initializer '\(t.name)' has a negative dimension")
            }
            let count = dims.reduce(1, *)
            if t.dataLocation == .external {
                throw ModelError.invalidModel("initializer '\(t.name)' uses external data, which iop does not read")
            }
            switch t.dataType {
            case 1:
                var floats: [Float]
                if t.hasRawData {
                    guard t.rawData.count == count * 4 else {
                        throw ModelError.invalidModel(
                            "initializer '\(t.name)' has \(t.rawData.count) bytes of raw_data, "
                                + "shape \(dims) needs \(count * 4)"
                        )
                    }
                    floats = [Float](repeating: 0, count: count)
                    floats.withUnsafeMutableBytes { dst in t.rawData.withUnsafeBytes { dst.copyMemory(from: $0) } }
                } else {
                    floats = t.floatData
                }
                guard floats.count == count else {
                    throw ModelError.invalidModel(
                        "initializer '\(t.name)' has \(floats.count) values, shape \(dims) needs \(count)")
                }
                return Tensor(dims: dims, floats: floats, ints: [])
            case 7:
                var ints: [Int64]
                if t.hasRawData {
                    guard t.rawData.count == count * 8 else {
                        throw ModelError.invalidModel(
                            "initializer '\(t.name)' has \(t.rawData.count) bytes of raw_data, "
                                + "shape \(dims) needs \(count * 8)"
                        )
                    }
                    ints = [Int64](repeating: 0, count: count)
                    ints.withUnsafeMutableBytes { dst in t.rawData.withUnsafeBytes { dst.copyMemory(from: $0) } }
                } else {
                    ints = t.int64Data
                }
                guard ints.count == count else {
                    throw ModelError.invalidModel("initializer '\(t.name)' has \(ints.count) values, needs \(count)")
                }
                return Tensor(dims: dims, floats: [], ints: ints)
            default:
                throw ModelError.invalidModel(
                    "initializer '\(t.name)' has data type \(t.dataType); "
                        + "iop models are float32 (int64 only for shapes)"
                )
            }
        }

        func initializer(_ node: Onnx_NodeProto, _ index: Int, _ role: String) throws -> Tensor {
            guard index < node.input.count, !node.input[index].isEmpty else {
                throw ModelError.invalidModel("node '\(node.name)' (\(node.opType)) has no \(role) input")
            }
            guard let t = initializers[node.input[index]] else {
                throw ModelError.invalidModel(
                    "node '\(node.name)' (\(node.opType)): "
                        + "\(role) '\(node.input[index])' must be a constant initializer"
                )
            }
            return t
        }

        func optionalInitializer(_ node: Onnx_NodeProto, _ index: Int, _ role: String) throws -> Tensor? {
            guard index < node.input.count, !node.input[index].isEmpty else { return nil }
            return try initializer(node, index, role)
        }

        static func attributes(_ node: Onnx_NodeProto) -> [String: Onnx_AttributeProto] {
            var out: [String: Onnx_AttributeProto] = [:]
            for a in node.attribute { out[a.name] = a }
            return out
        }

        mutating func add(_ node: Onnx_NodeProto) throws {
            let nodeName = node.name.isEmpty ? (node.output.first ?? node.opType) : node.name
            guard node.domain.isEmpty || node.domain == "ai.onnx" else {
                throw ModelError.unsupportedOperator(type: "\(node.domain).\(node.opType)", node: nodeName)
            }
            if node.opType == "Constant" {
                try constant(node, name: nodeName)
                return
            }
            if try fold(node, name: nodeName) { return }
            guard let first = node.input.first, !first.isEmpty else {
                throw ModelError.invalidModel("node '\(nodeName)' (\(node.opType)) has no input")
            }
            if initializers[first] != nil && node.input.count > 1 && ["Add", "Mul"].contains(node.opType) {
                // A constant first operand: the tensor is the second (`elementwise` takes it from there).
                input = try value(node, 1, nodeName); inputName = node.input[1]
            } else {
                input = try value(node, 0, nodeName); inputName = first
            }
            shape = input.shape
            lastOutputIsLayer = input.fresh && input.layer == layers.count - 1 && readers[inputName] == 1
            let layerCount = layers.count
            let attrs = Builder.attributes(node)
            func int(_ k: String, _ d: Int) -> Int { attrs[k].map { Int($0.i) } ?? d }
            func float(_ k: String, _ d: Float) -> Float { attrs[k]?.f ?? d }
            func ints(_ k: String) -> [Int]? { attrs[k].map { $0.ints.map { Int($0) } } }
            func string(_ k: String, _ d: String) -> String {
                attrs[k].map { String(decoding: $0.s, as: UTF8.self) } ?? d
            }

            var absorbed = false
            switch node.opType {
            case "Conv":
                guard shape.count == 4 else {
                    throw ModelError.invalidModel("Conv '\(nodeName)' needs an NCHW input, got shape \(shape)")
                }
                let w = try initializer(node, 1, "weight")
                guard w.dims.count == 4 else {
                    throw ModelError.invalidModel("Conv '\(nodeName)': weight must be 4-D (OIHW), got \(w.dims)")
                }
                let b = try optionalInitializer(node, 2, "bias")
                let groups = int("group", 1)
                let k = ints("kernel_shape") ?? [w.dims[2], w.dims[3]]
                guard k == [w.dims[2], w.dims[3]] else {
                    throw ModelError.invalidModel(
                        "Conv '\(nodeName)': kernel_shape \(k) disagrees with weight \(w.dims)")
                }
                guard groups > 0, w.dims[1] * groups == shape[1] else {
                    throw ModelError.invalidModel(
                        "Conv '\(nodeName)': weight \(w.dims) with group \(groups) "
                            + "does not fit \(shape[1]) input channels"
                    )
                }
                let s = ints("strides") ?? [1, 1], d = ints("dilations") ?? [1, 1]
                guard s.count == 2, d.count == 2 else {
                    throw ModelError.invalidModel("Conv '\(nodeName)': only 2-D convolution is supported")
                }
                let pads = try resolvePads(
                    node: nodeName, autoPad: string("auto_pad", "NOTSET"), pads: ints("pads"),
                    input: [shape[2], shape[3]], kernel: k, strides: s, dilations: d, ceil: false)
                let g = ConvGeometry(
                    inChannels: shape[1], inHeight: shape[2], inWidth: shape[3], outChannels: w.dims[0],
                    kernelH: k[0], kernelW: k[1], strideH: s[0], strideW: s[1], dilationH: d[0], dilationW: d[1],
                    padTop: pads[0], padLeft: pads[1], padBottom: pads[2], padRight: pads[3], groups: groups)
                do { try g.validate() } catch { throw ModelError.invalidModel("Conv '\(nodeName)': \(error.message)") }
                if let b, b.floats.count != w.dims[0] {
                    throw ModelError.invalidModel(
                        "Conv '\(nodeName)': bias has \(b.floats.count) values, expected \(w.dims[0])")
                }
                append(Layer(name: nodeName, kind: .conv(g, .none), weights: w.floats, bias: b?.floats ?? []))
                shape = [1, g.outChannels, g.outHeight, g.outWidth]
                absorbed = true
            case "ConvTranspose":
                let w = try initializer(node, 1, "weight")
                let g = try ONNXConvTranspose.geometry(
                    node: nodeName, shape: shape, weightDims: w.dims, ints: ints,
                    autoPad: string("auto_pad", "NOTSET"), group: int("group", 1))
                let b = try optionalInitializer(node, 2, "bias")
                if let b, b.floats.count != g.outChannels {
                    throw ModelError.invalidModel(
                        "ConvTranspose '\(nodeName)': bias has \(b.floats.count) values, expected \(g.outChannels)")
                }
                append(
                    Layer(
                        name: nodeName, kind: .convTranspose(g, .none),
                        weights: ONNXConvTranspose.reorder(w.floats, g, toONNX: false), bias: b?.floats ?? []))
                shape = [1, g.outChannels, g.outHeight, g.outWidth]
                absorbed = true
            case "BatchNormalization":
                let scale = try initializer(node, 1, "scale"), bias = try initializer(node, 2, "B")
                let mean = try initializer(node, 3, "mean"), variance = try initializer(node, 4, "var")
                let c = shape.count > 1 ? shape[1] : 0
                guard c > 0, [scale, bias, mean, variance].allSatisfy({ $0.floats.count == c }) else {
                    throw ModelError.invalidModel("BatchNormalization '\(nodeName)': parameters must have \(c) values")
                }
                let eps = float("epsilon", 1e-5)
                let f = (0..<c).map { scale.floats[$0] / (variance.floats[$0] + eps).squareRoot() }
                try affine(scale: f, shift: (0..<c).map { bias.floats[$0] - mean.floats[$0] * f[$0] }, name: nodeName)
                absorbed = true
            case "Relu":
                try appendActivation(.relu, name: nodeName)
                absorbed = lastOutputIsLayer
            case "Clip":
                var lo = -Float.infinity, hi = Float.infinity
                if opset < 11 {
                    lo = float("min", lo); hi = float("max", hi)
                } else {
                    if let t = try optionalInitializer(node, 1, "min") { lo = t.floats.first ?? lo }
                    if let t = try optionalInitializer(node, 2, "max") { hi = t.floats.first ?? hi }
                }
                try appendActivation(Activation(low: lo, high: hi), name: nodeName)
                absorbed = lastOutputIsLayer
            case "LeakyRelu":
                try appendPointwise(.leakyRelu(alpha: float("alpha", 0.01)), name: nodeName)
                absorbed = true
            case "PRelu":
                let slopes = try perChannel(try initializer(node, 1, "slope"), node: nodeName)
                if slopes.allSatisfy({ $0 == slopes[0] }) {
                    try appendPointwise(.leakyRelu(alpha: slopes[0]), name: nodeName)
                } else {
                    try appendPointwise(.prelu, name: nodeName, slopes: slopes)
                }
                absorbed = true
            case "Sigmoid":
                try appendPointwise(.sigmoid, name: nodeName)
                absorbed = true
            case "HardSigmoid":
                try appendPointwise(.hardSigmoid(alpha: float("alpha", 0.2), beta: float("beta", 0.5)), name: nodeName)
                absorbed = true
            case "HardSwish":
                try appendPointwise(.hardSwish, name: nodeName)
                absorbed = true
            case "Tanh":
                try appendPointwise(.tanh, name: nodeName)
                absorbed = true
            case "MaxPool", "AveragePool":
                guard shape.count == 4 else {
                    throw ModelError.invalidModel(
                        "\(node.opType) '\(nodeName)' needs an NCHW input, got shape \(shape)")
                }
                guard node.output.count == 1 || node.output[1].isEmpty else {
                    throw ModelError.invalidModel("MaxPool '\(nodeName)': the Indices output is not supported")
                }
                guard let k = ints("kernel_shape"), k.count == 2 else {
                    throw ModelError.invalidModel("\(node.opType) '\(nodeName)': needs a 2-D kernel_shape")
                }
                let s = ints("strides") ?? [1, 1], d = ints("dilations") ?? [1, 1]
                guard d.count == 2, node.opType == "MaxPool" || d == [1, 1] else {
                    throw ModelError.invalidModel(
                        "\(node.opType) '\(nodeName)': dilations \(d) are not supported (MaxPool's are, 2-D)")
                }
                let ceil = int("ceil_mode", 0) != 0
                let pads = try resolvePads(
                    node: nodeName, autoPad: string("auto_pad", "NOTSET"), pads: ints("pads"),
                    input: [shape[2], shape[3]], kernel: k, strides: s, dilations: d, ceil: ceil)
                let g = PoolGeometry(
                    channels: shape[1], inHeight: shape[2], inWidth: shape[3], kernelH: k[0], kernelW: k[1],
                    strideH: s[0], strideW: s[1], padTop: pads[0], padLeft: pads[1], padBottom: pads[2],
                    padRight: pads[3], dilationH: d[0], dilationW: d[1], ceilMode: ceil,
                    countIncludePad: int("count_include_pad", 0) != 0)
                do { try g.validate() } catch {
                    throw ModelError.invalidModel("\(node.opType) '\(nodeName)': \(error.message)")
                }
                append(Layer(name: nodeName, kind: node.opType == "MaxPool" ? .maxPool(g) : .averagePool(g)))
                shape = [1, g.channels, g.outHeight, g.outWidth]
            case "GlobalAveragePool", "GlobalMaxPool":
                guard shape.count == 4 else {
                    throw ModelError.invalidModel(
                        "\(node.opType) '\(nodeName)' needs an NCHW input, got shape \(shape)")
                }
                let c = shape[1], plane = shape[2] * shape[3]
                append(
                    Layer(
                        name: nodeName,
                        kind: node.opType == "GlobalMaxPool"
                            ? .globalMaxPool(channels: c, plane: plane) : .globalAveragePool(channels: c, plane: plane))
                )
                shape = [1, shape[1], 1, 1]
            case "Flatten":
                let axis = int("axis", 1)
                guard axis == 1 || axis == -(shape.count - 1) || axis == 0 else {
                    throw ModelError.invalidModel(
                        "Flatten '\(nodeName)': axis \(axis) is not supported (batch 1 needs axis 1)")
                }
                shape = [1, shape.reduce(1, *)]
            case "Reshape":
                let target = try initializer(node, 1, "shape").ints.map { Int($0) }
                let n = shape.reduce(1, *)
                let known = target.filter { $0 > 0 }.reduce(1, *)
                let resolved = target.enumerated().map { i, v in v == -1 ? n / max(known, 1) : (v == 0 ? shape[i] : v) }
                // The data never moves: a flatten, or the channel split and merge around a shuffle.
                let split = shape.count == 4 && resolved.count == 5 && Array(resolved[3...]) == Array(shape[2...])
                let merge =
                    shape.count == 5 && resolved.count == 4 && Array(resolved[2...]) == Array(shape[3...])
                    && resolved[1] == shape[1] * shape[2]
                guard resolved.reduce(1, *) == n, resolved[0] == 1, resolved.count == 2 || split || merge else {
                    throw ModelError.invalidModel(
                        "Reshape '\(nodeName)': only a flatten to [1, N] or the channel split and merge of a shuffle "
                            + "are supported, got target \(target) for input \(shape)"
                    )
                }
                shape = resolved
            case "Transpose":
                guard shape.count == 5, ints("perm") == [0, 2, 1, 3, 4] else {
                    throw ModelError.invalidModel(
                        "Transpose '\(nodeName)': only a channel shuffle (perm [0, 2, 1, 3, 4] of [1, g, C/g, H, W]) "
                            + "is supported, got perm \(ints("perm") ?? []) for shape \(shape)")
                }
                append(
                    Layer(
                        name: nodeName,
                        kind: .channelShuffle(
                            groups: shape[1], channels: shape[1] * shape[2], plane: shape[3] * shape[4])))
                shape = [1, shape[2], shape[1], shape[3], shape[4]]
            case "Gemm":
                let transA = int("transA", 0) != 0, transB = int("transB", 0) != 0
                let k = shape.reduce(1, *)
                guard shape.count == 2, (transA ? shape[1] : shape[0]) == 1 else {
                    throw ModelError.invalidModel(
                        "Gemm '\(nodeName)': A has shape \(shape); "
                            + "iop runs batch 1 (A must be [1, K], or [K, 1] with transA)"
                    )
                }
                let b = try initializer(node, 1, "B")
                guard b.dims.count == 2, (transB ? b.dims[1] : b.dims[0]) == k else {
                    throw ModelError.invalidModel(
                        "Gemm '\(nodeName)': B has shape \(b.dims), "
                            + "which does not fit K = \(k) (transB \(transB ? 1 : 0))"
                    )
                }
                let n = transB ? b.dims[0] : b.dims[1]
                let alpha = float("alpha", 1), beta = float("beta", 1)
                var w = [Float](repeating: 0, count: n * k)
                for o in 0..<n {
                    for i in 0..<k { w[o * k + i] = alpha * (transB ? b.floats[o * k + i] : b.floats[i * n + o]) }
                }
                var bias: [Float] = []
                if let c = try optionalInitializer(node, 2, "C") {
                    bias = try broadcastBias(c, n: n, node: nodeName).map { $0 * beta }
                }
                append(
                    Layer(
                        name: nodeName, kind: .linear(LinearGeometry(inFeatures: k, outFeatures: n), .none), weights: w,
                        bias: bias))
                shape = [1, n]
                absorbed = true
            case "MatMul":
                let k = shape.reduce(1, *)
                guard shape.count == 2, shape[0] == 1 else {
                    throw ModelError.invalidModel("MatMul '\(nodeName)': A has shape \(shape), expected [1, K]")
                }
                let b = try initializer(node, 1, "B")
                guard b.dims.count == 2, b.dims[0] == k else {
                    throw ModelError.invalidModel("MatMul '\(nodeName)': B has shape \(b.dims), expected [\(k), N]")
                }
                let n = b.dims[1]
                var w = [Float](repeating: 0, count: n * k)
                for o in 0..<n { for i in 0..<k { w[o * k + i] = b.floats[i * n + o] } }
                append(
                    Layer(
                        name: nodeName, kind: .linear(LinearGeometry(inFeatures: k, outFeatures: n), .none), weights: w)
                )
                shape = [1, n]
                absorbed = true
            case "Add", "Sum", "Mul":
                absorbed = try elementwise(node, name: nodeName)
            case "Concat":
                let axis = int("axis", 1)
                guard axis == 1 || axis == 1 - shape.count else {
                    throw ModelError.invalidModel(
                        "Concat '\(nodeName)': only along channels (axis 1) is supported, got axis \(axis)")
                }
                var joined = input
                for k in 1..<node.input.count {
                    let next = try value(node, k, nodeName)
                    guard next.shape.count == joined.shape.count, next.shape.count >= 2,
                        Array(next.shape[2...]) == Array(joined.shape[2...])
                    else {
                        throw ModelError.invalidModel(
                            "Concat '\(nodeName)': shapes \(joined.shape) and \(next.shape) differ beyond channels")
                    }
                    let first = joined.shape.reduce(1, *), second = next.shape.reduce(1, *)
                    append(
                        Layer(name: nodeName, kind: .concat(first: first, second: second)),
                        inputs: [joined.layer, next.layer])
                    joined.shape[1] += next.shape[1]
                    joined.layer = layers.count - 1
                }
                shape = joined.shape
            case "Softmax":
                // Opset 13 normalizes along one axis; before, over everything from the axis on.
                let rank = shape.count, given = int("axis", opset >= 13 ? -1 : 1)
                let axis = given < 0 ? given + rank : given
                guard rank == 2 || rank == 4, axis >= 0, axis < rank else {
                    throw ModelError.invalidModel(
                        "Softmax '\(nodeName)': supported on 2-D and 4-D tensors, got shape \(shape) axis \(given)")
                }
                let outer = shape[..<axis].reduce(1, *)
                let inner = opset >= 13 ? shape[(axis + 1)...].reduce(1, *) : 1
                let count = shape.reduce(1, *) / (outer * inner)
                append(Layer(name: nodeName, kind: .softmax(count: count, outer: outer, inner: inner)))
            case "LRN":
                let size = int("size", 0), bias = float("bias", 1)
                guard shape.count == 4, size > 0, bias > 0 else {
                    throw ModelError.invalidModel(
                        "LRN '\(nodeName)': needs an NCHW input, a positive size and bias, "
                            + "got shape \(shape) size \(size) bias \(bias)")
                }
                append(
                    Layer(
                        name: nodeName,
                        kind: .lrn(
                            channels: shape[1], plane: shape[2] * shape[3], size: size, alpha: float("alpha", 1e-4),
                            beta: float("beta", 0.75), bias: bias)))
            case "Pad":
                let g = try padGeometry(node, name: nodeName)
                append(Layer(name: nodeName, kind: .pad(g)))
                shape = [1, g.channels, g.outHeight, g.outWidth]
            case "Resize", "Upsample":
                let s = try upsampleFactors(node, name: nodeName)
                append(
                    Layer(
                        name: nodeName,
                        kind: .upsample(
                            channels: shape[1], inHeight: shape[2], inWidth: shape[3], scaleH: s[0], scaleW: s[1])))
                shape = [1, shape[1], shape[2] * s[0], shape[3] * s[1]]
            case "Dropout", "Identity":
                if node.output.count > 1 && !node.output[1].isEmpty
                    && graph.node.contains(where: { $0.input.contains(node.output[1]) })
                {
                    throw ModelError.invalidModel(
                        "Dropout '\(nodeName)': its mask output is used, which iop does not support")
                }
                absorbed = lastOutputIsLayer
            default:
                throw ModelError.unsupportedOperator(type: node.opType, node: nodeName)
            }
            guard let out = node.output.first, !out.isEmpty else {
                throw ModelError.invalidModel("node '\(nodeName)' has no output")
            }
            let made = layers.count > layerCount || (absorbed && lastOutputIsLayer)
            values[out] = Value(layer: made ? layers.count - 1 : input.layer, shape: shape, fresh: absorbed)
        }

        mutating func appendActivation(_ act: Activation, name: String) throws {
            if lastOutputIsLayer, var last = layers.last {
                switch last.kind {
                case .conv(let g, .none): last.kind = .conv(g, act)
                case .convTranspose(let g, .none): last.kind = .convTranspose(g, act)
                case .linear(let g, .none): last.kind = .linear(g, act)
                case .add(let n, .none): last.kind = .add(count: n, act)
                case .scale(let c, let p, .none): last.kind = .scale(channels: c, plane: p, act)
                default: break
                }
                if last.kind != layers[layers.count - 1].kind { layers[layers.count - 1] = last; return }
            }
            try inPlace(name)
            append(Layer(name: name, kind: .clamp(count: shape.reduce(1, *), act)))
        }

        /// A pointwise function as a layer of its own, in place, over the channels of the node's input
        /// (the features of a vector).
        mutating func appendPointwise(_ f: PointwiseFunction, name: String, slopes: [Float] = []) throws {
            try inPlace(name)
            let n = shape.reduce(1, *), c = shape.count > 1 ? shape[1] : 1
            append(Layer(name: name, kind: .pointwise(channels: c, plane: n / c, f), weights: slopes))
        }

        /// A layer in place overwrites its input: only where no other node reads it.
        func inPlace(_ name: String) throws {
            guard readers[inputName, default: 0] <= 1 else {
                throw ModelError.invalidModel(
                    "node '\(name)' would overwrite '\(inputName)', which other nodes also read; iop runs it in place")
            }
        }

        /// x * scale[c] + shift[c]: folded into the conv or linear layer (or scale) just before when it
        /// may absorb it, else a scale layer of its own.
        mutating func affine(scale: [Float]?, shift: [Float]?, name: String) throws {
            let c = shape[1], plane = shape.count == 4 ? shape[2] * shape[3] : 1
            if lastOutputIsLayer, var last = layers.last {
                var foldable = true
                switch last.kind {
                case .conv(_, .none), .convTranspose(_, .none), .linear(_, .none), .scale(_, _, .none): break
                default: foldable = false
                }
                if foldable {
                    let perChannel = last.weights.count / c
                    if last.bias.isEmpty { last.bias = [Float](repeating: 0, count: c) }
                    for o in 0..<c {
                        let f = scale?[o] ?? 1
                        for i in 0..<perChannel { last.weights[o * perChannel + i] *= f }
                        last.bias[o] = last.bias[o] * f + (shift?[o] ?? 0)
                    }
                    layers[layers.count - 1] = last
                    return
                }
            }
            try inPlace(name)
            append(
                Layer(
                    name: name, kind: .scale(channels: c, plane: plane, .none),
                    weights: scale ?? [Float](repeating: 1, count: c), bias: shift ?? [Float](repeating: 0, count: c)))
        }

        /// A constant that broadcasts over `shape` as one value per channel (or one value).
        func perChannel(_ t: Tensor, node: String) throws -> [Float] {
            let c = shape.count > 1 ? shape[1] : 0
            if t.floats.count == 1 { return [Float](repeating: t.floats[0], count: c) }
            let dims = Array(t.dims.drop { $0 == 1 })
            let fits = shape.count == 4 ? (dims == [c, 1, 1]) : (shape.count == 2 && dims == [c])
            guard fits, t.floats.count == c else {
                throw ModelError.invalidModel(
                    "node '\(node)': constant of shape \(t.dims) does not broadcast per channel over \(shape)")
            }
            return t.floats
        }

        /// Add, Sum and Mul: of two tensors of one shape (Add, Sum), or of a tensor and per-channel constants.
        mutating func elementwise(_ node: Onnx_NodeProto, name: String) throws -> Bool {
            let constants = node.input.map { initializers[$0] }
            if node.opType != "Sum" && node.input.count != 2 {
                throw ModelError.invalidModel("\(node.opType) '\(name)' needs two inputs")
            }
            if let k = constants.firstIndex(where: { $0 != nil }) {
                guard node.input.count == 2, constants[1 - k] == nil, let t = constants[k] else {
                    throw ModelError.unsupportedOperator(type: node.opType + " (of constants only)", node: name)
                }
                let v = try perChannel(t, node: name)
                try affine(scale: node.opType == "Mul" ? v : nil, shift: node.opType == "Mul" ? nil : v, name: name)
                return true
            }
            guard node.opType != "Mul" else {
                throw ModelError.unsupportedOperator(type: "Mul (of two tensors)", node: name)
            }
            var sum = input
            for k in 1..<node.input.count {
                let next = try value(node, k, name)
                guard next.shape == sum.shape else {
                    throw ModelError.invalidModel(
                        "\(node.opType) '\(name)': shapes \(sum.shape) and \(next.shape) differ (no broadcasting)")
                }
                append(
                    Layer(name: name, kind: .add(count: shape.reduce(1, *), .none)), inputs: [sum.layer, next.layer])
                sum.layer = layers.count - 1
            }
            return true
        }

        /// A Constant node: its value joins the initializers (a tensor attribute, or a float or ints).
        mutating func constant(_ node: Onnx_NodeProto, name: String) throws {
            guard let out = node.output.first, let a = node.attribute.first else {
                throw ModelError.invalidModel("Constant '\(name)' has no value")
            }
            switch a.name {
            case "value": initializers[out] = try Builder.decode(a.t)
            case "value_float": initializers[out] = Tensor(dims: [], floats: [a.f], ints: [])
            case "value_floats": initializers[out] = Tensor(dims: [a.floats.count], floats: a.floats, ints: [])
            case "value_int": initializers[out] = Tensor(dims: [], floats: [], ints: [a.i])
            case "value_ints": initializers[out] = Tensor(dims: [a.ints.count], floats: [], ints: a.ints)
            default: throw ModelError.invalidModel("Constant '\(name)': attribute '\(a.name)' is not supported")
            }
        }

        /// Pad's amounts (an attribute before opset 11, an initializer with optional axes after), on H and W.
        func padGeometry(_ node: Onnx_NodeProto, name: String) throws -> PadGeometry {
            let attrs = Builder.attributes(node)
            let modeName = attrs["mode"].map { String(decoding: $0.s, as: UTF8.self) } ?? "constant"
            let modes: [String: PadMode] = ["constant": .constant, "reflect": .reflect, "edge": .edge]
            guard shape.count == 4, let mode = modes[modeName] else {
                throw ModelError.invalidModel(
                    "Pad '\(name)': supported on NCHW tensors in constant, reflect or edge mode, "
                        + "got shape \(shape) mode '\(modeName)'")
            }
            var pads: [Int], value: Float = 0
            if opset < 11 {
                pads = attrs["pads"]?.ints.map { Int($0) } ?? []
                value = attrs["value"]?.f ?? 0
            } else {
                pads = try initializer(node, 1, "pads").ints.map { Int($0) }
                if let v = try optionalInitializer(node, 2, "constant_value") { value = v.floats.first ?? 0 }
                if let a = try optionalInitializer(node, 3, "axes") {
                    // Pads for the named axes only: spread them over all four.
                    let axes = a.ints.map { Int($0) < 0 ? Int($0) + 4 : Int($0) }
                    guard pads.count == 2 * axes.count else {
                        throw ModelError.invalidModel("Pad '\(name)': \(pads.count) pads for axes \(axes)")
                    }
                    var all = [Int](repeating: 0, count: 8)
                    for (k, axis) in axes.enumerated() where axis >= 0 && axis < 4 {
                        all[axis] = pads[k]; all[axis + 4] = pads[k + axes.count]
                    }
                    pads = all
                }
            }
            guard pads.count == 8, pads[0] == 0, pads[1] == 0, pads[4] == 0, pads[5] == 0 else {
                throw ModelError.invalidModel("Pad '\(name)': only H and W may be padded, got pads \(pads)")
            }
            let g = PadGeometry(
                channels: shape[1], inHeight: shape[2], inWidth: shape[3], top: pads[2], left: pads[3],
                bottom: pads[6], right: pads[7], mode: mode, value: value)
            do { try g.validate() } catch { throw ModelError.invalidModel("Pad '\(name)': \(error.message)") }
            return g
        }

        /// Whole upsampling factors of a nearest Resize or Upsample on H and W (from scales, or sizes, and
        /// only where the node's coordinate rules read input pixel floor(x / factor) for output x, as
        /// repeating each pixel does).
        func upsampleFactors(_ node: Onnx_NodeProto, name: String) throws -> [Int] {
            let attrs = Builder.attributes(node)
            func text(_ k: String, _ d: String) -> String {
                attrs[k].map { String(decoding: $0.s, as: UTF8.self) } ?? d
            }
            let mode = text("mode", "nearest")
            guard shape.count == 4, mode == "nearest" else {
                throw ModelError.invalidModel(
                    "\(node.opType) '\(name)': supported in nearest mode on NCHW tensors, got mode '\(mode)' "
                        + "shape \(shape)")
            }
            // Before opset 11 (and for Upsample) coordinates are x / scale, rounded down.
            let modern = node.opType == "Resize" && opset >= 11
            var scales: [Float] = []
            if node.opType == "Upsample" && opset < 9 {
                scales = attrs["scales"]?.floats ?? []
            } else if let t = try optionalInitializer(node, modern ? 2 : 1, "scales"), !t.floats.isEmpty {
                scales = t.floats
            } else if modern, let t = try optionalInitializer(node, 3, "sizes") {
                scales = zip(t.ints, shape).map { Float($0) / Float($1) }
            }
            if modern, let axes = attrs["axes"]?.ints, axes.map({ $0 < 0 ? $0 + 4 : $0 }) != [0, 1, 2, 3] {
                guard scales.count == axes.count else {
                    throw ModelError.invalidModel("Resize '\(name)': \(scales.count) scales for axes \(axes)")
                }
                var all: [Float] = [1, 1, 1, 1]
                for (k, a) in axes.enumerated() { all[Int(a < 0 ? a + 4 : a)] = scales[k] }
                scales = all
            }
            let factors = scales.map { Int($0) }
            guard scales.count == 4, scales[0] == 1, scales[1] == 1, factors[2] >= 1, factors[3] >= 1,
                scales[2] == Float(factors[2]), scales[3] == Float(factors[3])
            else {
                throw ModelError.invalidModel(
                    "\(node.opType) '\(name)': only whole upsampling factors on H and W are supported, "
                        + "got scales \(scales)")
            }
            if modern {
                let transform = text("coordinate_transformation_mode", "half_pixel")
                let rounding = text("nearest_mode", "round_prefer_floor")
                for (axis, s) in [(2, factors[2]), (3, factors[3])] {
                    for x in 0..<(shape[axis] * s) {
                        guard
                            let source = nearestSource(
                                x, scale: Double(s), input: shape[axis], transform: transform, rounding: rounding),
                            source == x / s
                        else {
                            throw ModelError.invalidModel(
                                "Resize '\(name)': coordinate_transformation_mode '\(transform)' with nearest_mode "
                                    + "'\(rounding)' does not repeat whole pixels; iop supports the modes that do")
                        }
                    }
                }
            }
            return [factors[2], factors[3]]
        }

        /// The input index ONNX Resize (opset 11 on) reads for output index `x` in nearest mode, or nil for
        /// a rule iop does not know.
        func nearestSource(_ x: Int, scale: Double, input: Int, transform: String, rounding: String) -> Int? {
            let out = Double(input) * scale, xd = Double(x)
            let original: Double
            switch transform {
            case "half_pixel": original = (xd + 0.5) / scale - 0.5
            case "pytorch_half_pixel": original = out > 1 ? (xd + 0.5) / scale - 0.5 : 0
            case "asymmetric": original = xd / scale
            case "tf_half_pixel_for_nn": original = (xd + 0.5) / scale
            case "align_corners": original = out > 1 ? xd * Double(input - 1) / (out - 1) : 0
            default: return nil
            }
            let r: Double
            switch rounding {
            case "round_prefer_floor":
                r = original - original.rounded(.down) == 0.5 ? original.rounded(.down) : original.rounded()
            case "round_prefer_ceil": r = original.rounded()
            case "floor": r = original.rounded(.down)
            case "ceil": r = original.rounded(.up)
            default: return nil
            }
            return min(max(Int(r), 0), input - 1)
        }

        func broadcastBias(_ c: Tensor, n: Int, node: String) throws -> [Float] {
            if c.floats.count == n && (c.dims.count <= 1 || c.dims.dropLast().allSatisfy { $0 == 1 }) {
                return c.floats
            }
            if c.floats.count == 1 { return [Float](repeating: c.floats[0], count: n) }
            throw ModelError.invalidModel("node '\(node)': bias of shape \(c.dims) does not broadcast to [1, \(n)]")
        }

        func resolvePads(
            node: String, autoPad: String, pads: [Int]?, input: [Int], kernel: [Int], strides: [Int],
            dilations: [Int], ceil: Bool
        ) throws -> [Int] {
            switch autoPad {
            case "NOTSET":
                let p = pads ?? [0, 0, 0, 0]
                guard p.count == 4, p.allSatisfy({ $0 >= 0 }) else {
                    throw ModelError.invalidModel("node '\(node)': pads \(p) must be 4 non-negative values")
                }
                return [p[0], p[1], p[2], p[3]]
            case "VALID":
                return [0, 0, 0, 0]
            case "SAME_UPPER", "SAME_LOWER":
                var r = [0, 0, 0, 0]
                for a in 0..<2 {
                    let out = (input[a] + strides[a] - 1) / strides[a]
                    let total = max(0, (out - 1) * strides[a] + (kernel[a] - 1) * dilations[a] + 1 - input[a])
                    let small = total / 2
                    r[a] = autoPad == "SAME_UPPER" ? small : total - small
                    r[a + 2] = total - r[a]
                }
                return r
            default:
                throw ModelError.invalidModel("node '\(node)': unknown auto_pad '\(autoPad)'")
            }
        }

        func finish(name: String) throws -> Network {
            guard let out = graph.output.first else { throw ModelError.invalidModel("the graph has no output") }
            guard !layers.isEmpty else { throw ModelError.invalidModel("the graph has no computing operators") }
            guard graph.output.count == 1, values[out.name]?.layer == layers.count - 1 else {
                throw ModelError.invalidModel(
                    "the graph output '\(out.name)' is not the result of its last operator (\(layers.last!.name))")
            }
            do { try LayerGraph(layers).validate(layers, inputCount: inputShape.reduce(1, *)) } catch {
                throw ModelError.invalidModel(error.message)
            }
            return Network(name: name, inputShape: inputShape, layers: layers)
        }
    }
}
