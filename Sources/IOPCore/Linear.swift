/// y = act(W x + b) for one input vector (batch 1): a matrix-vector product,
/// bound by weight bandwidth, so the packing makes every weight load a full vector.
public struct LinearGeometry: Equatable, Sendable {
    public var inFeatures: Int, outFeatures: Int
    public init(inFeatures: Int, outFeatures: Int) { self.inFeatures = inFeatures; self.outFeatures = outFeatures }
    public var blocks: Int { roundUp(outFeatures, linearBlock) / linearBlock }
    public var packedWeightCount: Int { blocks * linearBlock * inFeatures }
    public var packedBiasCount: Int { blocks * linearBlock }
    public var flops: Int { 2 * inFeatures * outFeatures }
    public func validate() throws(CoreError) {
        if inFeatures <= 0 || outFeatures <= 0 { throw .invalidShape("linear sizes must be positive") }
    }
}

public enum LinearKernel {
    /// Packs rows `channels` of row-major W[out][in] (starting at `weights`) as
    /// [block][in][linearBlock]; like `ConvKernel.pack`, in any number of
    /// calls, onto zeroed memory.
    public static func pack(
        _ g: LinearGeometry, channels: Range<Int>, weights: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        packedWeights: UnsafeMutablePointer<Float>, packedBias: UnsafeMutablePointer<Float>
    ) {
        let k = g.inFeatures
        for (j, o) in channels.enumerated() {
            let dst = packedWeights + (o / linearBlock) * k * linearBlock + o % linearBlock
            let src = weights + j * k
            for i in 0..<k { dst[i * linearBlock] = src[i] }
            packedBias[o] = bias?[j] ?? 0
        }
    }

    public static func run(
        _ g: LinearGeometry, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
        packedWeights: UnsafePointer<Float>, packedBias: UnsafePointer<Float>,
        activation: Activation, pool: WorkerPool
    ) {
        pool.parallelFor(
            g.blocks,
            Task(
                g: g, input: input, output: output, packedWeights: packedWeights,
                packedBias: packedBias, activation: activation))
    }

    struct Task: ParallelTask {
        let g: LinearGeometry, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>
        let packedWeights: UnsafePointer<Float>, packedBias: UnsafePointer<Float>, activation: Activation

        func run(_ b: Int) {
            let k = g.inFeatures, n = KVec.scalarCount
            var wp = packedWeights + b * k * linearBlock
            let bs = packedBias + b * linearBlock
            var a0 = loadVec(bs), a1 = loadVec(bs + n), a2 = loadVec(bs + 2 * n), a3 = loadVec(bs + 3 * n)
            // A second accumulator set halves the FMA dependency chains.
            var c0 = KVec(), c1 = KVec(), c2 = KVec(), c3 = KVec()
            var i = 0
            while i + 1 < k {
                let x = KVec(repeating: input[i]), y = KVec(repeating: input[i + 1])
                a0.addProduct(loadVec(wp), x); a1.addProduct(loadVec(wp + n), x)
                a2.addProduct(loadVec(wp + 2 * n), x); a3.addProduct(loadVec(wp + 3 * n), x)
                wp += linearBlock
                c0.addProduct(loadVec(wp), y); c1.addProduct(loadVec(wp + n), y)
                c2.addProduct(loadVec(wp + 2 * n), y); c3.addProduct(loadVec(wp + 3 * n), y)
                wp += linearBlock
                i += 2
            }
            if i < k {
                let x = KVec(repeating: input[i])
                a0.addProduct(loadVec(wp), x); a1.addProduct(loadVec(wp + n), x)
                a2.addProduct(loadVec(wp + 2 * n), x); a3.addProduct(loadVec(wp + 3 * n), x)
            }
            let r0 = activation.apply(a0 + c0), r1 = activation.apply(a1 + c1)
            let r2 = activation.apply(a2 + c2), r3 = activation.apply(a3 + c3)
            let out = output + b * linearBlock
            let valid = min(linearBlock, g.outFeatures - b * linearBlock)
            if valid == linearBlock {
                storeVec(r0, out); storeVec(r1, out + n); storeVec(r2, out + 2 * n); storeVec(r3, out + 3 * n)
            } else {
                for c in 0..<valid {
                    let v = c < n ? r0 : c < 2 * n ? r1 : c < 3 * n ? r2 : r3
                    out[c] = v[c % n]
                }
            }
        }
    }
}
