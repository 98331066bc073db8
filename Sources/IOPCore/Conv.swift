public enum ConvKernel {
    /// Reorders output channels `channels` (their OIHW rows start at `weights`,
    /// their bias at `bias`) into the layout the micro-kernel streams:
    /// [group][channel block][in channel][kh][kw][block lanes]. Depthwise
    /// weights keep OIHW. Channels can be packed in any number of calls (a
    /// board loads its weight shards a message at a time); lanes no call
    /// writes must already be zero, as a fresh arena is.
    public static func pack(
        _ g: ConvGeometry, channels: Range<Int>, weights: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        packedWeights: UnsafeMutablePointer<Float>, packedBias: UnsafeMutablePointer<Float>
    ) {
        if g.usesWinograd {
            WinogradKernel.pack(
                g, channels: channels, weights: weights, bias: bias, packedWeights: packedWeights,
                packedBias: packedBias)
            return
        }
        let taps = g.kernelH * g.kernelW
        if g.isDepthwise {
            (packedWeights + channels.lowerBound * taps).update(from: weights, count: channels.count * taps)
            for (k, o) in channels.enumerated() { packedBias[o] = bias?[k] ?? 0 }
            return
        }
        let icg = g.inGroupChannels, ocg = g.outGroupChannels, rows = icg * taps
        let block = g.packBlock
        let blocks = roundUp(ocg, block) / block
        for (k, oc) in channels.enumerated() {
            let group = oc / ocg, local = oc % ocg
            let unit = group * blocks + local / block, lane = local % block
            let dst = packedWeights + unit * rows * block + lane
            let src = weights + k * rows
            for t in 0..<rows { dst[t * block] = src[t] }
            packedBias[unit * block + lane] = bias?[k] ?? 0
        }
    }

    /// out = act(conv(input) + bias). `scratch` holds `g.scratchCount` floats.
    public static func run(
        _ g: ConvGeometry, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
        packedWeights: UnsafePointer<Float>, packedBias: UnsafePointer<Float>,
        activation: Activation, scratch: UnsafeMutablePointer<Float>, pool: WorkerPool
    ) {
        if g.usesWinograd {
            WinogradKernel.run(
                g, input: input, output: output, packedWeights: packedWeights, packedBias: packedBias,
                activation: activation, scratch: scratch, pool: pool)
            return
        }
        var src = input
        if g.isPadded {
            padInput(g, input: input, into: scratch, pool: pool)
            src = UnsafePointer(scratch)
        }
        if g.isDepthwise {
            depthwise(
                g, input: src, output: output, weights: packedWeights, bias: packedBias, activation: activation,
                pool: pool)
        } else if g.usesRowKernel {
            let blocks = roundUp(g.outGroupChannels, rowChannelBlock) / rowChannelBlock
            pool.parallelFor(
                g.groups * blocks * g.outHeight,
                RowTask(
                    g: g, input: src, output: output, weights: packedWeights,
                    bias: packedBias, activation: activation, blocks: blocks))
        } else {
            blocked(
                g, input: src, output: output, weights: packedWeights, bias: packedBias, activation: activation,
                taps: UnsafeMutableRawPointer(scratch + g.paddedInputCount), pool: pool)
        }
    }

    static func padInput(
        _ g: ConvGeometry, input: UnsafePointer<Float>, into dst: UnsafeMutablePointer<Float>, pool: WorkerPool
    ) {
        pool.parallelFor(g.inChannels, PadTask(g: g, input: input, dst: dst))
    }

    struct PadTask: ParallelTask {
        let g: ConvGeometry, input: UnsafePointer<Float>, dst: UnsafeMutablePointer<Float>
        func run(_ c: Int) {
            let hp = g.paddedHeight, wp = g.paddedWidth, h = g.inHeight, w = g.inWidth
            let plane = dst + c * hp * wp
            plane.update(repeating: 0, count: g.padTop * wp)
            for y in 0..<h {
                let row = plane + (g.padTop + y) * wp
                row.update(repeating: 0, count: g.padLeft)
                (row + g.padLeft).update(from: input + (c * h + y) * w, count: w)
                (row + g.padLeft + w).update(repeating: 0, count: g.padRight)
            }
            (plane + (g.padTop + h) * wp).update(repeating: 0, count: g.padBottom * wp)
        }
    }

    /// Tasks per pool thread the blocked kernel aims for: AlexNet's 5x5 conv (12 channel blocks) ran
    /// as 12 tasks on two threads, one block each, and the thread that finished last left the
    /// other idle for half a block; 8 per thread bounds that idling to a sixteenth of the layer.
    static let tasksPerThread = 8

    /// Direct convolution over the padded input: each task owns one channel block
    /// of one group and a run of pixel tiles; the micro-kernel keeps a `pixelBlock` by
    /// `channelBlock` tile of outputs in registers for the whole reduction
    /// (6x4 vectors where the target has 32 vector registers, 6x2 on AVX2, 5x2 on 32-bit NEON).
    /// `taps` (`g.reductionCount` 32-bit slots of the scratch) receives each reduction term's
    /// offset in the input: the tile walks the whole reduction as one flat loop.
    static func blocked(
        _ g: ConvGeometry, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
        weights: UnsafePointer<Float>, bias: UnsafePointer<Float>, activation: Activation,
        taps: UnsafeMutableRawPointer, pool: WorkerPool
    ) {
        var t = 0
        for c in 0..<g.inGroupChannels {
            for ky in 0..<g.kernelH {
                for kx in 0..<g.kernelW {
                    let offset = (c * g.paddedHeight + ky * g.dilationH) * g.paddedWidth + kx * g.dilationW
                    taps.storeBytes(of: Int32(truncatingIfNeeded: offset), toByteOffset: 4 * t, as: Int32.self)
                    t += 1
                }
            }
        }
        let blocks = roundUp(g.outGroupChannels, channelBlock) / channelBlock
        let outPlane = g.outHeight * g.outWidth
        let tiles = (outPlane + pixelBlock - 1) / pixelBlock
        let inPlane = g.paddedHeight * g.paddedWidth
        let blockWeights = g.inGroupChannels * g.kernelH * g.kernelW * channelBlock
        // Enough pixel chunks per block that every thread gets `tasksPerThread` tasks (tasks are claimed
        // one at a time, so the thread that finishes last idles the others for about one task), few
        // enough that a chunk streams a useful run of the input.
        let units = g.groups * blocks
        // When the input outweighs the weights, walk pixel chunks outermost so a
        // chunk's input rows stay in cache across every channel block.
        let inputMajor = g.inputCount > g.packedWeightCount
        let parallelChunks = max(1, min(tiles, (tasksPerThread * pool.threads + units - 1) / units))
        let chunksPerUnit = inputMajor ? max(parallelChunks, tiles / 64) : (pool.threads == 1 ? 1 : parallelChunks)
        let tilesPerChunk = (tiles + chunksPerUnit - 1) / chunksPerUnit
        pool.parallelFor(
            units * chunksPerUnit,
            BlockedTask(
                g: g, input: input, output: output, weights: weights, bias: bias, activation: activation,
                taps: UnsafeRawPointer(taps), blocks: blocks, units: units, inputMajor: inputMajor, tiles: tiles,
                chunksPerUnit: chunksPerUnit, tilesPerChunk: tilesPerChunk,
                inPlane: inPlane, outPlane: outPlane, blockWeights: blockWeights))
    }

    struct BlockedTask: ParallelTask {
        let g: ConvGeometry, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>
        let weights: UnsafePointer<Float>, bias: UnsafePointer<Float>, activation: Activation
        let taps: UnsafeRawPointer
        let blocks: Int, units: Int, inputMajor: Bool, tiles: Int, chunksPerUnit: Int, tilesPerChunk: Int, inPlane: Int,
            outPlane: Int, blockWeights: Int

        func run(_ task: Int) {
            let icg = g.inGroupChannels, ocg = g.outGroupChannels
            let unit = inputMajor ? task % units : task / chunksPerUnit
            let chunk = inputMajor ? task / units : task % chunksPerUnit
            let grp = unit / blocks, b = unit % blocks
            let w = weights + unit * blockWeights
            let bs = bias + unit * channelBlock
            let inp = input + grp * icg * inPlane
            let out = output + (grp * ocg + b * channelBlock) * outPlane
            let validChannels = min(channelBlock, ocg - b * channelBlock)
            let t0 = chunk * tilesPerChunk, t1 = min(tiles, t0 + tilesPerChunk)
            if t0 >= t1 { return }
            for t in t0..<t1 {
                // The last tile overlaps its neighbour rather than running short.
                let p0 = min(t * pixelBlock, max(0, outPlane - pixelBlock))
                ConvKernel.tile(
                    g, input: inp, taps: taps, firstPixel: p0, outPlane: outPlane,
                    weights: w, bias: bs, output: out, validChannels: validChannels, activation: activation)
            }
        }
    }

    @inline(__always)
    static func inputOffset(_ g: ConvGeometry, _ p: Int) -> Int {
        let oy = p / g.outWidth, ox = p - oy * g.outWidth
        return oy * g.strideH * g.paddedWidth + ox * g.strideW
    }

    /// One tile's outputs over the whole reduction. The reduction is one flat loop over `taps`
    /// (input offsets, `g.reductionCount` Int32s), not nested loops over channels and kernel rows:
    /// over nested loops LLVM kept all six broadcasts of an AVX2 6x2 tile live at once and spilled
    /// accumulators on every step (16 vector registers), where the flat loop, unrolled, interleaves
    /// broadcasts and FMAs and spills nothing (AlexNet's 5x5 conv: 65 -> 76 GFLOP/s in isolation).
    static func tile(
        _ g: ConvGeometry, input: UnsafePointer<Float>, taps: UnsafeRawPointer, firstPixel p0: Int, outPlane: Int,
        weights: UnsafePointer<Float>, bias: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
        validChannels: Int, activation: Activation
    ) {
        // An output smaller than a tile (late layers on small inputs: ResNet's 2x2 at a 64x64 input) repeats its
        // last pixel in the spare lanes: the tile still reads each weight once for all its pixels, where one
        // pixel at a time read the weights once per pixel (4x the traffic at 2x2, a quarter of the FMA rate).
        let last = outPlane - 1
        let i0 = input + inputOffset(g, p0), i1 = input + inputOffset(g, min(p0 + 1, last))
        let i2 = input + inputOffset(g, min(p0 + 2, last)), i3 = input + inputOffset(g, min(p0 + 3, last))
        let i4 = input + inputOffset(g, min(p0 + 4, last)), i5 = input + inputOffset(g, min(p0 + 5, last))
        let terms = g.reductionCount
        let n = KVec.scalarCount
        #if arch(arm64) || IOP_AVX512  // convVectors == 4: a 6x4-vector tile
            let b0 = loadVec(bias), b1 = loadVec(bias + n), b2 = loadVec(bias + 2 * n), b3 = loadVec(bias + 3 * n)
            var a00 = b0, a01 = b1, a02 = b2, a03 = b3
            var a10 = b0, a11 = b1, a12 = b2, a13 = b3
            var a20 = b0, a21 = b1, a22 = b2, a23 = b3
            var a30 = b0, a31 = b1, a32 = b2, a33 = b3
            var a40 = b0, a41 = b1, a42 = b2, a43 = b3
            var a50 = b0, a51 = b1, a52 = b2, a53 = b3
            var wp = weights
            for t in 0..<terms {
                let o = Int(taps.load(fromByteOffset: 4 * t, as: Int32.self))
                let w0 = loadVec(wp), w1 = loadVec(wp + n), w2 = loadVec(wp + 2 * n), w3 = loadVec(wp + 3 * n)
                wp += 4 * n
                var x = KVec(repeating: i0[o])
                a00.addProduct(w0, x); a01.addProduct(w1, x); a02.addProduct(w2, x); a03.addProduct(w3, x)
                x = KVec(repeating: i1[o])
                a10.addProduct(w0, x); a11.addProduct(w1, x); a12.addProduct(w2, x); a13.addProduct(w3, x)
                x = KVec(repeating: i2[o])
                a20.addProduct(w0, x); a21.addProduct(w1, x); a22.addProduct(w2, x); a23.addProduct(w3, x)
                x = KVec(repeating: i3[o])
                a30.addProduct(w0, x); a31.addProduct(w1, x); a32.addProduct(w2, x); a33.addProduct(w3, x)
                x = KVec(repeating: i4[o])
                a40.addProduct(w0, x); a41.addProduct(w1, x); a42.addProduct(w2, x); a43.addProduct(w3, x)
                x = KVec(repeating: i5[o])
                a50.addProduct(w0, x); a51.addProduct(w1, x); a52.addProduct(w2, x); a53.addProduct(w3, x)
            }
            // 16-lane vectors (AVX-512): 64 channels by 6 pixels leave transposed (`storeColumn`).
            if KVec.scalarCount >= 16 && validChannels == channelBlock && outPlane >= pixelBlock {
                let o = output + p0, s = n * outPlane
                storeColumn(a00, a10, a20, a30, a40, a50, o, outPlane, activation)
                storeColumn(a01, a11, a21, a31, a41, a51, o + s, outPlane, activation)
                storeColumn(a02, a12, a22, a32, a42, a52, o + 2 * s, outPlane, activation)
                storeColumn(a03, a13, a23, a33, a43, a53, o + 3 * s, outPlane, activation)
                return
            }
            store(a00, a01, a02, a03, output + p0, outPlane, validChannels, activation)
            store(a10, a11, a12, a13, output + min(p0 + 1, last), outPlane, validChannels, activation)
            store(a20, a21, a22, a23, output + min(p0 + 2, last), outPlane, validChannels, activation)
            store(a30, a31, a32, a33, output + min(p0 + 3, last), outPlane, validChannels, activation)
            store(a40, a41, a42, a43, output + min(p0 + 4, last), outPlane, validChannels, activation)
            store(a50, a51, a52, a53, output + min(p0 + 5, last), outPlane, validChannels, activation)
        #else  // convVectors == 2: a 6x2-vector tile (5x2 on 32-bit ARM: the sixth pixel's code folds away)
            let b0 = loadVec(bias), b1 = loadVec(bias + n)
            var a00 = b0, a01 = b1, a10 = b0, a11 = b1, a20 = b0, a21 = b1
            var a30 = b0, a31 = b1, a40 = b0, a41 = b1, a50 = b0, a51 = b1
            var wp = weights
            for t in 0..<terms {
                let o = Int(taps.load(fromByteOffset: 4 * t, as: Int32.self))
                let w0 = loadVec(wp), w1 = loadVec(wp + n)
                wp += 2 * n
                var x = KVec(repeating: i0[o])
                a00.addProduct(w0, x); a01.addProduct(w1, x)
                x = KVec(repeating: i1[o])
                a10.addProduct(w0, x); a11.addProduct(w1, x)
                x = KVec(repeating: i2[o])
                a20.addProduct(w0, x); a21.addProduct(w1, x)
                x = KVec(repeating: i3[o])
                a30.addProduct(w0, x); a31.addProduct(w1, x)
                x = KVec(repeating: i4[o])
                a40.addProduct(w0, x); a41.addProduct(w1, x)
                if pixelBlock == 6 {
                    x = KVec(repeating: i5[o])
                    a50.addProduct(w0, x); a51.addProduct(w1, x)
                }
            }
            store(a00, a01, output + p0, outPlane, validChannels, activation)
            store(a10, a11, output + min(p0 + 1, last), outPlane, validChannels, activation)
            store(a20, a21, output + min(p0 + 2, last), outPlane, validChannels, activation)
            store(a30, a31, output + min(p0 + 3, last), outPlane, validChannels, activation)
            store(a40, a41, output + min(p0 + 4, last), outPlane, validChannels, activation)
            if pixelBlock == 6 { store(a50, a51, output + min(p0 + 5, last), outPlane, validChannels, activation) }
        #endif
    }

    /// Scatters one pixel's `channelBlock` results (4 vectors) into CHW planes.
    @inline(__always)
    static func store(
        _ v0: KVec, _ v1: KVec, _ v2: KVec, _ v3: KVec, _ out: UnsafeMutablePointer<Float>,
        _ plane: Int, _ valid: Int, _ act: Activation
    ) {
        let n = KVec.scalarCount
        let r0 = act.apply(v0), r1 = act.apply(v1), r2 = act.apply(v2), r3 = act.apply(v3)
        if valid == channelBlock {
            for l in 0..<n {
                out[l * plane] = r0[l]; out[(n + l) * plane] = r1[l]
                out[(2 * n + l) * plane] = r2[l]; out[(3 * n + l) * plane] = r3[l]
            }
        } else {
            for c in 0..<valid {
                let v = c < n ? r0 : c < 2 * n ? r1 : c < 3 * n ? r2 : r3
                out[c * plane] = v[c % n]
            }
        }
    }

    /// Scatters one pixel's `channelBlock` results (2 vectors) into CHW planes.
    @inline(__always)
    static func store(
        _ v0: KVec, _ v1: KVec, _ out: UnsafeMutablePointer<Float>, _ plane: Int, _ valid: Int, _ act: Activation
    ) {
        let n = KVec.scalarCount
        let r0 = act.apply(v0), r1 = act.apply(v1)
        if valid == channelBlock {
            for l in 0..<n { out[l * plane] = r0[l]; out[(n + l) * plane] = r1[l] }
        } else {
            for c in 0..<valid { out[c * plane] = c < n ? r0[c] : r1[c - n] }
        }
    }

    /// One output row of `rowChannelBlock` channels: 2 vectors of consecutive
    /// pixels per channel (1 on 32-bit ARM) stay in registers; input rows are loaded as
    /// vectors, weights broadcast, results stored as whole vectors.
    struct RowTask: ParallelTask {
        let g: ConvGeometry, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>
        let weights: UnsafePointer<Float>, bias: UnsafePointer<Float>, activation: Activation
        let blocks: Int

        func run(_ task: Int) {
            let n = KVec.scalarCount, width = rowPixelVectors * n
            let oy = task % g.outHeight, unit = task / g.outHeight
            let grp = unit / blocks, b = unit % blocks
            let icg = g.inGroupChannels, taps = g.kernelH * g.kernelW
            let inPlane = g.paddedHeight * g.paddedWidth, outPlane = g.outHeight * g.outWidth
            let firstChannel = grp * g.outGroupChannels + b * rowChannelBlock
            let valid = min(rowChannelBlock, g.outGroupChannels - b * rowChannelBlock)
            let inp = input + grp * icg * inPlane + oy * g.strideH * g.paddedWidth
            let bs = bias + unit * rowChannelBlock
            var ox = 0
            while ox < g.outWidth {
                let x0 = min(ox, g.outWidth - width)  // the last chunk overlaps rather than runs short
                var a0 = KVec(repeating: bs[0]), b0 = a0, a1 = KVec(repeating: bs[1]), b1 = a1
                var a2 = KVec(repeating: bs[2]), b2 = a2, a3 = KVec(repeating: bs[3]), b3 = a3
                var a4 = KVec(repeating: bs[4]), b4 = a4, a5 = KVec(repeating: bs[5]), b5 = a5
                var a6 = KVec(repeating: bs[6]), b6 = a6, a7 = KVec(repeating: bs[7]), b7 = a7
                var wp = weights + unit * icg * taps * rowChannelBlock
                for ic in 0..<icg {
                    for ky in 0..<g.kernelH {
                        let row = inp + ic * inPlane + ky * g.dilationH * g.paddedWidth + x0
                        for kx in 0..<g.kernelW {
                            let r = row + kx * g.dilationW
                            // With one pixel vector the b accumulators are never stored: the compiler drops them.
                            let u = loadVec(r), v = rowPixelVectors == 2 ? loadVec(r + n) : u
                            var w = KVec(repeating: wp[0]); a0.addProduct(u, w); b0.addProduct(v, w)
                            w = KVec(repeating: wp[1]); a1.addProduct(u, w); b1.addProduct(v, w)
                            w = KVec(repeating: wp[2]); a2.addProduct(u, w); b2.addProduct(v, w)
                            w = KVec(repeating: wp[3]); a3.addProduct(u, w); b3.addProduct(v, w)
                            w = KVec(repeating: wp[4]); a4.addProduct(u, w); b4.addProduct(v, w)
                            w = KVec(repeating: wp[5]); a5.addProduct(u, w); b5.addProduct(v, w)
                            w = KVec(repeating: wp[6]); a6.addProduct(u, w); b6.addProduct(v, w)
                            w = KVec(repeating: wp[7]); a7.addProduct(u, w); b7.addProduct(v, w)
                            wp += rowChannelBlock
                        }
                    }
                }
                let out = output + firstChannel * outPlane + oy * g.outWidth + x0
                for c in 0..<valid {
                    let (p, q) =
                        c == 0
                        ? (a0, b0)
                        : c == 1
                            ? (a1, b1)
                            : c == 2
                                ? (a2, b2)
                                : c == 3
                                    ? (a3, b3)
                                    : c == 4 ? (a4, b4) : c == 5 ? (a5, b5) : c == 6 ? (a6, b6) : (a7, b7)
                    storeVec(activation.apply(p), out + c * outPlane)
                    if rowPixelVectors == 2 { storeVec(activation.apply(q), out + c * outPlane + n) }
                }
                ox = x0 + width
            }
        }
    }

    /// One input channel per group: a plain stencil per output channel,
    /// vectorised along the row when the stride is 1.
    static func depthwise(
        _ g: ConvGeometry, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
        weights: UnsafePointer<Float>, bias: UnsafePointer<Float>, activation: Activation, pool: WorkerPool
    ) {
        pool.parallelFor(
            g.outChannels,
            DepthwiseTask(g: g, input: input, output: output, weights: weights, bias: bias, activation: activation))
    }

    struct DepthwiseTask: ParallelTask {
        let g: ConvGeometry, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>
        let weights: UnsafePointer<Float>, bias: UnsafePointer<Float>, activation: Activation

        func run(_ oc: Int) {
            let multiplier = g.outGroupChannels, inPlane = g.paddedHeight * g.paddedWidth
            let wpad = g.paddedWidth
            let src = input + (oc / multiplier) * inPlane
            let w = weights + oc * g.kernelH * g.kernelW
            let out = output + oc * g.outHeight * g.outWidth
            for oy in 0..<g.outHeight {
                let row = src + oy * g.strideH * wpad
                let orow = out + oy * g.outWidth
                var ox = 0
                if g.strideW == 1 {
                    // Vectors of consecutive outputs, then a narrower vector for a row narrower than one
                    // (MobileNetV2's 4x4 and 2x2 planes at a 64x64 input).
                    if g.kernelH == 3 && g.kernelW == 3 && g.dilationH == 1 && g.dilationW == 1 {
                        ox = vectors3x3(row: row, out: orow, weights: w, bias: bias[oc])
                    }
                    ox = vectors(row: row, out: orow, from: ox, weights: w, bias: bias[oc], KLanes.self)
                    if KVec.scalarCount > 4 {
                        ox = vectors(row: row, out: orow, from: ox, weights: w, bias: bias[oc], Lanes4.self)
                    }
                } else if g.strideW == 2 && g.kernelH == 3 && g.kernelW == 3 && g.dilationH == 1 && g.dilationW == 1 {
                    // Each vector width in turn, down to four lanes: a narrow row still gets vectors.
                    if KVec.scalarCount >= 16 {
                        ox = stride2Vectors3x3(row: row, out: orow, from: ox, weights: w, bias: bias[oc], Lanes16.self)
                    }
                    if KVec.scalarCount >= 8 {
                        ox = stride2Vectors3x3(row: row, out: orow, from: ox, weights: w, bias: bias[oc], Lanes8.self)
                    }
                    ox = stride2Vectors3x3(row: row, out: orow, from: ox, weights: w, bias: bias[oc], Lanes4.self)
                }
                // Four outputs at a time in separate sums: a single sum's adds wait on each other (a
                // strided or narrow row ran at a quarter of the FMA rate).
                while ox + 4 <= g.outWidth {
                    var a0 = bias[oc], a1 = a0, a2 = a0, a3 = a0
                    let step = g.strideW
                    for ky in 0..<g.kernelH {
                        let r = row + ky * g.dilationH * wpad + ox * step
                        for kx in 0..<g.kernelW {
                            let t = w[ky * g.kernelW + kx], x = r + kx * g.dilationW
                            a0 += x[0] * t; a1 += x[step] * t; a2 += x[2 * step] * t; a3 += x[3 * step] * t
                        }
                    }
                    orow[ox] = activation.apply(a0); orow[ox + 1] = activation.apply(a1)
                    orow[ox + 2] = activation.apply(a2); orow[ox + 3] = activation.apply(a3)
                    ox += 4
                }
                while ox < g.outWidth {
                    var acc = bias[oc]
                    for ky in 0..<g.kernelH {
                        let r = row + ky * g.dilationH * wpad + ox * g.strideW
                        for kx in 0..<g.kernelW { acc += r[kx * g.dilationW] * w[ky * g.kernelW + kx] }
                    }
                    orow[ox] = activation.apply(acc)
                    ox += 1
                }
            }
        }

        /// A 3x3 stride-1 row (MobileNet's depthwise convs) from its start, two vectors of outputs at a time:
        /// the nine taps' weights stay in registers for the whole row and the two sums run side by side, where
        /// the general loop reloaded a weight for each single FMA (llvm-mca: a fifth of cortex-a72's FMA rate).
        /// Returns where it stops: the rest is less than a vector.
        @inline(__always)
        func vectors3x3(
            row: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, weights w: UnsafePointer<Float>,
            bias: Float
        ) -> Int {
            let n = KVec.scalarCount, wpad = g.paddedWidth
            let w0 = KVec(repeating: w[0]), w1 = KVec(repeating: w[1]), w2 = KVec(repeating: w[2])
            let w3 = KVec(repeating: w[3]), w4 = KVec(repeating: w[4]), w5 = KVec(repeating: w[5])
            let w6 = KVec(repeating: w[6]), w7 = KVec(repeating: w[7]), w8 = KVec(repeating: w[8])
            let b = KVec(repeating: bias)
            @inline(__always) func sum(_ r: UnsafePointer<Float>) -> KVec {
                var a = b
                a.addProduct(loadVec(r), w0); a.addProduct(loadVec(r + 1), w1); a.addProduct(loadVec(r + 2), w2)
                let r1 = r + wpad
                a.addProduct(loadVec(r1), w3); a.addProduct(loadVec(r1 + 1), w4); a.addProduct(loadVec(r1 + 2), w5)
                let r2 = r1 + wpad
                a.addProduct(loadVec(r2), w6); a.addProduct(loadVec(r2 + 1), w7); a.addProduct(loadVec(r2 + 2), w8)
                return a
            }
            var ox = 0
            while ox + 2 * n <= g.outWidth {
                let a = sum(row + ox), c = sum(row + ox + n)
                storeVec(activation.apply(a), out + ox); storeVec(activation.apply(c), out + ox + n)
                ox += 2 * n
            }
            if ox + n <= g.outWidth {
                storeVec(activation.apply(sum(row + ox)), out + ox)
                ox += n
            }
            return ox
        }

        /// 3x3 stride-2 outputs of one row from `start` in vectors of `L.V` (MobileNets' downsampling depthwise
        /// convs), two vectors side by side while they fit, then one; returns where they stop. A kernel row's
        /// three taps for a vector's outputs are the even and the odd lanes of the input twice its width at
        /// their first input, and the even lanes of the one two floats on (`L.split`: a shuffle or two per
        /// half). The scalar loop it replaces ran these convs at 2-5 GFLOP/s on one AVX-512 core.
        /// The loads stay within the padded row: the last one ends one float past the last tap it uses.
        /// Out of line (one call a row), so `cross/mca` finds it by its name on every target.
        @inline(never)
        func stride2Vectors3x3<L: LaneWidth>(
            row: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, from start: Int,
            weights w: UnsafePointer<Float>, bias: Float, _: L.Type
        ) -> Int {
            typealias V = L.V
            let n = V.scalarCount, wpad = g.paddedWidth
            let w0 = V(repeating: w[0]), w1 = V(repeating: w[1]), w2 = V(repeating: w[2])
            let w3 = V(repeating: w[3]), w4 = V(repeating: w[4]), w5 = V(repeating: w[5])
            let w6 = V(repeating: w[6]), w7 = V(repeating: w[7]), w8 = V(repeating: w[8])
            @inline(__always) func taps(_ a: inout V, _ r: UnsafePointer<Float>, _ t0: V, _ t1: V, _ t2: V) {
                let (even, odd) = L.split(UnsafeRawPointer(r).loadUnaligned(as: L.W.self))
                let (next, _) = L.split(UnsafeRawPointer(r + 2).loadUnaligned(as: L.W.self))
                L.fma(&a, even, t0); L.fma(&a, odd, t1); L.fma(&a, next, t2)
            }
            @inline(__always) func sum(_ ox: Int) -> V {
                var a = V(repeating: bias)
                let r = row + 2 * ox
                taps(&a, r, w0, w1, w2); taps(&a, r + wpad, w3, w4, w5); taps(&a, r + 2 * wpad, w6, w7, w8)
                return a
            }
            @inline(__always) func fits(_ ox: Int, _ vectors: Int) -> Bool {
                ox + vectors * n <= g.outWidth && 2 * (ox + vectors * n) + 2 <= wpad
            }
            var ox = start
            while fits(ox, 2) {
                let a = sum(ox), c = sum(ox + n)
                UnsafeMutableRawPointer(out + ox).storeBytes(of: L.clamp(a, activation), as: V.self)
                UnsafeMutableRawPointer(out + ox + n).storeBytes(of: L.clamp(c, activation), as: V.self)
                ox += 2 * n
            }
            while fits(ox, 1) {
                UnsafeMutableRawPointer(out + ox).storeBytes(of: L.clamp(sum(ox), activation), as: V.self)
                ox += n
            }
            return ox
        }

        /// Stride-1 outputs of one row from `ox` in vectors of `L.V`, while a whole vector fits; returns where
        /// they stop.
        @inline(__always)
        func vectors<L: LaneWidth>(
            row: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, from start: Int,
            weights w: UnsafePointer<Float>, bias: Float, _: L.Type
        ) -> Int {
            typealias V = L.V
            var ox = start
            let wpad = g.paddedWidth
            while ox + V.scalarCount <= g.outWidth {
                var acc = V(repeating: bias)
                for ky in 0..<g.kernelH {
                    let r = row + ky * g.dilationH * wpad + ox
                    for kx in 0..<g.kernelW {
                        let x = UnsafeRawPointer(r + kx * g.dilationW).loadUnaligned(as: V.self)
                        L.fma(&acc, x, V(repeating: w[ky * g.kernelW + kx]))
                    }
                }
                UnsafeMutableRawPointer(out + ox).storeBytes(of: L.clamp(acc, activation), as: V.self)
                ox += V.scalarCount
            }
            return ox
        }
    }
}
