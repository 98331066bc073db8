import CIOPThreads

/// Arena regions start on 64-byte lines: offsets and sizes are multiples of this many floats.
public let arenaAlignment = 16

/// One layer bound to arena regions, every offset in floats from the arena's
/// start: what a board runs is a flat list of these, decided before it starts.
public struct Op: Equatable, Sendable {
    public var kind: LayerKind
    /// Packed weights and bias (reserved as `kind.reservedWeightFloats` / `reservedBiasFloats`).
    public var weights: Int, bias: Int
    public var input: Int, output: Int
    /// Kernel scratch (`kind.scratchCount` floats), when the kernel needs any.
    public var scratch: Int
    /// A binary op's second input (`kind.otherInputCount` floats), 0 for the others.
    public var other: Int
    public init(kind: LayerKind, weights: Int, bias: Int, input: Int, output: Int, scratch: Int, other: Int = 0) {
        self.kind = kind; self.weights = weights; self.bias = bias; self.input = input; self.output = output;
        self.scratch = scratch; self.other = other
    }

    /// Whether every region the op touches lies inside an arena of `floats`.
    public func fits(arenaFloats floats: Int) -> Bool {
        func inside(_ at: Int, _ n: Int) -> Bool { n == 0 || (at >= 0 && n > 0 && at <= floats - n) }
        return inside(input, kind.inputCount) && inside(output, kind.outputCount)
            && (!kind.isInPlace || input == output)
            && inside(weights, kind.reservedWeightFloats) && inside(bias, kind.reservedBiasFloats)
            && inside(scratch, kind.scratchCount) && inside(other, kind.otherInputCount)
    }
}

/// Runs ops on one board. Everything lives in one arena allocated at init and
/// zeroed: packed weights, activation buffers, kernel scratch, and, on the
/// nodes, the messages themselves. `run` allocates nothing.
public final class Engine {
    /// Floats and bytes of the one arena: the board's whole memory figure.
    public let arenaFloats: Int
    public var arenaBytes: Int { arenaFloats * MemoryLayout<Float>.stride }
    public let pool: WorkerPool
    let arena: UnsafeMutablePointer<Float>
    let mappedBytes: Int

    /// For an engine built from a model's layers: its ops and where they read and write.
    let chain: [Op]
    public let inputCount: Int
    public let outputCount: Int
    let chainInput: Int, chainOutput: Int

    /// An empty, zeroed arena of `arenaFloats` floats; ops are loaded and run by the caller.
    public convenience init(arenaFloats: Int, threads: Int) throws(CoreError) {
        try self.init(
            arenaFloats: arenaFloats, threads: threads, chain: [], input: 0, output: 0, inputCount: 0, outputCount: 0)
    }

    init(arenaFloats: Int, threads: Int, chain: [Op], input: Int, output: Int, inputCount: Int, outputCount: Int)
        throws(CoreError)
    {
        let bytes = max(arenaFloats * MemoryLayout<Float>.stride, 64)
        // Zeroed by the system, so the arena is only backed as it is written (weights, then buffers).
        guard let raw = iop_arena_allocate(UInt(bytes)) else { throw .outOfMemory(bytes: bytes) }
        arena = raw.bindMemory(to: Float.self, capacity: bytes / 4)
        mappedBytes = bytes
        self.arenaFloats = arenaFloats
        do { pool = try WorkerPool(threads: threads) } catch {
            iop_arena_free(raw, UInt(bytes))
            throw error
        }
        self.chain = chain; chainInput = input; chainOutput = output
        self.inputCount = inputCount; self.outputCount = outputCount
    }

    /// The single-board engine: the layers (a chain or a graph, `Layer.inputs`) in an arena of their
    /// own, weights packed.
    public convenience init(layers: [Layer], threads: Int) throws(CoreError) {
        guard let first = layers.first, let last = layers.last else { throw .invalidShape("the model has no layers") }
        for layer in layers { try layer.validate() }
        try LayerGraph(layers).validate(layers, inputCount: first.inputCount)
        var layout = ArenaLayout()
        let placed = layout.graph(layers)
        let (ops, floats) = layout.finish()
        try self.init(
            arenaFloats: floats, threads: threads, chain: ops, input: placed.input, output: placed.output,
            inputCount: first.inputCount, outputCount: last.outputCount)
        for (op, layer) in zip(ops, layers) where op.kind.parameterChannels > 0 {
            layer.weights.withUnsafeBufferPointer { w in
                layer.bias.withUnsafeBufferPointer { b in
                    load(
                        op, channels: 0..<op.kind.parameterChannels, weights: w.isEmpty ? nil : w.baseAddress,
                        bias: b.isEmpty ? nil : b.baseAddress)
                }
            }
        }
    }

    deinit { iop_arena_free(arena, UInt(mappedBytes)) }

    /// Backs the whole arena with memory now. A node does this before it says ready: the pages then fault (and
    /// the kernel gathers huge pages) before the weight shards stream in, not while they do. A board under a small
    /// CPU share that stalls in page faults while packing shards stops reading its socket, its link's heartbeat
    /// goes unanswered, and the link drops with shards in flight (AlexNet on emulated boards at 8 % of a core).
    public func prefault() { iop_arena_prefault(arena, UInt(mappedBytes)) }

