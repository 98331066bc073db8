/// Geometry of MaxPool / AveragePool on CHW (batch 1), ONNX semantics.
public struct PoolGeometry: Equatable, Sendable {
    public var channels, inHeight, inWidth, outHeight, outWidth: Int
    public var kernelH, kernelW, strideH, strideW: Int
    public var padTop, padLeft, padBottom, padRight: Int
    /// Max only: the window's taps this far apart (ONNX `dilations`).
    public var dilationH, dilationW: Int
    /// Average only: divide by the full window (pads included) instead of the valid part.
    public var countIncludePad: Bool

    public init(
        channels: Int, inHeight: Int, inWidth: Int, kernelH: Int, kernelW: Int,
        strideH: Int, strideW: Int, padTop: Int = 0, padLeft: Int = 0, padBottom: Int = 0,
        padRight: Int = 0, dilationH: Int = 1, dilationW: Int = 1, ceilMode: Bool = false,
        countIncludePad: Bool = false
    ) {
        self.channels = channels; self.inHeight = inHeight; self.inWidth = inWidth
        self.kernelH = kernelH; self.kernelW = kernelW; self.strideH = strideH; self.strideW = strideW
        self.padTop = padTop; self.padLeft = padLeft; self.padBottom = padBottom; self.padRight = padRight
        self.countIncludePad = countIncludePad
        self.dilationH = dilationH; self.dilationW = dilationW
        outHeight = windowCount(
            extent: inHeight + padTop + padBottom, kernel: (kernelH - 1) * dilationH + 1, stride: strideH,
            ceil: ceilMode, endPadding: padBottom)
        outWidth = windowCount(
            extent: inWidth + padLeft + padRight, kernel: (kernelW - 1) * dilationW + 1, stride: strideW,
            ceil: ceilMode, endPadding: padRight)
    }

    public var isDilated: Bool { dilationH != 1 || dilationW != 1 }

    public var inputCount: Int { channels * inHeight * inWidth }
    public var outputCount: Int { channels * outHeight * outWidth }

    public func validate() throws(CoreError) {
        if channels <= 0 || inHeight <= 0 || inWidth <= 0 || kernelH <= 0 || kernelW <= 0 || strideH <= 0
            || strideW <= 0 || dilationH <= 0 || dilationW <= 0
        {
            throw .invalidShape("pool sizes, kernel and strides must be positive")
        }
        if padTop < 0 || padLeft < 0 || padBottom < 0 || padRight < 0 { throw .invalidShape("pool pads must be >= 0") }
        let spanH = (kernelH - 1) * dilationH + 1, spanW = (kernelW - 1) * dilationW + 1
        if padTop >= spanH || padBottom >= spanH || padLeft >= spanW || padRight >= spanW {
            throw .invalidShape("pool pads must be smaller than the kernel")
        }
        if outHeight <= 0 || outWidth <= 0 { throw .invalidShape("pool output would be empty") }
    }
}

public enum PoolKernel {
    public static func max(
        _ g: PoolGeometry, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, pool: WorkerPool
    ) {
        pool.parallelFor(g.channels, MaxTask(g: g, input: input, output: output))
    }

    struct MaxTask: ParallelTask {
        let g: PoolGeometry, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>
        func run(_ c: Int) {
            let src = input + c * g.inHeight * g.inWidth
            let dst = output + c * g.outHeight * g.outWidth
            if g.isDilated {
                dilated(src, dst)
                return
            }
            if g.kernelH == 2 && g.kernelW == 2 && g.strideH == 2 && g.strideW == 2 && g.padTop == 0 && g.padLeft == 0
                && 2 * g.outHeight <= g.inHeight && 2 * g.outWidth <= g.inWidth
            {
                halving(src, dst)
                return
            }
            let w = g.inWidth
            if g.kernelH == 3 && g.kernelW == 3 && g.padTop == 0 && g.padLeft == 0
                && (g.outHeight - 1) * g.strideH + 3 <= g.inHeight && (g.outWidth - 1) * g.strideW + 3 <= g.inWidth
            {
                threeByThree(src, dst)
                return
            }
            for oy in 0..<g.outHeight {
                let y0 = oy * g.strideH - g.padTop
                let ys = Swift.max(y0, 0), ye = Swift.min(y0 + g.kernelH, g.inHeight)
                let top = src + ys * w, out = dst + oy * g.outWidth
                for ox in 0..<g.outWidth {
                    let x0 = ox * g.strideW - g.padLeft
                    let xs = Swift.max(x0, 0), xe = Swift.min(x0 + g.kernelW, g.inWidth)
                    // Three taps a step where the window allows (AlexNet's 3x3 pools): a clipped, indexed
                    // tap at a time ran at a tenth of the 2x2 path's rate.
                    var m = -Float.infinity, row = top + xs
                    for _ in ys..<ye {
                        var x = 0
                        while x + 3 <= xe - xs {
                            m = Swift.max(m, Swift.max(row[x], Swift.max(row[x + 1], row[x + 2])))
                            x += 3
                        }
                        while x < xe - xs {
                            m = Swift.max(m, row[x])
                            x += 1
                        }
                        row += w
                    }
                    out[ox] = m
                }
            }
        }

