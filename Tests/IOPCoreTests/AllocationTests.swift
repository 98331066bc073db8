import CAllocCounter
import IOPCore
import Testing

/// After warm-up an inference must not touch the heap: the arena and the
/// thread pool are the only memory it uses.
@Suite(.serialized) struct AllocationTests {
    @Test(arguments: [1, 2])
    func steadyStateInferenceAllocatesNothing(threads: Int) throws {
        var r = TestRNG(state: 11)
        let c1 = ConvGeometry(
            inChannels: 3, inHeight: 20, inWidth: 20, outChannels: 40, kernelH: 3, kernelW: 3,
            padTop: 1, padLeft: 1, padBottom: 1, padRight: 1)
        let dw = ConvGeometry(
            inChannels: 40, inHeight: 20, inWidth: 20, outChannels: 40, kernelH: 3, kernelW: 3,
            strideH: 2, strideW: 2, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1, groups: 40)
        let wino = ConvGeometry(
            inChannels: 40, inHeight: 10, inWidth: 10, outChannels: 40, kernelH: 3, kernelW: 3,
            padTop: 1, padLeft: 1, padBottom: 1, padRight: 1, algorithm: .winograd)
        let pool = PoolGeometry(channels: 40, inHeight: 10, inWidth: 10, kernelH: 2, kernelW: 2, strideH: 2, strideW: 2)
        let avg = PoolGeometry(
            channels: 40, inHeight: 5, inWidth: 5, kernelH: 2, kernelW: 2, strideH: 1, strideW: 1, countIncludePad: true
        )
        let layers = [
            Layer(name: "conv", kind: .conv(c1, .relu), weights: r.floats(c1.weightCount), bias: r.floats(40)),
            Layer(name: "dw", kind: .conv(dw, Activation(low: 0, high: 6)), weights: r.floats(dw.weightCount)),
            Layer(name: "wino", kind: .conv(wino, .relu), weights: r.floats(wino.weightCount), bias: r.floats(40)),
            Layer(name: "pool", kind: .maxPool(pool)),
            Layer(name: "avg", kind: .averagePool(avg)),
            Layer(name: "relu", kind: .clamp(count: 40 * 16, .relu)),
            Layer(name: "prelu", kind: .pointwise(channels: 40, plane: 16, .prelu), weights: r.floats(40)),
            Layer(name: "sigmoid", kind: .pointwise(channels: 40, plane: 16, .sigmoid)),
            Layer(name: "tanh", kind: .pointwise(channels: 40, plane: 16, .tanh)),
            Layer(name: "hardswish", kind: .pointwise(channels: 40, plane: 16, .hardSwish)),
            Layer(name: "gap", kind: .globalAveragePool(channels: 40, plane: 16)),
            Layer(
                name: "fc", kind: .linear(LinearGeometry(inFeatures: 40, outFeatures: 10), .none),
                weights: r.floats(400), bias: r.floats(10)),
            Layer(name: "softmax", kind: .softmax(count: 10)),
        ]
        expectNoAllocationsAfterWarmUp(try Engine(layers: layers, threads: threads))
    }

    /// A decoder's upsampling: ConvTranspose on blocks of output channels, then depthwise (one at a time).
    @Test(arguments: [1, 2])
    func convTransposeAllocatesNothing(threads: Int) throws {
        var r = TestRNG(state: 12)
        let up = ConvTransposeGeometry(
            inChannels: 24, inHeight: 6, inWidth: 6, outChannels: 20, kernelH: 4, kernelW: 4, strideH: 2, strideW: 2,
            padTop: 1, padLeft: 1, padBottom: 1, padRight: 1)
        let dw = ConvTransposeGeometry(
            inChannels: 20, inHeight: 12, inWidth: 12, outChannels: 20, kernelH: 3, kernelW: 3, strideH: 2,
            strideW: 2, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1, outputPaddingH: 1, outputPaddingW: 1,
            groups: 20)
        let layers = [
            Layer(name: "up", kind: .convTranspose(up, .relu), weights: r.floats(up.weightCount), bias: r.floats(20)),
            Layer(name: "dw", kind: .convTranspose(dw, .none), weights: r.floats(dw.weightCount)),
        ]
        expectNoAllocationsAfterWarmUp(try Engine(layers: layers, threads: threads))
    }
}

/// Five inferences after a warm-up one, counted on every thread of the engine's pool: none may allocate.
func expectNoAllocationsAfterWarmUp(_ engine: Engine) {
    let x = UnsafeMutablePointer<Float>.allocate(capacity: engine.inputCount)
    let y = UnsafeMutablePointer<Float>.allocate(capacity: engine.outputCount)
    defer { x.deallocate(); y.deallocate() }
    for i in 0..<engine.inputCount { x[i] = Float(i % 7) - 3 }
    engine.run(input: x, output: y)  // warm-up
    iop_alloc_counter_reset_rendezvous()
    defer { iop_alloc_counter_leave() }
    engine.pool.parallelFor(engine.pool.threads, Enroll(parties: Int32(engine.pool.threads)))
    iop_alloc_counter_start()
    for _ in 0..<5 { engine.run(input: x, output: y) }
    let allocations = iop_alloc_counter_stop()
    #expect(allocations == 0, "\(allocations) heap allocations in 5 inferences")
    // The counter itself must see allocations, or a zero above proves nothing.
    iop_alloc_counter_start()
    let probe = [Float](repeating: 1, count: 1000 + engine.pool.threads)
    let seen = iop_alloc_counter_stop()
    #expect(seen >= 1 && probe.count > 0)
}

/// Run once per pool thread (the rendezvous stops one thread taking two).
struct Enroll: ParallelTask {
    let parties: Int32
    func run(_ task: Int) { iop_alloc_counter_enroll(parties) }
}
