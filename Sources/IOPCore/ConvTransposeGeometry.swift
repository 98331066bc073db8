/// Geometry of one 2-D transposed convolution on a CHW tensor (batch 1), ONNX ConvTranspose: every input
/// pixel spreads its kernel-sized, weighted footprint over the output, `stride` output pixels apart. The
/// full footprint spans `(in - 1) * stride + (kernel - 1) * dilation + 1` rows; `pads` crop it at the
/// start and end and `outputPadding` adds rows at the end (where only the bias lands). The loader resolves
/// auto_pad and output_shape to these pads.
public struct ConvTransposeGeometry: Equatable, Sendable {
    public var inChannels, inHeight, inWidth: Int
    public var outChannels: Int
    public var kernelH, kernelW: Int
    public var strideH, strideW: Int
    public var dilationH, dilationW: Int
    public var padTop, padLeft, padBottom, padRight: Int
    public var outputPaddingH, outputPaddingW: Int
    public var groups: Int

    public init(
        inChannels: Int, inHeight: Int, inWidth: Int, outChannels: Int, kernelH: Int, kernelW: Int,
        strideH: Int = 1, strideW: Int = 1, dilationH: Int = 1, dilationW: Int = 1,
        padTop: Int = 0, padLeft: Int = 0, padBottom: Int = 0, padRight: Int = 0,
        outputPaddingH: Int = 0, outputPaddingW: Int = 0, groups: Int = 1
    ) {
        self.inChannels = inChannels; self.inHeight = inHeight; self.inWidth = inWidth
        self.outChannels = outChannels
        self.kernelH = kernelH; self.kernelW = kernelW
        self.strideH = strideH; self.strideW = strideW
        self.dilationH = dilationH; self.dilationW = dilationW
        self.padTop = padTop; self.padLeft = padLeft; self.padBottom = padBottom; self.padRight = padRight
        self.outputPaddingH = outputPaddingH; self.outputPaddingW = outputPaddingW
        self.groups = groups
    }

    public var outHeight: Int {
        (inHeight - 1) * strideH + (kernelH - 1) * dilationH + 1 + outputPaddingH - padTop - padBottom
    }
    public var outWidth: Int {
        (inWidth - 1) * strideW + (kernelW - 1) * dilationW + 1 + outputPaddingW - padLeft - padRight
    }

    /// The same transposed convolution for a slice of its output channels, or of its input channels (whose
    /// partial sums add up to the whole): the ways partitions reshape it.
    public func sliced(outChannels: Int) -> ConvTransposeGeometry {
        var g = self
        g.outChannels = outChannels
        return g
    }
    public func sliced(inChannels: Int) -> ConvTransposeGeometry {
        var g = self
        g.inChannels = inChannels
        return g
    }

    /// The input rows whose footprints reach output rows `rows`: from one whose footprint starts at or
    /// above the band's first row (so the band's own geometry needs no negative pad) to the last one
    /// whose footprint reaches the band's last row.
    public func inputRows(forOutputRows rows: Range<Int>) -> Range<Int> {
        func floorDiv(_ a: Int, _ b: Int) -> Int { a >= 0 ? a / b : -((b - 1 - a) / b) }
        let hi = min(inHeight, (rows.upperBound - 1 + padTop) / strideH + 1)
        let lo = min(max(0, floorDiv(rows.lowerBound + padTop - (kernelH - 1) * dilationH, strideH)), hi - 1)
        return lo..<hi
    }

    /// The transposed convolution that computes output rows `rows` of this one from its input rows
    /// `inputRows(forOutputRows: rows)`: the footprints cropped above the band by the top pad, and below
    /// it by the bottom pad, or extended by output padding where the band ends past the last footprint.
    public func band(outputRows rows: Range<Int>) -> ConvTransposeGeometry {
        let input = inputRows(forOutputRows: rows)
        var g = self
        g.inHeight = input.count
        g.padTop = padTop + rows.lowerBound - input.lowerBound * strideH
        let uncropped = (input.count - 1) * strideH + (kernelH - 1) * dilationH + 1 - g.padTop
        g.padBottom = max(0, uncropped - rows.count)
        g.outputPaddingH = max(0, rows.count - uncropped)
        return g
    }

    public var inGroupChannels: Int { inChannels / groups }
    public var outGroupChannels: Int { outChannels / groups }
    public var inputCount: Int { inChannels * inHeight * inWidth }
    public var outputCount: Int { outChannels * outHeight * outWidth }
    public var weightCount: Int { outChannels * inGroupChannels * kernelH * kernelW }
    /// Multiply-adds times two: every input value meets every tap of its group's output channels (taps
    /// that land in the cropped pads are skipped, so this is an upper bound by the pads' share).
    public var flops: Int { 2 * inputCount * outGroupChannels * kernelH * kernelW }

    /// Output channels one packed weight block holds: vectors of channels when a group has enough of them,
    /// else one (a depthwise upsampling), so few channels per group waste no lanes. The same on every
    /// target but the vector width, and never more than `portableChannelBlock`.
    public var packLanes: Int { outGroupChannels >= 8 ? 2 * KVec.scalarCount : 1 }
    var blocksPerGroup: Int { (outGroupChannels + packLanes - 1) / packLanes }

    public func validate() throws(CoreError) {
        if inChannels <= 0 || inHeight <= 0 || inWidth <= 0 || outChannels <= 0 {
            throw .invalidShape("conv transpose sizes must be positive")
        }
        if kernelH <= 0 || kernelW <= 0 || strideH <= 0 || strideW <= 0 || dilationH <= 0 || dilationW <= 0 {
            throw .invalidShape("conv transpose kernel, strides and dilations must be positive")
        }
        if padTop < 0 || padLeft < 0 || padBottom < 0 || padRight < 0 || outputPaddingH < 0 || outputPaddingW < 0 {
            throw .invalidShape("conv transpose pads and output padding must be >= 0")
        }
        if groups <= 0 || inChannels % groups != 0 || outChannels % groups != 0 {
            throw .invalidShape(
                "conv transpose group " + String(groups) + " must divide input channels " + String(inChannels)
                    + " and output channels " + String(outChannels))
        }
        if outHeight <= 0 || outWidth <= 0 { throw .invalidShape("conv transpose output would be empty") }
    }
}
