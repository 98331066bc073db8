/// The transformed domain of Winograd F(4x4, 3x3): for each of the 36 patch positions, M = U V, the
/// (output channel x input channel) weights times the (input channel x tile) inputs. Tiles are the
/// vector lanes, so a row of products is stored whole, as the output transform reads it, and the
/// inputs are read where the input transform left them; weights are broadcast one at a time.
extension WinogradKernel {
    /// Output channels one micro-kernel call covers. 4 of them by 3 vectors of tiles is 12
    /// accumulators, 3 input vectors and one broadcast: the 16 vector registers of AVX2 and 32-bit
    /// NEON, and 7 loads per 12 multiply-adds where a 5x2 tile of broadcast inputs needs 7 per 10.
    static let productRows = 4
    /// Vectors of tiles one micro-kernel call covers.
    static let productVectors = 3
    /// Input channels per pass over a position's tiles: a pass's strip of inputs (128 channels x 3
    /// vectors) and its weights (128 x `channelBlock`) stay in L1 while every output channel of the
    /// block and every strip of the chunk uses them. Later passes add to the stored products.
    static let productDepth = 128

    /// One position and one block of `channelBlock` output channels, over the chunk's tiles.
    struct ProductTask: ParallelTask {
        let c: Chunk, transformed: UnsafePointer<Float>, weights: UnsafePointer<Float>
        let products: UnsafeMutablePointer<Float>, blocks: Int

        func run(_ task: Int) {
            let g = c.g, ic = g.inChannels, position = task / blocks, b = task % blocks
            let n = KVec.scalarCount, vectors = c.span / n, s = c.stride
            let w = weights + (position * roundUp(g.outChannels, channelBlock) + b * channelBlock) * ic
            let x = transformed + position * c.inPosition
            let out = products + position * c.outPosition + b * channelBlock * s
            let valid = min(channelBlock, g.outChannels - b * channelBlock)
            var k = 0
            while k < ic {
                let depth = min(productDepth, ic - k)
                var v = 0
                while v < vectors {
                    let width = min(productVectors, vectors - v)
                    var r = 0
                    while r < valid {
                        let call = Call(
                            depth: depth, input: x + k * s + v * n, stride: s, weights: w + k * channelBlock + r,
                            output: out + r * s + v * n, rows: min(productRows, valid - r), accumulate: k > 0)
                        // One specialised copy per width: the accumulators a narrower strip leaves unused are dead.
                        switch width {
                        case 3: product(call, width: 3)
                        case 2: product(call, width: 2)
                        default: product(call, width: 1)
                        }
                        r += productRows
                    }
                    v += width
                }
                k += depth
            }
        }
    }

    /// One micro-kernel call: `rows` output rows `stride` apart (of `productRows`) by `width` vectors,
    /// reduced over `depth` input rows `stride` apart, their weights `channelBlock` apart.
    struct Call {
        let depth: Int, input: UnsafePointer<Float>, stride: Int, weights: UnsafePointer<Float>
        let output: UnsafeMutablePointer<Float>, rows: Int, accumulate: Bool
    }

    @inline(__always)
    static func product(_ c: Call, width: Int) {
        let n = KVec.scalarCount, s = c.stride, o = c.output
        var a00 = start(c, 0, 0, width), a01 = start(c, 0, 1, width), a02 = start(c, 0, 2, width)
        var a10 = start(c, 1, 0, width), a11 = start(c, 1, 1, width), a12 = start(c, 1, 2, width)
        var a20 = start(c, 2, 0, width), a21 = start(c, 2, 1, width), a22 = start(c, 2, 2, width)
        var a30 = start(c, 3, 0, width), a31 = start(c, 3, 1, width), a32 = start(c, 3, 2, width)
        var x = c.input, w = c.weights
        for _ in 0..<c.depth {
            let x0 = loadVec(x), x1 = width > 1 ? loadVec(x + n) : x0, x2 = width > 2 ? loadVec(x + 2 * n) : x0
            var u = KVec(repeating: w[0])
            a00.addProduct(x0, u); a01.addProduct(x1, u); a02.addProduct(x2, u)
            u = KVec(repeating: w[1])
            a10.addProduct(x0, u); a11.addProduct(x1, u); a12.addProduct(x2, u)
            u = KVec(repeating: w[2])
            a20.addProduct(x0, u); a21.addProduct(x1, u); a22.addProduct(x2, u)
            u = KVec(repeating: w[3])
            a30.addProduct(x0, u); a31.addProduct(x1, u); a32.addProduct(x2, u)
            x += s
            w += channelBlock
        }
        finish(a00, a01, a02, o, c.rows > 0, width)
        finish(a10, a11, a12, o + s, c.rows > 1, width)
        finish(a20, a21, a22, o + 2 * s, c.rows > 2, width)
        finish(a30, a31, a32, o + 3 * s, c.rows > 3, width)
    }

    /// Accumulator (row, vector): the products stored by earlier passes, else zero.
    @inline(__always)
    static func start(_ c: Call, _ row: Int, _ vector: Int, _ width: Int) -> KVec {
        guard c.accumulate && row < c.rows && vector < width else { return KVec(repeating: 0) }
        return loadVec(c.output + row * c.stride + vector * KVec.scalarCount)
    }

    @inline(__always)
    static func finish(
        _ v0: KVec, _ v1: KVec, _ v2: KVec, _ p: UnsafeMutablePointer<Float>, _ valid: Bool, _ width: Int
    ) {
        guard valid else { return }
        let n = KVec.scalarCount
        storeVec(v0, p)
        if width > 1 { storeVec(v1, p + n) }
        if width > 2 { storeVec(v2, p + 2 * n) }
    }
}
