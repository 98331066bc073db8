import Foundation
import IOPCore
import IOPModel
import TestSupport
import Testing

@Suite struct ZooTests {
    /// Parameter counts of the torchvision models (torchvision's documentation),
    /// and LeNet-5 counted by hand: 156 + 2416 + 48120 + 10164 + 850.
    /// `--conv auto` takes Winograd for a 3x3 stride-1 conv of 16 or more input channels whose output has 16 or
    /// more 4x4 tiles (ceil(h/4) x ceil(w/4)): 13x13 and 16x16 do (16 tiles), 12x12 (9) and 2x2 (1) do not, nor
    /// does a 3-channel first layer at 224x224.
    @Test func autoTakesWinogradOnlyWhereItPays() {
        func choice(_ channels: Int, _ size: Int) -> ConvAlgorithm {
            ConvChoice.auto.algorithm(
                for: ConvGeometry(
                    inChannels: channels, inHeight: size, inWidth: size, outChannels: 64, kernelH: 3, kernelW: 3,
                    padTop: 1, padLeft: 1, padBottom: 1, padRight: 1))
        }
        #expect(choice(64, 16) == .winograd && choice(64, 13) == .winograd)
        #expect(choice(64, 12) == .direct && choice(512, 2) == .direct && choice(3, 224) == .direct)
        #expect(
            ConvChoice.winograd.algorithm(
                for: ConvGeometry(
                    inChannels: 512, inHeight: 2, inWidth: 2, outChannels: 512, kernelH: 3, kernelW: 3,
                    padTop: 1, padLeft: 1, padBottom: 1, padRight: 1)) == .winograd)
    }

    @Test(arguments: [
        ("lenet5", 61_706), ("alexnet", 61_100_840), ("vgg11", 132_863_336),
        ("vgg13", 133_047_848), ("vgg16", 138_357_544), ("vgg19", 143_667_240), ("squeezenet1_1", 1_235_496),
        // Batch norms folded: a conv's bias (one per channel) replaces the norm's scale and shift (two), so
        // torchvision's count less one per normalised channel, counted by hand: ResNet-18 has 4,800
        // (64 + 4 x 64 + 5 x 128 + 5 x 256 + 5 x 512), MobileNetV2 17,056.
        ("resnet18", 11_689_512 - 4_800), ("mobilenet_v2", 3_504_872 - 17_056),
    ])
    func parameterCountsMatchTorchvision(name: String, parameters: Int) throws {
        let net = try Zoo.make(name, withWeights: false)
        #expect(net.parameterCount == parameters)
    }

    @Test func vgg16FlopsMatchTheKnownFigure() throws {
        // 15.47 GMACs for VGG16 at 224x224 (convs 15.35 G + FC 0.12 G); FLOPs = 2 x MACs, pools excluded.
        let net = try Zoo.make("vgg16", withWeights: false)
        let macs = net.layers.reduce(0) { t, l in
            if case .conv(let g, _) = l.kind { return t + g.flops / 2 }
            if case .linear(let g, _) = l.kind { return t + g.flops / 2 }
            return t
        }
        #expect(abs(Double(macs) / 1e9 - 15.47) < 0.01)
    }

    @Test func weightsAreSeededAndHeScaled() throws {
        let a = try Zoo.make("vgg11", inputSize: 32), b = try Zoo.make("vgg11", inputSize: 32)
        #expect(a.layers.map(\.weights) == b.layers.map(\.weights))
        let w = a.layers[0].weights
        let variance = w.reduce(0) { $0 + Double($1 * $1) } / Double(w.count)
        // He: variance 2 / fan_in with fan_in = 3 * 3 * 3.
        #expect(abs(variance - 2.0 / 27) < 0.2 * 2.0 / 27)
    }

    @Test func smallInputsResizeTheClassifier() throws {
        let net = try Zoo.make("vgg11", inputSize: 32, withWeights: false)
        #expect(net.outputShape == [1, 1000])
        if case .linear(let g, _) = net.layers.first(where: { $0.opName == "Linear" })!.kind {
            #expect(g.inFeatures == 512)
        }
        #expect(throws: ModelError.self) { try Zoo.make("alexnet", inputSize: 16) }
        #expect(throws: ModelError.self) { try Zoo.make("resnet50") }
    }

    /// The valve model's trained head (train.py's MLP: fc2's 4096 ReLU outputs -> hidden ReLU -> score) is
    /// the chain's last layers, and the engine computes it as a naive double-precision loop over those
    /// layers' weights ([out][in] row-major) does on the engine's own fc2 output.
    @Test func theValveHeadIsTheChainsLastLayersAndRunsAsANaiveMLP() throws {
        let net = try Zoo.make("valve", inputSize: 16)
        let names = net.layers.suffix(3).map(\.name)
        try #require(names == ["fc2", "hidden", "score"], "\(names)")
        let hidden = net.layers[net.layers.count - 2], score = net.layers[net.layers.count - 1]
        guard case .linear(let g, .relu) = hidden.kind, case .linear(let s, .none) = score.kind else {
            Issue.record("head kinds: \(hidden.kind), \(score.kind)")
            return
        }
        #expect(g.inFeatures == 4096 && s.inFeatures == g.outFeatures && s.outFeatures == 1)
        #expect(hidden.weights.count == 4096 * g.outFeatures && score.weights.count == g.outFeatures)
        #expect(hidden.weights.contains { $0 != 0 })  // trained, not empty

        let backbone = Network(
            name: "valve-backbone", inputShape: net.inputShape, layers: Array(net.layers.dropLast(2)))
        var rng = SplitMix64(seed: 5)
        let x = (0..<net.inputCount).map { _ in Float(rng.nextUnit() * 20 - 10) }  // log-mel-like range
        let features = try infer(backbone, x), out = try infer(net, x)
        var logit = Double(score.bias[0]), active = 0
        for j in 0..<g.outFeatures {
            var a = Double(hidden.bias[j])
            for i in 0..<4096 { a += Double(hidden.weights[j * 4096 + i]) * Double(features[i]) }
            logit += Double(score.weights[j]) * max(a, 0)
            active += a > 0 ? 1 : 0
        }
        #expect(active > 0 && active < g.outFeatures, "\(active) hidden units active: the ReLU goes untested")
        #expect(out.count == 1 && abs(Double(out[0]) - logit) <= 1e-4 * max(1, abs(logit)), "\(out) vs \(logit)")
    }

    @Test func smallVGGRunsAndIsDeterministic() throws {
        let net = try Zoo.make("vgg11", inputSize: 32)
        var rng = SplitMix64(seed: 3)
        let x = (0..<net.inputCount).map { _ in Float(rng.nextUnit()) }
        let a = try infer(net, x, threads: 1), b = try infer(net, x, threads: 2)
        #expect(a.allSatisfy { $0.isFinite })
        #expect(scaledError(b, a) <= 1e-5)
    }
}
