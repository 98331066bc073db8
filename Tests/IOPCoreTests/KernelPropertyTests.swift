import Foundation
import IOPCore
import PropertyBased
import TestSupport
import Testing

/// Kernels against the naive references on random geometries.
@Suite struct KernelPropertyTests {
    static let tolerance: Float = 1e-5

    @Test func convMatchesNaiveOnRandomGeometries() async throws {
        await propertyCheck(count: 300, input: Gen.uint64()) { seed in
            var r = TestRNG(state: seed)
            let groups = [1, 1, 1, 2, 3][r.int(0...4)]
            let depthwise = r.int(0...4) == 0
            let icg = depthwise ? 1 : r.int(1...7), ocg = depthwise ? r.int(1...2) : r.int(1...40)
            let g = ConvGeometry(
                inChannels: icg * (depthwise ? max(groups, 2) : groups), inHeight: r.int(1...13),
                inWidth: r.int(1...13),
                outChannels: ocg * (depthwise ? max(groups, 2) : groups), kernelH: r.int(1...4), kernelW: r.int(1...4),
                strideH: r.int(1...3), strideW: r.int(1...3), dilationH: r.int(1...2), dilationW: r.int(1...2),
                padTop: r.int(0...2), padLeft: r.int(0...2), padBottom: r.int(0...2), padRight: r.int(0...2),
                groups: depthwise ? max(groups, 2) : groups)
            guard g.outHeight > 0, g.outWidth > 0 else { return }
            try expectConvMatchesReference(g, &r, tolerance: Self.tolerance, label: "conv")
        }
    }

    /// An image model's first layer and its next one: large kernels (up to AlexNet's 11x11) over 1 to 4 input
    /// channels at strides up to 4 (the blocked kernel's flat reduction over few channels and many taps), and
    /// 5x5 stride-1 convs over more channels; outputs from under one tile to several rows of tiles, partial
    /// channel blocks, pads and dilations, one and three threads.
    @Test func largeKernelsAndStridesMatchNaive() async throws {
        await propertyCheck(count: 120, input: Gen.uint64()) { seed in
            var r = TestRNG(state: seed)
            let first = r.int(0...1) == 0
            let k = first ? r.int(5...11) : 5, stride = first ? r.int(1...4) : 1
            let pad = r.int(0...(k / 2))
            let size = r.int(k...(first ? 40 : 16))
            let g = ConvGeometry(
                inChannels: first ? r.int(1...4) : r.int(5...20), inHeight: size, inWidth: r.int(k...(size + 8)),
                outChannels: r.int(1...40), kernelH: k, kernelW: first ? k : r.int(1...5),
                strideH: stride, strideW: first ? r.int(1...4) : 1, dilationH: first ? 1 : r.int(1...2),
                padTop: pad, padLeft: r.int(0...pad), padBottom: pad, padRight: r.int(0...pad))
            guard g.outHeight > 0, g.outWidth > 0 else { return }
            try expectConvMatchesReference(g, &r, tolerance: Self.tolerance, label: "large kernel")
        }
    }

    /// Output channels past whole channel blocks (16 to 64 a block, by target), so tiles store their full blocks
    /// (transposed on AVX-512) beside a partial last one; output planes under a tile, of one tile and of many,
    /// 1x1 convs among them.
    @Test func wholeChannelBlocksMatchNaive() async throws {
        await propertyCheck(count: 60, input: Gen.uint64()) { seed in
            var r = TestRNG(state: seed)
            let k = r.int(1...3), size = r.int(k...12), stride = r.int(1...2)
            let g = ConvGeometry(
                inChannels: r.int(1...20), inHeight: size, inWidth: r.int(k...12),
                outChannels: [64, 128, r.int(60...140)][r.int(0...2)], kernelH: k, kernelW: k,
                strideH: stride, strideW: stride, padTop: r.int(0...1), padLeft: r.int(0...1))
            guard g.outHeight > 0, g.outWidth > 0 else { return }
            try expectConvMatchesReference(g, &r, tolerance: Self.tolerance, label: "whole blocks")
        }
    }

