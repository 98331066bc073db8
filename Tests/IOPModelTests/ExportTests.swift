import Foundation
import IOPCore
import IOPModel
import TestSupport
import Testing

@Suite struct ExportTests {
    /// Export, re-import: same layers, bit-identical outputs.
    @Test(arguments: ["lenet5", "alexnet", "vgg11", "resnet18", "mobilenet_v2", "squeezenet1_1"])
    func exportRoundTrips(_ name: String) throws {
        let net = try Zoo.make(name, inputSize: name == "lenet5" ? nil : (name == "alexnet" ? 67 : 32))
        let back = try ONNXImporter.load(data: try ONNXExporter.serialize(net), name: name)
        #expect(back.inputShape == net.inputShape)
        #expect(back.layers.map(\.kind) == net.layers.map(\.kind))
        #expect(back.layers.map(\.inputs) == net.layers.map(\.inputs))
        var rng = SplitMix64(seed: 5)
        let x = (0..<net.inputCount).map { _ in Float(rng.nextUnit()) }
        #expect(try infer(back, x) == infer(net, x))
    }

    /// The pointwise functions (a PRelu's slopes among them), LRN, dilated and global max pools,
    /// Softmax along an axis, Pad, Resize and ConvTranspose export and re-import as they were.
    @Test(arguments: [
        "activations_net", "lrn_pools_net", "softmax_rows_opset13", "pad_resize_net", "pad_constant_opset9",
        "channel_shuffle_net", "convtranspose_decoder", "convtranspose_stride3_dilation2_outpad_opset11",
        "convtranspose_group2_same_upper_opset9", "convtranspose_depthwise_relu",
    ])
    func newOperatorsRoundTrip(_ name: String) throws {
        let net = try ONNXImporter.load(path: Fixtures.path(name + ".onnx"))
        let back = try ONNXImporter.load(data: try ONNXExporter.serialize(net), name: net.name)
        #expect(back.layers.map(\.kind) == net.layers.map(\.kind))
        #expect(back.layers.map(\.weights) == net.layers.map(\.weights))
        let x = try NPY.read(path: Fixtures.path(name + ".input.npy")).values
        #expect(try infer(back, x) == infer(net, x))
    }

    /// The independent check: ONNX Runtime runs the exported file and agrees with iop.
    /// The graphs (residual adds, concatenations, depthwise convs) at a small input, as the cluster tests run them.
    @Test(arguments: ["lenet5", "vgg11", "resnet18", "mobilenet_v2", "squeezenet1_1"])
    func onnxRuntimeAgreesWithIOP(_ name: String) throws {
        let net = try Zoo.make(name, inputSize: name == "lenet5" ? nil : 32)
        let model = temporaryPath("\(name).onnx"), input = temporaryPath("\(name).in.npy"),
            output = temporaryPath("\(name).ort.npy")
        try ONNXExporter.write(net, to: model)
        var rng = SplitMix64(seed: 8)
        let x = (0..<net.inputCount).map { _ in Float(rng.nextUnit() * 2 - 1) }
        try NPY.write(NPY.Array(shape: net.inputShape, values: x), path: input)
        let script = """
            import sys, numpy as np, onnxruntime as ort
            o = ort.SessionOptions(); o.intra_op_num_threads = 1
            s = ort.InferenceSession(sys.argv[1], o, providers=["CPUExecutionProvider"])
            np.save(sys.argv[3], s.run(None, {s.get_inputs()[0].name: np.load(sys.argv[2])})[0].astype(np.float32))
            """
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", script, model, input, output]
        try p.run()
        p.waitUntilExit()
        try #require(
            p.terminationStatus == 0, "python3 with onnxruntime failed (the test command installs it: scripts/test)")
        let ort = try NPY.read(path: output)
        #expect(ort.shape == net.outputShape)
        #expect(scaledError(try infer(net, x), ort.values) <= 1e-4)
    }
}
