/// ConvTranspose in gather form: each output pixel sums the input pixels whose footprint covers it, so
/// every output is written once (no scatter races between threads, no accumulation buffer). Output row
/// `oy` reads input row `iy` through tap `ky` when `oy + padTop - ky * dilation` is `iy * stride`.
public enum ConvTransposeKernel {
    /// Reorders output channels `channels` (their [out][in / group][kh][kw] rows start at `weights`, their
    /// bias at `bias`) into [group][channel block][kh][kw][in channel][block lanes] (`packLanes` lanes): a
    /// tap's weights for one input channel are one load per vector of output channels. Channels may come
    /// in any number of calls; lanes no call writes must already be zero, as a fresh arena is.
    public static func pack(
        _ g: ConvTransposeGeometry, channels: Range<Int>, weights: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        packedWeights: UnsafeMutablePointer<Float>, packedBias: UnsafeMutablePointer<Float>
    ) {
        let icg = g.inGroupChannels, ocg = g.outGroupChannels, taps = g.kernelH * g.kernelW
        let lanes = g.packLanes, blocks = g.blocksPerGroup
        for (k, oc) in channels.enumerated() {
            let group = oc / ocg, local = oc % ocg
            let unit = group * blocks + local / lanes, lane = local % lanes
            let dst = packedWeights + unit * taps * icg * lanes + lane
            let src = weights + k * icg * taps
            for ic in 0..<icg {
                for t in 0..<taps { dst[(t * icg + ic) * lanes] = src[ic * taps + t] }
            }
            packedBias[unit * lanes + lane] = bias?[k] ?? 0
        }
    }

    /// out = act(convTranspose(input) + bias).
    public static func run(
        _ g: ConvTransposeGeometry, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
        packedWeights: UnsafePointer<Float>, packedBias: UnsafePointer<Float>, activation: Activation,
        pool: WorkerPool
    ) {
        if g.packLanes == 1 {
            pool.parallelFor(
                g.outChannels,
                ChannelTask(
                    g: g, input: input, output: output, weights: packedWeights, bias: packedBias, act: activation))
        } else {
            pool.parallelFor(
                g.groups * g.blocksPerGroup * g.outHeight,
                BlockTask(g: g, input: input, output: output, weights: packedWeights, bias: packedBias, act: activation)
            )
        }
    }

    /// The input row (or column) tap `k` of output row `o` reads, or -1 when the tap falls between input
    /// pixels or outside them.
    @inline(__always)
    static func source(_ o: Int, pad: Int, tap k: Int, dilation: Int, stride: Int, extent: Int) -> Int {
        let t = o + pad - k * dilation
        if t < 0 || t % stride != 0 { return -1 }
        let i = t / stride
        return i < extent ? i : -1
    }

    /// One output row of one block of `2 x KVec` output channels: each pixel's channels stay in two
    /// vectors while the taps that reach it stream their input channels. Pixels of one phase (`ox` modulo
    /// the stride) are reached by the same taps, and four of them a stride apart read four consecutive input
    /// columns through each tap: away from the edges they go four at a time, one weight load for four.
    struct BlockTask: ParallelTask {
        let g: ConvTransposeGeometry, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>
        let weights: UnsafePointer<Float>, bias: UnsafePointer<Float>, act: Activation

        func run(_ task: Int) {
            let blocks = g.blocksPerGroup, lanes = g.packLanes
            let oy = task % g.outHeight, unit = task / g.outHeight
            let group = unit / blocks, b = unit % blocks
            let icg = g.inGroupChannels, inPlane = g.inHeight * g.inWidth, outPlane = g.outHeight * g.outWidth
            let row = Row(
                g: g, oy: oy, inPlane: inPlane, outPlane: outPlane, valid: min(lanes, g.outGroupChannels - b * lanes),
                input: input + group * icg * inPlane, weights: weights + unit * g.kernelH * g.kernelW * icg * lanes,
                bias: bias + unit * lanes,
                output: output + (group * g.outGroupChannels + b * lanes) * outPlane + oy * g.outWidth, act: act)
            let sw = g.strideW
            for phase in 0..<min(sw, g.outWidth) {
                var ox = phase
                while ox < g.outWidth {
                    if ox + 3 * sw < g.outWidth && row.fourAlike(ox) {
                        row.four(ox)
                        ox += 4 * sw
                    } else {
                        row.one(ox)
                        ox += sw
                    }
                }
            }
        }
    }

    struct Row {
        let g: ConvTransposeGeometry, oy: Int, inPlane: Int, outPlane: Int, valid: Int
        let input: UnsafePointer<Float>, weights: UnsafePointer<Float>, bias: UnsafePointer<Float>
        let output: UnsafeMutablePointer<Float>, act: Activation

        /// Whether every tap reaches pixels `ox`, `ox + stride`, ..., `ox + 3 * stride` alike: all four, or none.
        @inline(__always) func fourAlike(_ ox: Int) -> Bool {
            for kx in 0..<g.kernelW {
                let t = ox + g.padLeft - kx * g.dilationW
                if t % g.strideW != 0 { continue }
                if t < 0 || t / g.strideW + 3 >= g.inWidth { return false }
            }
            return true
        }