    /// Wide stride-1 convs with a long reduction and few output channels: the row kernel where the blocked
    /// kernel's channel block would stay mostly empty (8 channels fill half of it or less on every host target:
    /// 16-channel blocks on AVX2 and AArch64, 64 on AVX-512).
    @Test func rowKernelOverLongReductionsMatchesNaive() async throws {
        let n = KVec.scalarCount
        let eight = ConvGeometry(
            inChannels: 40, inHeight: 2, inWidth: 4 * n, outChannels: 8, kernelH: 1, kernelW: 1)
        #expect(eight.usesRowKernel)
        var r0 = TestRNG(state: 5)
        try expectConvMatchesReference(eight, &r0, tolerance: Self.tolerance, label: "8 channels, 1x1")
        await propertyCheck(count: 40, input: Gen.uint64()) { seed in
            var r = TestRNG(state: seed)
            let k = [1, 3][r.int(0...1)], pad = k / 2
            let g = ConvGeometry(
                inChannels: k == 1 ? r.int(33...48) : r.int(4...24), inHeight: r.int(1...4),
                inWidth: r.int((2 * n)...(5 * n)), outChannels: r.int(1...40), kernelH: k, kernelW: k,
                padTop: pad, padLeft: pad, padBottom: pad, padRight: pad)
            try expectConvMatchesReference(g, &r, tolerance: Self.tolerance, label: "long reduction")
        }
    }

    @Test func alexNetFirstLayerMatchesNaive() throws {
        var r = TestRNG(state: 11)
        let g = ConvGeometry(
            inChannels: 3, inHeight: 63, inWidth: 63, outChannels: 20, kernelH: 11, kernelW: 11, strideH: 4,
            strideW: 4, padTop: 2, padLeft: 2, padBottom: 2, padRight: 2)
        #expect(!g.usesRowKernel && g.outWidth == 15)
        try expectConvMatchesReference(g, &r, tolerance: Self.tolerance, label: "alexnet features.0")
    }

    /// Depthwise 3x3 convs, stride 1 across (the kernel's two-vector path for rows of at least two vectors,
    /// one vector, a narrow vector and single outputs for the rest) and 2 (four outputs at a time), on
    /// planes from 1 to 40 wide: random rows end at every remainder.
    @Test func depthwise3x3MatchesNaive() async throws {
        await propertyCheck(count: 200, input: Gen.uint64()) { seed in
            var r = TestRNG(state: seed)
            let channels = r.int(2...6), multiplier = r.int(1...2), pad = r.int(0...2)
            let g = ConvGeometry(
                inChannels: channels, inHeight: r.int(1...12), inWidth: r.int(1...80),
                outChannels: channels * multiplier,
                kernelH: 3, kernelW: 3, strideH: r.int(1...2), strideW: r.int(1...2), padTop: pad, padLeft: pad,
                padBottom: pad, padRight: pad, groups: channels)
            guard g.outHeight > 0, g.outWidth > 0 else { return }
            try expectConvMatchesReference(g, &r, tolerance: Self.tolerance, label: "depthwise 3x3")
        }
    }

    /// Wide, short-reduction convs: the row kernel's territory (overlapping last chunk, partial channel blocks).
    @Test func rowKernelMatchesNaive() async throws {
        await propertyCheck(count: 150, input: Gen.uint64()) { seed in
            var r = TestRNG(state: seed)
            let groups = r.int(1...2), k = r.int(1...3), pad = r.int(0...2)
            let g = ConvGeometry(
                inChannels: groups * r.int(1...3), inHeight: r.int(1...5), inWidth: r.int(32...75),
                outChannels: groups * r.int(1...20), kernelH: k, kernelW: k, strideH: r.int(1...2),
                dilationH: r.int(1...2), dilationW: r.int(1...2),
                padTop: pad, padLeft: r.int(0...2), padBottom: pad, padRight: r.int(0...2), groups: groups)
            guard g.outHeight > 0, g.usesRowKernel else { return }
            let x = r.floats(g.inputCount), w = r.floats(g.weightCount), b = r.floats(g.outChannels)
            let layer = Layer(name: "conv", kind: .conv(g, .relu), weights: w, bias: b)
            let expected = referenceConv(g, input: x, weights: w, bias: b, low: 0)
            for threads in [1, 2] {
                let err = scaledError(try runEngine([layer], input: x, threads: threads), expected)
                #expect(err <= Self.tolerance, "conv \(g) threads \(threads): error \(err)")
            }
        }
    }

    @Test func vggFirstLayerUsesTheRowKernel() {
        let g = ConvGeometry(
            inChannels: 3, inHeight: 224, inWidth: 224, outChannels: 64, kernelH: 3, kernelW: 3,
            padTop: 1, padLeft: 1, padBottom: 1, padRight: 1)
        #expect(g.usesRowKernel)
    }

