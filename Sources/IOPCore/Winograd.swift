/// Winograd F(4x4, 3x3) (Lavin and Gray, 2016) for 3x3 stride-1 convs: a 4x4 block of outputs (a
/// "tile") comes from its 6x6 input patch with 36 multiply-adds per input-output channel pair
/// instead of 144. Per tile: V = Bᵀ d B (input transform), M = Σ over input channels of U ⊙ V
/// (U = G w Gᵀ, transformed once at load), Y = Aᵀ M A (output transform, with the bias and the
/// activation). The sum over channels is 36 independent matrix products, one per patch position
/// (`WinogradKernel.ProductTask`), with the chunk's tiles in the vector lanes.
///
/// Tiles are processed in chunks so the scratch stays small: per chunk the input transform runs per
/// input channel, the products per (position, channel block), the output transform per output
/// channel, each spread over the pool. Any geometry a partition makes (an output- or input-channel
/// slice, a row band with its halo and pads) is a conv of its own; the kernel reads padding as zeros
/// rather than copying a padded input.
public enum WinogradKernel {
    /// Positions of a transformed 6x6 patch.
    public static let positions = 36
    /// Most tiles per chunk. A multiple of the widest vector (16 lanes, AVX-512), so a chunk is
    /// a whole number of vectors and the scratch is the same size on every target.
    static let maxChunkTiles = 64
    static let chunkAlignment = 16

    static func tileRows(_ g: ConvGeometry) -> Int { (g.outHeight + 3) / 4 }
    static func tileColumns(_ g: ConvGeometry) -> Int { (g.outWidth + 3) / 4 }

    /// Tiles each chunk's scratch holds: the tiles shared out evenly over as few chunks as fit.
    static func chunkTiles(_ g: ConvGeometry) -> Int {
        let tiles = tileRows(g) * tileColumns(g)
        let chunks = (tiles + maxChunkTiles - 1) / maxChunkTiles
        return roundUp((tiles + chunks - 1) / chunks, chunkAlignment)
    }

    /// Floats from one channel's row of tiles to the next: the chunk, plus one 64-byte line when the
    /// chunk is an even number of lines, so walks down the channels spread over every L1 set.
    static func rowStride(_ chunk: Int) -> Int { chunk / 16 % 2 == 0 ? chunk + 16 : chunk }

    /// Floats of the transformed weights on this target: [position][channel block][in][block lanes].
    static func packedWeightCount(_ g: ConvGeometry) -> Int {
        positions * roundUp(g.outChannels, channelBlock) * g.inChannels
    }

    /// Floats from one position's rows (one per channel) to the next. One line more than the rows:
    /// whole pages apart (64 channels of 64 tiles are 16 KB), the 6 positions a transform reads would
    /// share one L1 set and alias each other's stores.
    static func positionStride(_ channels: Int, _ chunk: Int) -> Int { channels * rowStride(chunk) + 16 }

    /// Floats of scratch: one chunk's transformed inputs ([position][in][tile]) and products
    /// ([position][out][tile]). Position-major, so each of the 36 products reads and writes one
    /// contiguous block.
    static func scratchCount(_ g: ConvGeometry) -> Int {
        let chunk = chunkTiles(g)
        return positions * (positionStride(g.inChannels, chunk) + positionStride(g.outChannels, chunk))
    }

    /// Transforms output channels `channels` (OIHW rows from `weights`) to U = G w Gᵀ, in double
    /// precision so the only rounding is the final one, and packs them for the micro-kernel.
    public static func pack(
        _ g: ConvGeometry, channels: Range<Int>, weights: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        packedWeights: UnsafeMutablePointer<Float>, packedBias: UnsafeMutablePointer<Float>
    ) {
        let ic = g.inChannels, block = channelBlock
        let positionStride = roundUp(g.outChannels, block) * ic
        for (k, oc) in channels.enumerated() {
            let dst = packedWeights + (oc / block) * ic * block + oc % block
            for c in 0..<ic {
                let w = weights + (k * ic + c) * 9
                for i in 0..<6 {
                    // Row i of G w (three columns), then G applied along it.
                    let t0 = gRow(i, Double(w[0]), Double(w[3]), Double(w[6]))
                    let t1 = gRow(i, Double(w[1]), Double(w[4]), Double(w[7]))
                    let t2 = gRow(i, Double(w[2]), Double(w[5]), Double(w[8]))
                    for j in 0..<6 { dst[(i * 6 + j) * positionStride + c * block] = Float(gRow(j, t0, t1, t2)) }
                }
            }
            packedBias[oc] = bias?[k] ?? 0
        }
    }