        @inline(__always) func one(_ ox: Int) {
            let n = KVec.scalarCount, lanes = g.packLanes, icg = g.inGroupChannels
            var a0 = loadVec(bias), a1 = loadVec(bias + n)
            for ky in 0..<g.kernelH {
                let iy = source(
                    oy, pad: g.padTop, tap: ky, dilation: g.dilationH, stride: g.strideH, extent: g.inHeight)
                if iy < 0 { continue }
                for kx in 0..<g.kernelW {
                    let ix = source(
                        ox, pad: g.padLeft, tap: kx, dilation: g.dilationW, stride: g.strideW, extent: g.inWidth)
                    if ix < 0 { continue }
                    var x = input + iy * g.inWidth + ix
                    var wp = weights + (ky * g.kernelW + kx) * icg * lanes
                    for _ in 0..<icg {
                        let v = KVec(repeating: x[0])
                        a0.addProduct(loadVec(wp), v); a1.addProduct(loadVec(wp + n), v)
                        x += inPlane; wp += lanes
                    }
                }
            }
            store(a0, a1, ox)
        }

        @inline(__always) func four(_ ox: Int) {
            let n = KVec.scalarCount, lanes = g.packLanes, icg = g.inGroupChannels
            let b0 = loadVec(bias), b1 = loadVec(bias + n)
            var a0 = b0, a1 = b1, c0 = b0, c1 = b1, d0 = b0, d1 = b1, e0 = b0, e1 = b1
            for ky in 0..<g.kernelH {
                let iy = source(
                    oy, pad: g.padTop, tap: ky, dilation: g.dilationH, stride: g.strideH, extent: g.inHeight)
                if iy < 0 { continue }
                for kx in 0..<g.kernelW {
                    let t = ox + g.padLeft - kx * g.dilationW
                    if t < 0 || t % g.strideW != 0 { continue }
                    var x = input + iy * g.inWidth + t / g.strideW
                    var wp = weights + (ky * g.kernelW + kx) * icg * lanes
                    for _ in 0..<icg {
                        let w0 = loadVec(wp), w1 = loadVec(wp + n)
                        var v = KVec(repeating: x[0]); a0.addProduct(w0, v); a1.addProduct(w1, v)
                        v = KVec(repeating: x[1]); c0.addProduct(w0, v); c1.addProduct(w1, v)
                        v = KVec(repeating: x[2]); d0.addProduct(w0, v); d1.addProduct(w1, v)
                        v = KVec(repeating: x[3]); e0.addProduct(w0, v); e1.addProduct(w1, v)
                        x += inPlane; wp += lanes
                    }
                }
            }
            store(a0, a1, ox); store(c0, c1, ox + g.strideW)
            store(d0, d1, ox + 2 * g.strideW); store(e0, e1, ox + 3 * g.strideW)
        }

        /// One pixel's block of channels into CHW planes.
        @inline(__always) func store(_ v0: KVec, _ v1: KVec, _ ox: Int) {
            let n = KVec.scalarCount, r0 = act.apply(v0), r1 = act.apply(v1)
            for c in 0..<valid { output[c * outPlane + ox] = c < n ? r0[c] : r1[c - n] }
        }
    }

    /// One output channel, scalar: for groups of few output channels (depthwise upsampling), where a
    /// vector of channels would be mostly empty lanes. Row by row in scatter form, which needs no test per
    /// pixel: input column `ix` of tap `kx` lands on output column `ix * stride + kx * dilation - padLeft`,
    /// so each tap adds a run of input columns into the row, which this task alone writes.
    struct ChannelTask: ParallelTask {
        let g: ConvTransposeGeometry, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>
        let weights: UnsafePointer<Float>, bias: UnsafePointer<Float>, act: Activation

        func run(_ oc: Int) {
            let icg = g.inGroupChannels, inPlane = g.inHeight * g.inWidth, ow = g.outWidth, sw = g.strideW
            let inp = input + oc / g.outGroupChannels * icg * inPlane
            let w = weights + oc * g.kernelH * g.kernelW * icg
            for oy in 0..<g.outHeight {
                let row = output + (oc * g.outHeight + oy) * ow
                row.update(repeating: bias[oc], count: ow)
                for ky in 0..<g.kernelH {
                    let iy = source(
                        oy, pad: g.padTop, tap: ky, dilation: g.dilationH, stride: g.strideH, extent: g.inHeight)
                    if iy < 0 { continue }
                    for kx in 0..<g.kernelW {
                        let shift = kx * g.dilationW - g.padLeft
                        let first = shift >= 0 ? 0 : (sw - 1 - shift) / sw
                        let end = min(g.inWidth, (ow - shift + sw - 1) / sw)
                        if first >= end { continue }
                        let wp = w + (ky * g.kernelW + kx) * icg
                        for ic in 0..<icg {
                            let x = inp + ic * inPlane + iy * g.inWidth, weight = wp[ic]
                            for ix in first..<end { row[ix * sw + shift] += x[ix] * weight }
                        }
                    }
                }
                for ox in 0..<ow { row[ox] = act.apply(row[ox]) }
            }
        }
    }
}