        /// 3x3, every window inside the input (AlexNet's overlapping stride-2 pools): nine loads and a tree of
        /// maxima per output, no bounds to clip. The clipped loop, a tap at a time, ran at a fifth of this rate.
        func threeByThree(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>) {
            let w = g.inWidth
            for oy in 0..<g.outHeight {
                let r0 = src + oy * g.strideH * w, out = dst + oy * g.outWidth
                var x = 0
                for ox in 0..<g.outWidth {
                    let a = r0 + x, b = a + w, c = b + w
                    let top = Swift.max(Swift.max(a[0], a[1]), Swift.max(a[2], b[0]))
                    let bottom = Swift.max(Swift.max(b[1], b[2]), Swift.max(Swift.max(c[0], c[1]), c[2]))
                    out[ox] = Swift.max(top, bottom)
                    x += g.strideW
                }
            }
        }

        /// Taps `dilation` apart: each one checked against the input's bounds.
        func dilated(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>) {
            for oy in 0..<g.outHeight {
                let y0 = oy * g.strideH - g.padTop
                for ox in 0..<g.outWidth {
                    let x0 = ox * g.strideW - g.padLeft
                    var m = -Float.infinity
                    for ky in 0..<g.kernelH {
                        let y = y0 + ky * g.dilationH
                        if y < 0 || y >= g.inHeight { continue }
                        for kx in 0..<g.kernelW {
                            let x = x0 + kx * g.dilationW
                            if x >= 0 && x < g.inWidth { m = Swift.max(m, src[y * g.inWidth + x]) }
                        }
                    }
                    dst[oy * g.outWidth + ox] = m
                }
            }
        }

        /// 2x2, stride 2, every window inside the input (VGG, LeNet): no bounds
        /// to clip. (A SIMD evenHalf/oddHalf version measured 4x slower.)
        func halving(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>) {
            for oy in 0..<g.outHeight {
                let r0 = src + 2 * oy * g.inWidth, r1 = r0 + g.inWidth, out = dst + oy * g.outWidth
                var ox = 0
                while ox < g.outWidth {
                    out[ox] = Swift.max(Swift.max(r0[2 * ox], r0[2 * ox + 1]), Swift.max(r1[2 * ox], r1[2 * ox + 1]))
                    ox += 1
                }
            }
        }
    }

    public static func average(
        _ g: PoolGeometry, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, pool: WorkerPool
    ) {
        pool.parallelFor(g.channels, AverageTask(g: g, input: input, output: output))
    }

    struct AverageTask: ParallelTask {
        let g: PoolGeometry, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>
        func run(_ c: Int) {
            let src = input + c * g.inHeight * g.inWidth
            let dst = output + c * g.outHeight * g.outWidth
            for oy in 0..<g.outHeight {
                let y0 = oy * g.strideH - g.padTop
                let ys = Swift.max(y0, 0), ye = Swift.min(y0 + g.kernelH, g.inHeight)
                // With pads counted, the window is still clipped to the padded extent.
                let padH = Swift.min(y0 + g.kernelH, g.inHeight + g.padBottom) - y0
                for ox in 0..<g.outWidth {
                    let x0 = ox * g.strideW - g.padLeft
                    let xs = Swift.max(x0, 0), xe = Swift.min(x0 + g.kernelW, g.inWidth)
                    let padW = Swift.min(x0 + g.kernelW, g.inWidth + g.padRight) - x0
                    var s: Float = 0
                    for y in ys..<ye { for x in xs..<xe { s += src[y * g.inWidth + x] } }
                    let n = g.countIncludePad ? padH * padW : (ye - ys) * (xe - xs)
                    dst[oy * g.outWidth + ox] = n > 0 ? s / Float(n) : 0
                }
            }
        }
    }

    public static func globalAverage(
        channels: Int, plane: Int, input: UnsafePointer<Float>,
        output: UnsafeMutablePointer<Float>, pool: WorkerPool
    ) {
        pool.parallelFor(channels, GlobalAverageTask(plane: plane, input: input, output: output))
    }

    public static func globalMax(
        channels: Int, plane: Int, input: UnsafePointer<Float>,
        output: UnsafeMutablePointer<Float>, pool: WorkerPool
    ) {
        pool.parallelFor(channels, GlobalMaxTask(plane: plane, input: input, output: output))
    }

    struct GlobalMaxTask: ParallelTask {
        let plane: Int, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>
        func run(_ c: Int) {
            var m = -Float.infinity
            let src = input + c * plane
            for i in 0..<plane { m = Swift.max(m, src[i]) }
            output[c] = m
        }
    }

    struct GlobalAverageTask: ParallelTask {
        let plane: Int, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>
        func run(_ c: Int) {
            var s: Float = 0
            let src = input + c * plane
            for i in 0..<plane { s += src[i] }
            output[c] = s / Float(plane)
        }
    }
}