    /// Output `i` of G (a, b, c)ᵀ.
    static func gRow(_ i: Int, _ a: Double, _ b: Double, _ c: Double) -> Double {
        switch i {
        case 0: return a / 4
        case 1: return -(a + b + c) / 6
        case 2: return -(a - b + c) / 6
        case 3: return a / 24 + b / 12 + c / 6
        case 4: return a / 24 - b / 12 + c / 6
        default: return c
        }
    }

    /// out = act(conv(input) + bias) for a conv with `algorithm == .winograd`.
    public static func run(
        _ g: ConvGeometry, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
        packedWeights: UnsafePointer<Float>, packedBias: UnsafePointer<Float>,
        activation: Activation, scratch: UnsafeMutablePointer<Float>, pool: WorkerPool
    ) {
        let chunk = chunkTiles(g), tiles = tileRows(g) * tileColumns(g), stride = rowStride(chunk)
        let transformed = scratch
        let products = scratch + positions * positionStride(g.inChannels, chunk)
        let blocks = roundUp(g.outChannels, channelBlock) / channelBlock
        var first = 0
        while first < tiles {
            let count = min(chunk, tiles - first)
            // Whole vectors; tiles past `count` are zeros.
            let c = Chunk(
                g: g, first: first, count: count, span: roundUp(count, KVec.scalarCount), stride: stride,
                inPosition: positionStride(g.inChannels, chunk), outPosition: positionStride(g.outChannels, chunk))
            pool.parallelFor(g.inChannels, InputTask(c: c, input: input, transformed: transformed))
            pool.parallelFor(
                positions * blocks,
                ProductTask(
                    c: c, transformed: UnsafePointer(transformed), weights: packedWeights, products: products,
                    blocks: blocks))
            pool.parallelFor(
                g.outChannels,
                OutputTask(
                    c: c, products: products, bias: packedBias, output: output, activation: activation))
            first += count
        }
    }

    /// The tiles one pass covers: `count` tiles from tile `first` (row-major over the output),
    /// computed over `span` of the `stride` slots each scratch row holds; `inPosition` and
    /// `outPosition` floats from one position's rows (one per channel) to the next.
    struct Chunk {
        let g: ConvGeometry, first: Int, count: Int, span: Int, stride: Int, inPosition: Int, outPosition: Int
    }

    /// One input channel's patches for the chunk, gathered into its row of every position (zeros
    /// where they cover padding), then V = Bᵀ d B in place, a vector of tiles at a time.
    struct InputTask: ParallelTask {
        let c: Chunk, input: UnsafePointer<Float>, transformed: UnsafeMutablePointer<Float>

        func run(_ channel: Int) {
            let g = c.g, h = g.inHeight, w = g.inWidth, s = c.inPosition, columns = tileColumns(g)
            let plane = input + channel * h * w
            let v = transformed + channel * c.stride
            for t in 0..<c.span {
                if t >= c.count {
                    for p in 0..<positions { v[p * s + t] = 0 }
                    continue
                }
                let tile = c.first + t
                let y0 = 4 * (tile / columns) - g.padTop, x0 = 4 * (tile % columns) - g.padLeft
                if y0 >= 0 && x0 >= 0 && y0 + 6 <= h && x0 + 6 <= w {
                    for r in 0..<6 {
                        let row = plane + (y0 + r) * w + x0
                        for col in 0..<6 { v[(r * 6 + col) * s + t] = row[col] }
                    }
                } else {
                    for r in 0..<6 {
                        let y = y0 + r
                        for col in 0..<6 {
                            let x = x0 + col
                            v[(r * 6 + col) * s + t] = y >= 0 && y < h && x >= 0 && x < w ? plane[y * w + x] : 0
                        }
                    }
                }
            }
            var t = 0
            while t < c.span {
                let p = v + t
                for col in 0..<6 { inputTransform(p + col * s, stride: 6 * s) }
                for r in 0..<6 { inputTransform(p + r * 6 * s, stride: s) }
                t += KVec.scalarCount
            }
        }
    }

