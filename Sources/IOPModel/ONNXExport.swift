import Foundation
import IOPCore
import SwiftProtobuf

/// Writes a `Network` as a standard ONNX model (opset 14, the first with HardSwish) so other
/// engines (ONNX Runtime, for instance) can run exactly the same network.
public enum ONNXExporter {
    public static let opset: Int64 = 14

    public static func serialize(_ net: Network) throws -> Data {
        var graph = Onnx_GraphProto()
        graph.name = net.name
        var current = "input"
        graph.input = [valueInfo("input", net.inputShape)]
        var shape = net.inputShape
        var counter = 0
        func fresh(_ base: String) -> String { counter += 1; return "\(base)_\(counter)" }
        func node(_ op: String, _ name: String, _ inputs: [String], _ attrs: [Onnx_AttributeProto] = []) -> String {
            var n = Onnx_NodeProto()
            n.opType = op; n.name = name; n.input = inputs
            let out = fresh(name + "_out")
            n.output = [out]; n.attribute = attrs
            graph.node.append(n)
            return out
        }
        func constant(_ name: String, _ dims: [Int], _ values: [Float]) -> String {
            var t = Onnx_TensorProto()
            t.name = name; t.dims = dims.map { Int64($0) }; t.dataType = 1
            t.rawData = values.withUnsafeBytes { Data($0) }
            graph.initializer.append(t)
            return name
        }
        func int64s(_ name: String, _ values: [Int]) -> String {
            var t = Onnx_TensorProto()
            t.name = name; t.dims = [Int64(values.count)]; t.dataType = 7
            t.int64Data = values.map { Int64($0) }
            graph.initializer.append(t)
            return name
        }
        func activation(_ act: Activation, _ name: String, _ input: String) -> String {
            if act == .none { return input }
            if act == .relu { return node("Relu", name + "_relu", [input]) }
            let lo = constant(name + "_min", [], [act.low]), hi = constant(name + "_max", [], [act.high])
            return node("Clip", name + "_clip", [input, lo, hi])
        }
        func flattenIfNeeded(_ name: String) {
            if shape.count == 4 {
                current = node("Flatten", name + "_flatten", [current], [ints("axis", [1]).withSingleInt()])
                shape = [1, shape.reduce(1, *)]
            }
        }

        // Each layer's output tensor, by layer index; a layer reads its producers' (`Layer.inputs`).
        var tensors: [String] = []
        let producers = LayerGraph(net.layers).producers
        let shapes = net.layerOutputShapes
        for (index, layer) in net.layers.enumerated() {
            let name = layer.name
            let inputs = producers[index].map { $0 < 0 ? "input" : tensors[$0] }
            current = inputs[0]
            shape = producers[index][0] < 0 ? net.inputShape : shapes[producers[index][0]]
            defer { tensors.append(current) }
            switch layer.kind {
            case .conv(let g, let act):
                let w = constant(
                    name + ".weight", [g.outChannels, g.inGroupChannels, g.kernelH, g.kernelW], layer.weights)
                var inputs = [current, w]
                if !layer.bias.isEmpty { inputs.append(constant(name + ".bias", [g.outChannels], layer.bias)) }
                current = node(
                    "Conv", name, inputs,
                    [
                        ints("kernel_shape", [g.kernelH, g.kernelW]), ints("strides", [g.strideH, g.strideW]),
                        ints("dilations", [g.dilationH, g.dilationW]),
                        ints("pads", [g.padTop, g.padLeft, g.padBottom, g.padRight]),
                        ints("group", [g.groups]).withSingleInt(),
                    ])
                current = activation(act, name, current)
                shape = [1, g.outChannels, g.outHeight, g.outWidth]
            case .convTranspose(let g, let act):
                let w = constant(
                    name + ".weight", [g.inChannels, g.outGroupChannels, g.kernelH, g.kernelW],
                    ONNXConvTranspose.reorder(layer.weights, g, toONNX: true))
                var inputs = [current, w]
                if !layer.bias.isEmpty { inputs.append(constant(name + ".bias", [g.outChannels], layer.bias)) }
                current = node(
                    "ConvTranspose", name, inputs,
                    [
                        ints("kernel_shape", [g.kernelH, g.kernelW]), ints("strides", [g.strideH, g.strideW]),
                        ints("dilations", [g.dilationH, g.dilationW]),
                        ints("pads", [g.padTop, g.padLeft, g.padBottom, g.padRight]),
                        ints("output_padding", [g.outputPaddingH, g.outputPaddingW]),
                        ints("group", [g.groups]).withSingleInt(),
                    ])
                current = activation(act, name, current)
                shape = [1, g.outChannels, g.outHeight, g.outWidth]
            case .linear(let g, let act):
                flattenIfNeeded(name)
                let w = constant(name + ".weight", [g.outFeatures, g.inFeatures], layer.weights)
                var inputs = [current, w]
                if !layer.bias.isEmpty { inputs.append(constant(name + ".bias", [g.outFeatures], layer.bias)) }
                current = node("Gemm", name, inputs, [ints("transB", [1]).withSingleInt()])
                current = activation(act, name, current)
                shape = [1, g.outFeatures]
            case .maxPool(let g), .averagePool(let g):
                let isMax: Bool
                if case .maxPool = layer.kind { isMax = true } else { isMax = false }
                let floorH = PoolGeometry(
                    channels: g.channels, inHeight: g.inHeight, inWidth: g.inWidth, kernelH: g.kernelH,
                    kernelW: g.kernelW, strideH: g.strideH, strideW: g.strideW, padTop: g.padTop,
                    padLeft: g.padLeft, padBottom: g.padBottom, padRight: g.padRight, dilationH: g.dilationH,
                    dilationW: g.dilationW)
                let ceil = floorH.outHeight != g.outHeight || floorH.outWidth != g.outWidth
                var attrs = [
                    ints("kernel_shape", [g.kernelH, g.kernelW]), ints("strides", [g.strideH, g.strideW]),
                    ints("pads", [g.padTop, g.padLeft, g.padBottom, g.padRight]),
                    ints("ceil_mode", [ceil ? 1 : 0]).withSingleInt(),
                ]
                if !isMax { attrs.append(ints("count_include_pad", [g.countIncludePad ? 1 : 0]).withSingleInt()) }
                if g.isDilated { attrs.append(ints("dilations", [g.dilationH, g.dilationW])) }
                current = node(isMax ? "MaxPool" : "AveragePool", name, [current], attrs)
                shape = [1, g.channels, g.outHeight, g.outWidth]
            case .pad(let g):
                let modes: [PadMode: String] = [.constant: "constant", .reflect: "reflect", .edge: "edge"]
                var mode = Onnx_AttributeProto()
                mode.name = "mode"; mode.type = .string; mode.s = Data(modes[g.mode]!.utf8)
                let pads = int64s(name + ".pads", [0, 0, g.top, g.left, 0, 0, g.bottom, g.right])
                current = node("Pad", name, [current, pads, constant(name + ".value", [], [g.value])], [mode])
                shape = [1, g.channels, g.outHeight, g.outWidth]
            case .channelShuffle(let g, let c, _):
                let (h, w) = (shape[2], shape[3])
                let split = int64s(name + ".split", [1, g, c / g, h, w])
                current = node("Reshape", name + "_split", [current, split])
                current = node("Transpose", name, [current], [ints("perm", [0, 2, 1, 3, 4])])
                current = node("Reshape", name + "_merge", [current, int64s(name + ".merge", [1, c, h, w])])
            case .upsample(let c, let h, let w, let sh, let sw):
                func text(_ key: String, _ value: String) -> Onnx_AttributeProto {
                    var a = Onnx_AttributeProto()
                    a.name = key; a.type = .string; a.s = Data(value.utf8)
                    return a
                }
                // Asymmetric coordinates rounded down: output x reads input x / factor.
                let scales = constant(name + ".scales", [4], [1, 1, Float(sh), Float(sw)])
                current = node(
                    "Resize", name, [current, "", scales],
                    [
                        text("mode", "nearest"), text("coordinate_transformation_mode", "asymmetric"),
                        text("nearest_mode", "floor"),
                    ])
                shape = [1, c, h * sh, w * sw]
            case .globalAveragePool(let c, _), .globalMaxPool(let c, _):
                current = node(layer.opName, name, [current])
                shape = [1, c, 1, 1]
            case .lrn(_, _, let size, let alpha, let beta, let bias):
                current = node(
                    "LRN", name, [current],
                    [
                        float("alpha", alpha), float("beta", beta), float("bias", bias),
                        ints("size", [size]).withSingleInt(),
                    ])
            case .clamp(_, let act):
                current = activation(act, name, current)
            case .addBias:
                throw ModelError.invalidModel(
                    "layer '\(name)' (AddBias) is internal to partitioned plans and has no ONNX form here")
            case .softmax(_, 1, 1):
                flattenIfNeeded(name)
                current = node("Softmax", name, [current], [ints("axis", [-1]).withSingleInt()])
            case .softmax(let n, let outer, let inner):
                // One axis of the tensor: the one with `outer` values before it and `inner` after.
                guard
                    let axis = shape.indices.first(where: {
                        shape[..<$0].reduce(1, *) == outer && shape[$0] == n && shape[($0 + 1)...].reduce(1, *) == inner
                    })
                else {
                    throw ModelError.invalidModel(
                        "layer '\(name)' (Softmax over \(n) values of \(shape)) spans several axes; opset \(opset) "
                            + "normalizes along one")
                }
                current = node("Softmax", name, [current], [ints("axis", [axis]).withSingleInt()])
            case .add(_, let act):
                current = activation(act, name, node("Add", name, inputs))
            case .concat:
                current = node("Concat", name, inputs, [ints("axis", [1]).withSingleInt()])
                shape = shapes[index]
            case .scale(let c, _, let act):
                // Per-channel constants broadcast over the plane: [C, 1, 1] for an image, [C] for a vector.
                let dims = shape.count == 4 ? [c, 1, 1] : [c]
                let scaled = node("Mul", name + "_mul", [current, constant(name + ".weight", dims, layer.weights)])
                let shifted = node("Add", name, [scaled, constant(name + ".bias", dims, layer.bias)])
                current = activation(act, name, shifted)
            case .pointwise(let c, _, let f):
                switch f {
                case .leakyRelu(let alpha): current = node("LeakyRelu", name, [current], [float("alpha", alpha)])
                case .prelu:
                    // One slope per channel, broadcast over the plane as the Mul of a scale layer is.
                    let dims = shape.count == 4 ? [c, 1, 1] : [c]
                    current = node("PRelu", name, [current, constant(name + ".slope", dims, layer.weights)])
                case .hardSigmoid(let alpha, let beta):
                    current = node("HardSigmoid", name, [current], [float("alpha", alpha), float("beta", beta)])
                case .sigmoid, .hardSwish, .tanh: current = node(layer.opName, name, [current])
                }
            }
        }
        // Name the final tensor "output".
        if var last = graph.node.popLast() { last.output = ["output"]; graph.node.append(last) }
        graph.output = [valueInfo("output", shape)]

        var model = Onnx_ModelProto()
        model.irVersion = 8
        model.producerName = "iop"
        model.producerVersion = "0.1"
        var op = Onnx_OperatorSetIdProto()
        op.domain = ""
        op.version = opset
        model.opsetImport = [op]
        model.graph = graph
        return try model.serializedData()
    }

    public static func write(_ net: Network, to path: String) throws {
        try writeAtomically(try serialize(net), to: path)
    }

    static func valueInfo(_ name: String, _ shape: [Int]) -> Onnx_ValueInfoProto {
        var v = Onnx_ValueInfoProto()
        v.name = name
        var t = Onnx_TypeProto.Tensor()
        t.elemType = 1
        var s = Onnx_TensorShapeProto()
        s.dim = shape.map { d in
            var dim = Onnx_TensorShapeProto.Dimension(); dim.dimValue = Int64(d); return dim
        }
        t.shape = s
        v.type.tensorType = t
        return v
    }

    static func float(_ name: String, _ value: Float) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto()
        a.name = name; a.type = .float; a.f = value
        return a
    }

    static func ints(_ name: String, _ values: [Int]) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto()
        a.name = name; a.type = .ints; a.ints = values.map { Int64($0) }
        return a
    }
}

extension Onnx_AttributeProto {
    /// An INTS attribute turned into a single INT one.
    fileprivate func withSingleInt() -> Onnx_AttributeProto {
        var a = self
        a.type = .int; a.i = ints.first ?? 0; a.ints = []
        return a
    }
}