    /// The arena at `offset` floats.
    public func floats(at offset: Int) -> UnsafeMutablePointer<Float> { arena + offset }
    /// The arena as bytes (messages are received into and sent from it).
    public var bytes: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: arena, count: arenaFloats * 4)
    }

    /// Packs output channels `channels` of `op`'s parameters: their interchange
    /// weights start at `weights` (`kind.weightsPerChannel` each), their bias at
    /// `bias` (zeros when nil). Channels may come in any number of calls.
    public func load(_ op: Op, channels: Range<Int>, weights: UnsafePointer<Float>?, bias: UnsafePointer<Float>?) {
        switch op.kind {
        case .conv(let g, _):
            ConvKernel.pack(
                g, channels: channels, weights: weights!, bias: bias, packedWeights: arena + op.weights,
                packedBias: arena + op.bias)
        case .convTranspose(let g, _):
            ConvTransposeKernel.pack(
                g, channels: channels, weights: weights!, bias: bias, packedWeights: arena + op.weights,
                packedBias: arena + op.bias)
        case .linear(let g, _):
            LinearKernel.pack(
                g, channels: channels, weights: weights!, bias: bias, packedWeights: arena + op.weights,
                packedBias: arena + op.bias)
        case .addBias:
            for (k, c) in channels.enumerated() { arena[op.bias + c] = bias?[k] ?? 0 }
        case .scale:
            for (k, c) in channels.enumerated() {
                arena[op.weights + c] = weights?[k] ?? 1; arena[op.bias + c] = bias?[k] ?? 0
            }
        case .pointwise:
            for (k, c) in channels.enumerated() { arena[op.weights + c] = weights?[k] ?? 0 }
        default: break
        }
    }

    /// Runs one op on the arena.
    public func run(_ op: Op) {
        let input = UnsafePointer(arena + op.input), output = arena + op.output
        switch op.kind {
        case .conv(let g, let act):
            ConvKernel.run(
                g, input: input, output: output, packedWeights: arena + op.weights, packedBias: arena + op.bias,
                activation: act, scratch: arena + op.scratch, pool: pool)
        case .convTranspose(let g, let act):
            ConvTransposeKernel.run(
                g, input: input, output: output, packedWeights: arena + op.weights, packedBias: arena + op.bias,
                activation: act, pool: pool)
        case .linear(let g, let act):
            LinearKernel.run(
                g, input: input, output: output, packedWeights: arena + op.weights, packedBias: arena + op.bias,
                activation: act, pool: pool)
        case .maxPool(let g): PoolKernel.max(g, input: input, output: output, pool: pool)
        case .averagePool(let g): PoolKernel.average(g, input: input, output: output, pool: pool)
        case .globalAveragePool(let c, let p):
            PoolKernel.globalAverage(channels: c, plane: p, input: input, output: output, pool: pool)
        case .clamp(let n, let act): ElementwiseKernel.clamp(output, count: n, act)
        case .addBias(let c, let p, let act):
            ElementwiseKernel.addBias(output, channels: c, plane: p, bias: arena + op.bias, act)
        case .pad(let g): PadKernel.run(g, input: input, output: output)
        case .channelShuffle(let g, let c, let p):
            ChannelShuffleKernel.run(groups: g, channels: c, plane: p, input: input, output: output)
        case .upsample(let c, let h, let w, let sh, let sw):
            UpsampleKernel.run(
                channels: c, inHeight: h, inWidth: w, scaleH: sh, scaleW: sw, input: input, output: output)
        case .globalMaxPool(let c, let p):
            PoolKernel.globalMax(channels: c, plane: p, input: input, output: output, pool: pool)
        case .softmax(let n, let outer, let inner):
            ElementwiseKernel.softmax(input: input, output: output, count: n, outer: outer, inner: inner)
        case .lrn(let c, let p, let size, let alpha, let beta, let bias):
            LRNKernel.run(
                input: input, output: output, channels: c, plane: p, size: size, alpha: alpha, beta: beta, bias: bias)
        case .add(let n, let act): ElementwiseKernel.add(input, UnsafePointer(arena + op.other), output, count: n, act)
        case .concat(let a, let b):
            output.update(from: input, count: a)
            (output + a).update(from: arena + op.other, count: b)
        case .scale(let c, let p, let act):
            ElementwiseKernel.scale(
                output, channels: c, plane: p, scale: arena + op.weights, shift: arena + op.bias, act)
        case .pointwise(let c, let p, let f):
            PointwiseKernel.run(output, channels: c, plane: p, f, slopes: arena + op.weights)
        }
    }

    public var layerCount: Int { chain.count }
    /// The arena region the chain reads its input from (for callers that fill it in place).
    public var inputBuffer: UnsafeMutablePointer<Float> { arena + chainInput }
    public var outputBuffer: UnsafePointer<Float> { UnsafePointer(arena + chainOutput) }

    public func run(input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>) {
        inputBuffer.update(from: input, count: inputCount)
        for op in chain { run(op) }
        output.update(from: outputBuffer, count: outputCount)
    }

    /// Runs the chain's layer `i` on the arena's buffers: the previous layer's output must be in place.
    public func runLayer(_ i: Int) { run(chain[i]) }
}

extension Engine {
    /// One inference from and into arrays: for tools and tests, not the allocation-free path.
    public func run(_ input: [Float]) -> [Float] {
        var out = [Float](repeating: 0, count: outputCount)
        input.withUnsafeBufferPointer { i in
            out.withUnsafeMutableBufferPointer { run(input: i.baseAddress!, output: $0.baseAddress!) }
        }
        return out
    }
}