    /// Bᵀ x for six vectors `stride` apart, in place.
    @inline(__always)
    static func inputTransform(_ p: UnsafeMutablePointer<Float>, stride s: Int) {
        let x0 = loadVec(p), x1 = loadVec(p + s), x2 = loadVec(p + 2 * s)
        let x3 = loadVec(p + 3 * s), x4 = loadVec(p + 4 * s), x5 = loadVec(p + 5 * s)
        let four = KVec(repeating: 4), five = KVec(repeating: 5), two = KVec(repeating: 2)
        let a = x4 - four * x2, b = x3 - four * x1  // shared by rows 1 and 2
        let c = x4 - x2, d = two * (x3 - x1)  // shared by rows 3 and 4
        storeVec(four * x0 - five * x2 + x4, p)
        storeVec(a + b, p + s)
        storeVec(a - b, p + 2 * s)
        storeVec(c + d, p + 3 * s)
        storeVec(c - d, p + 4 * s)
        storeVec(four * x1 - five * x3 + x5, p + 5 * s)
    }

    /// One output channel: Y = Aᵀ M A plus the bias, through the activation, a vector of tiles at a
    /// time, then each tile's 4x4 (clipped at the output's edge) scattered into its plane.
    struct OutputTask: ParallelTask {
        let c: Chunk, products: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>
        let output: UnsafeMutablePointer<Float>, activation: Activation

        func run(_ channel: Int) {
            let g = c.g, s = c.outPosition, columns = tileColumns(g)
            let m = products + channel * c.stride
            let b = KVec(repeating: bias[channel])
            var t = 0
            while t < c.count {
                let p = m + t
                for col in 0..<6 { outputTransform(p + col * s, stride: 6 * s) }
                for r in 0..<4 {
                    let row = p + r * 6 * s
                    outputTransform(row, stride: s)
                    for j in 0..<4 { storeVec(activation.apply(loadVec(row + j * s) + b), row + j * s) }
                }
                t += KVec.scalarCount
            }
            let plane = output + channel * g.outHeight * g.outWidth
            for t in 0..<c.count {
                let tile = c.first + t
                let y0 = 4 * (tile / columns), x0 = 4 * (tile % columns)
                let rows = min(4, g.outHeight - y0), cols = min(4, g.outWidth - x0)
                for r in 0..<rows {
                    let dst = plane + (y0 + r) * g.outWidth + x0
                    for j in 0..<cols { dst[j] = m[(r * 6 + j) * s + t] }
                }
            }
        }
    }

    /// Aᵀ x for six vectors `stride` apart: four results in the first four places.
    @inline(__always)
    static func outputTransform(_ p: UnsafeMutablePointer<Float>, stride s: Int) {
        let x0 = loadVec(p), x1 = loadVec(p + s), x2 = loadVec(p + 2 * s)
        let x3 = loadVec(p + 3 * s), x4 = loadVec(p + 4 * s), x5 = loadVec(p + 5 * s)
        let a = x1 + x2, b = x1 - x2, c = x3 + x4, d = x3 - x4
        let two = KVec(repeating: 2), four = KVec(repeating: 4), eight = KVec(repeating: 8)
        storeVec(x0 + a + c, p)
        storeVec(b + two * d, p + s)
        storeVec(a + four * c, p + 2 * s)
        storeVec(b + eight * d + x5, p + 3 * s)
    }
}
