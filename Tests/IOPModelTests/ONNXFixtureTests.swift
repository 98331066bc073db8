import Foundation
import IOPCore
import IOPModel
import TestSupport
import Testing

/// iop against ONNX Runtime on the committed fixtures (make_fixtures.py).
@Suite struct ONNXFixtureTests {
    /// Documented tolerance: max |iop - ORT| <= 1e-4 x max(1, max |ORT|).
    static let tolerance: Float = 1e-4

    @Test func fixturesArePresent() {
        // Guards against the resource folder going missing and every case silently vanishing.
        #expect(Fixtures.cases.count >= 92, "found \(Fixtures.cases.count) fixture cases")
    }

    @Test(arguments: Fixtures.cases)
    func matchesONNXRuntime(_ name: String) throws {
        let net = try ONNXImporter.load(path: Fixtures.path(name + ".onnx"))
        let x = try NPY.read(path: Fixtures.path(name + ".input.npy"))
        let y = try NPY.read(path: Fixtures.path(name + ".output.npy"))
        #expect(x.shape == net.inputShape)
        #expect(y.values.count == net.outputCount)
        for threads in [1, 3] {
            let got = try infer(net, x.values, threads: threads)
            let err = scaledError(got, y.values)
            #expect(err <= Self.tolerance, "\(name) with \(threads) threads: scaled error \(err)")
        }
    }

    /// The same fixtures with every 3x3 stride-1 conv on Winograd F(4x4, 3x3), within the same tolerance.
    @Test(arguments: Fixtures.cases)
    func winogradMatchesONNXRuntime(_ name: String) throws {
        let net = try ONNXImporter.load(path: Fixtures.path(name + ".onnx")).withConvs(.winograd)
        let x = try NPY.read(path: Fixtures.path(name + ".input.npy"))
        let y = try NPY.read(path: Fixtures.path(name + ".output.npy"))
        let err = scaledError(try infer(net, x.values, threads: 2), y.values)
        let convs = net.layers.filter { if case .conv(let g, _) = $0.kind { g.usesWinograd } else { false } }.count
        print("winograd fixture \(name): \(convs) Winograd convs, scaled error \(err)")
        #expect(err <= Self.tolerance, "\(name) on Winograd: scaled error \(err)")
    }

    struct ErrorCase: Decodable, Sendable, CustomStringConvertible {
        let name: String
        let message: String
        var description: String { name }
    }

    static var errorCases: [ErrorCase] {
        let data = try! Data(contentsOf: Fixtures.directory.appendingPathComponent("errors.json"))
        return try! JSONDecoder().decode([ErrorCase].self, from: data)
    }

    @Test(arguments: errorCases)
    func refusesWithAClearMessage(_ c: ErrorCase) {
        do {
            _ = try ONNXImporter.load(path: Fixtures.path(c.name + ".onnx"))
            Issue.record("\(c.name) was accepted")
        } catch let e as ModelError {
            #expect(e.description.contains(c.message), "message was: \(e.description)")
            #expect(!e.description.contains("\n"))
        } catch {
            Issue.record("unexpected error type: \(error)")
        }
    }

    @Test func unsupportedOperatorNamesTypeNodeAndSupportedList() throws {
        do {
            _ = try ONNXImporter.load(path: Fixtures.path("error_unsupported_erf.onnx"))
            Issue.record("accepted")
        } catch let e as ModelError {
            #expect(e.description.contains("'Erf'"))
            #expect(e.description.contains("node 'erf_"))
            #expect(e.description.contains("supported: Conv, ConvTranspose (2-D), Gemm"))
        }
    }

    /// Truncated and corrupted files must fail with an error, never a trap.
    @Test func truncatedAndCorruptedModelsFailCleanly() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("mini_lenet.onnx")))
        var rejected = 0, tried = 0
        for cut in stride(from: 0, to: data.count - 1, by: max(1, data.count / 400)) {
            tried += 1
            do { _ = try ONNXImporter.load(data: data.prefix(cut), name: "cut") } catch { rejected += 1 }
        }
        // Nearly every cut lands inside a field; protobuf may accept a cut that
        // falls exactly between top-level fields, but then the graph is incomplete.
        #expect(rejected == tried, "\(tried - rejected) truncated files were accepted")
        var rng = SplitMix64(seed: 9)
        for _ in 0..<300 {
            var bytes = [UInt8](data)
            for _ in 0..<4 { bytes[Int(rng.next() % UInt64(bytes.count))] ^= UInt8(1 << (rng.next() % 8)) }
            // Either a clean error or a model that loads; both are fine, a crash is not.
            if let net = try? ONNXImporter.load(data: Data(bytes), name: "flipped") {
                #expect(net.layers.count > 0)
            }
        }
    }

    @Test func missingFileNamesThePath() {
        #expect(throws: ModelError.io(path: "/nonexistent/model.onnx", reason: "cannot read file")) {
            try ONNXImporter.load(path: "/nonexistent/model.onnx")
        }
    }

    @Test func batchNormIsFoldedAndActivationsFused() throws {
        let net = try ONNXImporter.load(path: Fixtures.path("conv_bn_relu.onnx"))
        #expect(net.layers.count == 1)
        if case .conv(_, let act) = net.layers[0].kind {
            #expect(act == .relu)
        } else {
            Issue.record("expected a conv")
        }
        let dropout = try ONNXImporter.load(path: Fixtures.path("conv_dropout_identity_relu.onnx"))
        #expect(dropout.layers.count == 1)
    }

    /// Shape arithmetic folds away: the conv, its fused Relu and the linear layer are all that is left.
    @Test func shapeArithmeticFoldsAtLoad() throws {
        let net = try ONNXImporter.load(path: Fixtures.path("flatten_by_shape_opset11.onnx"))
        #expect(net.layers.map(\.opName) == ["Conv", "Linear"])
        if case .conv(_, let act) = net.layers[0].kind { #expect(act == .relu) }
    }

    /// Reshape-Transpose-Reshape is one channel shuffle layer between the convs.
    @Test func channelShuffleIsOneLayer() throws {
        let net = try ONNXImporter.load(path: Fixtures.path("channel_shuffle_net.onnx"))
        #expect(net.layers.map(\.opName) == ["Conv", "ChannelShuffle", "Conv", "Conv", "GlobalAveragePool"])
        #expect(net.layers[1].kind == .channelShuffle(groups: 3, channels: 12, plane: 49))
    }

    /// A PRelu with one slope is a LeakyRelu; with a slope per channel it keeps them as its weights.
    @Test func preluSlopesBecomeWeightsOrALeakyRelu() throws {
        let scalar = try ONNXImporter.load(path: Fixtures.path("prelu_scalar_slope_opset16.onnx"))
        #expect(scalar.layers.map(\.kind) == [.pointwise(channels: 4, plane: 25, .leakyRelu(alpha: 0.25))])
        let perChannel = try ONNXImporter.load(path: Fixtures.path("conv_prelu_per_channel.onnx"))
        #expect(perChannel.layers.count == 2)
        #expect(perChannel.layers[1].kind == .pointwise(channels: 6, plane: 64, .prelu))
        #expect(perChannel.layers[1].weights.count == 6)
        let features = try ONNXImporter.load(path: Fixtures.path("gemm_prelu_features.onnx"))
        #expect(features.layers[1].kind == .pointwise(channels: 9, plane: 1, .prelu))
    }
}