    @Test func linearMatchesNaive() async throws {
        await propertyCheck(count: 100, input: Gen.uint64()) { seed in
            var r = TestRNG(state: seed)
            let k = r.int(1...300), n = r.int(1...100)
            let x = r.floats(k), w = r.floats(k * n), b = r.int(0...1) == 0 ? [] : r.floats(n)
            let layer = Layer(
                name: "fc", kind: .linear(LinearGeometry(inFeatures: k, outFeatures: n), .none), weights: w, bias: b)
            let got = try runEngine([layer], input: x, threads: r.int(1...3))
            #expect(
                scaledError(got, referenceLinear(input: x, weights: w, bias: b, outFeatures: n)) <= Self.tolerance,
                "linear \(k)x\(n)")
        }
    }

    /// How a board loads its parameters: into an arena laid out once, whole
    /// output channels a message at a time. The reservation covers every
    /// target's packing, and channel runs packed one after another give the
    /// naive reference's output.
    @Test func weightsLoadedChannelRunsAtATimeMatchNaive() async throws {
        await propertyCheck(count: 200, input: Gen.uint64()) { seed in
            var r = TestRNG(state: seed)
            let kind: LayerKind, x: [Float], w: [Float], b: [Float], expected: [Float]
            if r.int(0...2) == 0 {
                let k = r.int(1...200), n = r.int(1...150)
                x = r.floats(k); w = r.floats(k * n); b = r.int(0...1) == 0 ? [] : r.floats(n)
                kind = .linear(LinearGeometry(inFeatures: k, outFeatures: n), .none)
                expected = referenceLinear(input: x, weights: w, bias: b, outFeatures: n)
                #expect(kind.reservedWeightFloats >= LinearGeometry(inFeatures: k, outFeatures: n).packedWeightCount)
            } else {
                let depthwise = r.int(0...4) == 0, groups = depthwise ? r.int(2...4) : [1, 1, 2][r.int(0...2)]
                let icg = depthwise ? 1 : r.int(1...6), ocg = depthwise ? 1 : r.int(1...90)
                // Wide inputs reach the row kernel, narrow ones the blocked kernel.
                let g = ConvGeometry(
                    inChannels: icg * groups, inHeight: r.int(1...8),
                    inWidth: r.int(0...1) == 0 ? r.int(1...12) : r.int(32...70),
                    outChannels: ocg * groups, kernelH: r.int(1...3), kernelW: r.int(1...3),
                    padTop: r.int(0...1), padLeft: r.int(0...1), padBottom: r.int(0...1), padRight: r.int(0...1),
                    groups: groups)
                guard g.outHeight > 0, g.outWidth > 0 else { return }
                x = r.floats(g.inputCount); w = r.floats(g.weightCount);
                b = r.int(0...1) == 0 ? [] : r.floats(g.outChannels)
                kind = .conv(g, .none)
                expected = referenceConv(g, input: x, weights: w, bias: b, low: -.infinity)
                #expect(
                    kind.reservedWeightFloats >= g.packedWeightCount && kind.reservedBiasFloats >= g.packedBiasCount,
                    "\(g)")
            }
            var layout = ArenaLayout()
            let placed = layout.chain([kind])
            let (ops, floats) = layout.finish()
            #expect(ops.allSatisfy { $0.fits(arenaFloats: floats) })
            let engine = try Engine(arenaFloats: floats, threads: r.int(1...2))
            // Channel runs in order, of random lengths, as weight-shard messages bring them.
            let channels = kind.parameterChannels, per = kind.weightsPerChannel
            var first = 0
            while first < channels {
                let count = min(channels - first, r.int(1...max(1, channels / 2)))
                w.withUnsafeBufferPointer { wp in
                    b.withUnsafeBufferPointer { bp in
                        engine.load(
                            ops[0], channels: first..<(first + count), weights: wp.baseAddress! + first * per,
                            bias: b.isEmpty ? nil : bp.baseAddress! + first)
                    }
                }
                first += count
            }
            engine.floats(at: placed.input).update(from: x, count: x.count)
            engine.run(ops[0])
            let got = Array(UnsafeBufferPointer(start: engine.floats(at: placed.output), count: expected.count))
            #expect(scaledError(got, expected) <= Self.tolerance, "\(kind)")
        }
    }

    @Test func poolsMatchNaive() async throws {
        await propertyCheck(count: 300, input: Gen.uint64()) { seed in
            var r = TestRNG(state: seed)
            // One case in four is the 2x2 / stride 2 / no pad pool and one in four the unpadded 3x3 (AlexNet's, at
            // stride 2): each has its own path.
            let path = r.int(0...3), common = path == 0, threes = path == 1
            let kh = common ? 2 : threes ? 3 : r.int(1...4), kw = common ? 2 : threes ? 3 : r.int(1...4)
            let pad = { (k: Int) in common || threes ? 0 : r.int(0...(k - 1)) }
            let stride = { common ? 2 : threes ? r.int(1...2) : r.int(1...3) }
            let g = PoolGeometry(
                channels: r.int(1...5), inHeight: r.int(1...12), inWidth: r.int(1...40), kernelH: kh, kernelW: kw,
                strideH: stride(), strideW: stride(), padTop: pad(kh), padLeft: pad(kw),
                padBottom: pad(kh), padRight: pad(kw), ceilMode: r.int(0...1) == 1,
                countIncludePad: r.int(0...1) == 1)
            guard (try? g.validate()) != nil else { return }
            let x = r.floats(g.inputCount)
            for isMax in [true, false] {
                let got = try runEngine(
                    [Layer(name: "pool", kind: isMax ? .maxPool(g) : .averagePool(g))], input: x, threads: 2)
                #expect(
                    scaledError(got, referencePool(g, input: x, isMax: isMax)) <= Self.tolerance,
                    "pool \(g) max \(isMax)")
            }
        }
    }

    @Test func softmaxMatchesDoublePrecision() throws {
        var r = TestRNG(state: 7)
        let x = r.floats(1000).map { $0 * 30 }
        let got = try runEngine([Layer(name: "sm", kind: .softmax(count: x.count))], input: x, threads: 1)
        let m = x.max()!
        let e = x.map { Foundation_exp(Double($0 - m)) }
        let s = e.reduce(0, +)
        for i in 0..<x.count { #expect(abs(Double(got[i]) - e[i] / s) <= 1e-6 * max(1, e[i] / s * 10)) }
    }

    @Test func globalAveragePoolAndClamp() throws {
        var r = TestRNG(state: 3)
        let x = r.floats(5 * 7)
        let got = try runEngine(
            [
                Layer(name: "gap", kind: .globalAveragePool(channels: 5, plane: 7)),
                Layer(name: "clip", kind: .clamp(count: 5, Activation(low: -0.05, high: 0.05))),
            ], input: x, threads: 2)
        for c in 0..<5 {
            let mean = x[(c * 7)..<(c * 7 + 7)].reduce(0, +) / 7
            #expect(abs(got[c] - min(max(mean, -0.05), 0.05)) < 1e-6)
        }
    }

    @Test func inconsistentChainIsRefused() {
        let g = ConvGeometry(inChannels: 3, inHeight: 4, inWidth: 4, outChannels: 2, kernelH: 3, kernelW: 3)
        let conv = Layer(name: "c", kind: .conv(g, .none), weights: [Float](repeating: 0, count: g.weightCount))
        let fc = Layer(
            name: "fc", kind: .linear(LinearGeometry(inFeatures: 9, outFeatures: 2), .none),
            weights: [Float](repeating: 0, count: 18))
        #expect(throws: CoreError.invalidShape("fc expects 9 inputs, the layer before gives 8")) {
            try Engine(layers: [conv, fc], threads: 1)
        }
        let badWeights = Layer(name: "c", kind: .conv(g, .none), weights: [1, 2, 3])
        #expect(throws: CoreError.self) { try Engine(layers: [badWeights], threads: 1) }
    }

    @Test func workerPoolRunsEveryTaskOnce() throws {
        let pool = try WorkerPool(threads: 4)
        for tasks in [0, 1, 3, 17, 1000] {
            let counts = UnsafeMutablePointer<Int>.allocate(capacity: max(tasks, 1))
            counts.initialize(repeating: 0, count: max(tasks, 1))
            pool.parallelFor(tasks, CountTask(counts: counts))
            #expect((0..<tasks).allSatisfy { counts[$0] == 1 }, "tasks \(tasks)")
            counts.deallocate()
        }
    }
}

struct CountTask: ParallelTask {
    let counts: UnsafeMutablePointer<Int>
    func run(_ task: Int) { counts[task] += 1 }
}

func Foundation_exp(_ x: Double) -> Double { Foundation.exp(x) }
