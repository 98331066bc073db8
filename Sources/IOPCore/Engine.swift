/// Runs a chain of layers on one board. Everything lives in one arena
/// allocated at init: packed weights, two activation buffers used in turn, and
/// kernel scratch. `run` allocates nothing.
public final class Engine {
    struct Step {
        var kind: LayerKind
        var weights: Int, bias: Int
        var input: Int, output: Int
    }

    public let inputCount: Int
    public let outputCount: Int
    /// Bytes of the one arena: the board's whole memory figure for this model.
    public let arenaBytes: Int
    public let pool: WorkerPool

    let steps: [Step]
    let arena: UnsafeMutablePointer<Float>
    let scratch: Int
    let finalOutput: Int

    static let alignment = 16  // floats: 64-byte aligned regions

    /// The arena's regions in floats: packed weights, one activation buffer (there are two), scratch.
    static func layout(_ layers: [Layer]) -> (weights: Int, activation: Int, scratch: Int) {
        var maxActivation = layers.first?.inputCount ?? 0
        var weightFloats = 0, scratchFloats = 0
        for layer in layers {
            maxActivation = max(maxActivation, layer.outputCount)
            weightFloats += roundUp(layer.packedWeightCount, Engine.alignment) + roundUp(layer.packedBiasCount, Engine.alignment)
            scratchFloats = max(scratchFloats, layer.scratchCount)
        }
        return (weightFloats, roundUp(maxActivation, Engine.alignment), roundUp(scratchFloats, Engine.alignment))
    }

    /// The bytes `init` would allocate, without allocating them.
    public static func arenaBytes(for layers: [Layer]) -> Int {
        let l = layout(layers)
        return (l.weights + 2 * l.activation + l.scratch) * MemoryLayout<Float>.stride
    }

    public init(layers: [Layer], threads: Int) throws(CoreError) {
        guard let first = layers.first, let last = layers.last else { throw .invalidShape("the model has no layers") }
        var previousOut = first.inputCount
        for layer in layers {
            try layer.validate()
            if layer.inputCount != previousOut {
                throw .invalidShape(layer.name + " expects " + String(layer.inputCount) + " inputs, the layer before gives " + String(previousOut))
            }
            previousOut = layer.outputCount
        }
        let (weightFloats, act, scratchFloats) = Engine.layout(layers)
        let total = weightFloats + 2 * act + scratchFloats
        let bytes = total * MemoryLayout<Float>.stride
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(bytes, 64), alignment: 64)
        let arena = raw.bindMemory(to: Float.self, capacity: total)
        self.arena = arena
        arenaBytes = bytes
        do { pool = try WorkerPool(threads: threads) } catch {
            raw.deallocate()
            throw error
        }

        var cursor = 0
        var current = weightFloats  // activation buffer A
        let other = weightFloats + act
        var built: [Step] = []
        built.reserveCapacity(layers.count)
        for layer in layers {
            let w = cursor
            cursor += roundUp(layer.packedWeightCount, Engine.alignment)
            let b = cursor
            cursor += roundUp(layer.packedBiasCount, Engine.alignment)
            layer.weights.withUnsafeBufferPointer { wp in
                layer.bias.withUnsafeBufferPointer { bp in
                    let biasPtr = bp.isEmpty ? nil : bp.baseAddress
                    switch layer.kind {
                    case .conv(let g, _):
                        ConvKernel.pack(g, weights: wp.baseAddress!, bias: biasPtr, packedWeights: arena + w, packedBias: arena + b)
                    case .linear(let g, _):
                        LinearKernel.pack(g, weights: wp.baseAddress!, bias: biasPtr, packedWeights: arena + w, packedBias: arena + b)
                    case .addBias(let c, _, _):
                        (arena + b).update(from: bp.baseAddress!, count: c)
                    default: break
                    }
                }
            }
            let output = layer.isInPlace ? current : (current == weightFloats ? other : weightFloats)
            built.append(Step(kind: layer.kind, weights: w, bias: b, input: current, output: output))
            current = output
        }
        steps = built
        scratch = weightFloats + 2 * act
        finalOutput = current
        inputCount = first.inputCount
        outputCount = last.outputCount
    }

    deinit { UnsafeMutableRawPointer(arena).deallocate() }

    public var layerCount: Int { steps.count }

    /// The arena region `run` reads its input from (for callers that fill it in place).
    public var inputBuffer: UnsafeMutablePointer<Float> { arena + steps[0].input }
    public var outputBuffer: UnsafePointer<Float> { UnsafePointer(arena + finalOutput) }

    public func run(input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>) {
        inputBuffer.update(from: input, count: inputCount)
        for i in 0..<steps.count { runLayer(i) }
        output.update(from: outputBuffer, count: outputCount)
    }

    /// Runs one step on the arena's buffers: the previous step's output must be in place.
    public func runLayer(_ i: Int) {
        let s = steps[i]
        let input = UnsafePointer(arena + s.input), output = arena + s.output
        switch s.kind {
        case .conv(let g, let act):
            ConvKernel.run(g, input: input, output: output, packedWeights: arena + s.weights, packedBias: arena + s.bias,
                           activation: act, scratch: arena + scratch, pool: pool)
        case .linear(let g, let act):
            LinearKernel.run(g, input: input, output: output, packedWeights: arena + s.weights, packedBias: arena + s.bias,
                             activation: act, pool: pool)
        case .maxPool(let g): PoolKernel.max(g, input: input, output: output, pool: pool)
        case .averagePool(let g): PoolKernel.average(g, input: input, output: output, pool: pool)
        case .globalAveragePool(let c, let p): PoolKernel.globalAverage(channels: c, plane: p, input: input, output: output, pool: pool)
        case .clamp(let n, let act): ElementwiseKernel.clamp(output, count: n, act)
        case .addBias(let c, let p, let act): ElementwiseKernel.addBias(output, channels: c, plane: p, bias: arena + s.bias, act)
        case .softmax(let n): ElementwiseKernel.softmax(input: input, output: output, count: n)
        }
    }
}

extension Engine {
    /// One inference from and into arrays: for tools and tests, not the allocation-free path.
    public func run(_ input: [Float]) -> [Float] {
        var out = [Float](repeating: 0, count: outputCount)
        input.withUnsafeBufferPointer { i in out.withUnsafeMutableBufferPointer { run(input: i.baseAddress!, output: $0.baseAddress!) } }
        return out
    }
}
