/// The transformed domain of Winograd F(4x4, 3x3): for each of the 36 patch positions, M = U V, the
/// (output channel x input channel) weights times the (input channel x tile) inputs. Tiles are the
/// vector lanes, so a row of products is stored whole, as the output transform reads it, and the
/// inputs are read where the input transform left them; weights are broadcast one at a time.
extension WinogradKernel {
    /// Output channels one micro-kernel call covers. On 16 vector registers (AVX2, 32-bit NEON) 4 of
    /// them by 3 vectors of tiles is 12 accumulators, 3 input vectors and one broadcast, and 7 loads per
    /// 12 multiply-adds where a 5x2 tile of broadcast inputs needs 7 per 10. With 32 (AArch64, AVX-512)
    /// 8 by 3 is 24 accumulators: 11 loads per 24, and where a position's tiles fill one vector (16 tiles
    /// of a 13x13 or 14x14 output on AVX-512) 8 independent sums instead of 4 hide the FMA's latency.
    #if arch(arm64) || IOP_AVX512
        static let productRows = 8
    #else
        static let productRows = 4
    #endif
    /// Vectors of tiles one micro-kernel call covers. 32-bit NEON has 16 q registers too, but no FMA by
    /// scalar and fewer spare core registers than x86: there 4x3 stored and reloaded an accumulator and
    /// shuffled five others every step (`cross/mca`), and 4 by 2 vectors leaves it 5 registers to spare.
    #if arch(arm)
        static let productVectors = 2
    #else
        static let productVectors = 3
    #endif
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
                        // One specialised copy per width, so a narrower strip's unused accumulators are dead code.
                        // (A `width` argument did not do it: the three calls merged into one, which then ran all
                        // three vectors' multiply-adds for every strip.)
                        #if arch(arm)
                            if width == 2 { product(call, Width2.self) } else { product(call, Width1.self) }
                        #else
                            switch width {
                            case 3: product(call, Width3.self)
                            case 2: product(call, Width2.self)
                            default: product(call, Width1.self)
                            }
                        #endif
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

    /// A strip's width in vectors as a type, so each width is a specialisation of its own.
    protocol StripWidth { static var vectors: Int { get } }
    enum Width1: StripWidth { static var vectors: Int { 1 } }
    enum Width2: StripWidth { static var vectors: Int { 2 } }
    enum Width3: StripWidth { static var vectors: Int { 3 } }

    static func product<W: StripWidth>(_ c: Call, _: W.Type) {
        let n = KVec.scalarCount, s = c.stride, o = c.output, eight = productRows == 8, width = W.vectors
        var a00 = start(c, 0, 0, width), a01 = start(c, 0, 1, width), a02 = start(c, 0, 2, width)
        var a10 = start(c, 1, 0, width), a11 = start(c, 1, 1, width), a12 = start(c, 1, 2, width)
        var a20 = start(c, 2, 0, width), a21 = start(c, 2, 1, width), a22 = start(c, 2, 2, width)
        var a30 = start(c, 3, 0, width), a31 = start(c, 3, 1, width), a32 = start(c, 3, 2, width)
        // Rows 4-7 exist only where `productRows` is 8; elsewhere they fold away at compile time.
        var a40 = start(c, 4, 0, width), a41 = start(c, 4, 1, width), a42 = start(c, 4, 2, width)
        var a50 = start(c, 5, 0, width), a51 = start(c, 5, 1, width), a52 = start(c, 5, 2, width)
        var a60 = start(c, 6, 0, width), a61 = start(c, 6, 1, width), a62 = start(c, 6, 2, width)
        var a70 = start(c, 7, 0, width), a71 = start(c, 7, 1, width), a72 = start(c, 7, 2, width)
        var x = c.input, w = c.weights
        for _ in 0..<c.depth {
            let x0 = loadVec(x), x1 = width > 1 ? loadVec(x + n) : x0, x2 = width > 2 ? loadVec(x + 2 * n) : x0
            rowStep(&a00, &a01, &a02, x0, x1, x2, w[0])
            rowStep(&a10, &a11, &a12, x0, x1, x2, w[1])
            rowStep(&a20, &a21, &a22, x0, x1, x2, w[2])
            rowStep(&a30, &a31, &a32, x0, x1, x2, w[3])
            if eight {
                rowStep(&a40, &a41, &a42, x0, x1, x2, w[4])
                rowStep(&a50, &a51, &a52, x0, x1, x2, w[5])
                rowStep(&a60, &a61, &a62, x0, x1, x2, w[6])
                rowStep(&a70, &a71, &a72, x0, x1, x2, w[7])
            }
            x += s
            w += channelBlock
        }
        finish(a00, a01, a02, o, c.rows > 0, width)
        finish(a10, a11, a12, o + s, c.rows > 1, width)
        finish(a20, a21, a22, o + 2 * s, c.rows > 2, width)
        finish(a30, a31, a32, o + 3 * s, c.rows > 3, width)
        guard eight else { return }
        finish(a40, a41, a42, o + 4 * s, c.rows > 4, width)
        finish(a50, a51, a52, o + 5 * s, c.rows > 5, width)
        finish(a60, a61, a62, o + 6 * s, c.rows > 6, width)
        finish(a70, a71, a72, o + 7 * s, c.rows > 7, width)
    }

    /// One output row's step: its three accumulators plus the strip's vectors times its weight.
    @inline(__always)
    static func rowStep(
        _ a0: inout KVec, _ a1: inout KVec, _ a2: inout KVec, _ x0: KVec, _ x1: KVec, _ x2: KVec, _ weight: Float
    ) {
        let u = KVec(repeating: weight)
        a0.addProduct(x0, u); a1.addProduct(x1, u); a2.addProduct(x2, u)
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
