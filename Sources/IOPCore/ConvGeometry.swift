/// Geometry of one 2-D convolution on a CHW tensor (batch 1). Output sizes are
/// resolved by the loader (auto_pad, explicit pads); the kernel only checks them.
public struct ConvGeometry: Equatable, Sendable {
    public var inChannels, inHeight, inWidth: Int
    public var outChannels, outHeight, outWidth: Int
    public var kernelH, kernelW: Int
    public var strideH, strideW: Int
    public var dilationH, dilationW: Int
    public var padTop, padLeft, padBottom, padRight: Int
    public var groups: Int
    /// The kernel that runs the conv: direct, or Winograd F(4x4, 3x3) (`WinogradKernel`, 3x3 stride-1
    /// convs only). Part of the geometry so every slice of a layer and every program keeps the choice.
    public var algorithm: ConvAlgorithm

    public init(
        inChannels: Int, inHeight: Int, inWidth: Int, outChannels: Int,
        kernelH: Int, kernelW: Int, strideH: Int = 1, strideW: Int = 1,
        dilationH: Int = 1, dilationW: Int = 1,
        padTop: Int = 0, padLeft: Int = 0, padBottom: Int = 0, padRight: Int = 0,
        groups: Int = 1, algorithm: ConvAlgorithm = .direct
    ) {
        self.inChannels = inChannels; self.inHeight = inHeight; self.inWidth = inWidth
        self.outChannels = outChannels
        self.kernelH = kernelH; self.kernelW = kernelW
        self.strideH = strideH; self.strideW = strideW
        self.dilationH = dilationH; self.dilationW = dilationW
        self.padTop = padTop; self.padLeft = padLeft; self.padBottom = padBottom; self.padRight = padRight
        self.groups = groups
        self.algorithm = algorithm
        let effH = (kernelH - 1) * dilationH + 1, effW = (kernelW - 1) * dilationW + 1
        outHeight = windowCount(extent: inHeight + padTop + padBottom, kernel: effH, stride: strideH)
        outWidth = windowCount(extent: inWidth + padLeft + padRight, kernel: effW, stride: strideW)
    }

    /// The same convolution over a slice of its tensors: the fields given change, every other one
    /// (groups, strides, dilations, the other pads) is kept, and the output size follows. The one
    /// way partitions reshape a conv, so no slice can drop a field.
    public func sliced(
        inChannels: Int? = nil, inHeight: Int? = nil, inWidth: Int? = nil, outChannels: Int? = nil,
        padTop: Int? = nil, padBottom: Int? = nil, padLeft: Int? = nil, padRight: Int? = nil
    ) -> ConvGeometry {
        ConvGeometry(
            inChannels: inChannels ?? self.inChannels, inHeight: inHeight ?? self.inHeight,
            inWidth: inWidth ?? self.inWidth, outChannels: outChannels ?? self.outChannels, kernelH: kernelH,
            kernelW: kernelW, strideH: strideH, strideW: strideW, dilationH: dilationH, dilationW: dilationW,
            padTop: padTop ?? self.padTop, padLeft: padLeft ?? self.padLeft, padBottom: padBottom ?? self.padBottom,
            padRight: padRight ?? self.padRight, groups: groups, algorithm: algorithm)
    }

    /// A 3x3, stride-1, undilated, ungrouped conv: the shape Winograd F(4x4, 3x3) computes.
    public var isWinogradEligible: Bool {
        kernelH == 3 && kernelW == 3 && strideH == 1 && strideW == 1 && dilationH == 1 && dilationW == 1
            && groups == 1
    }
    public var usesWinograd: Bool { algorithm == .winograd }

    public var paddedHeight: Int { inHeight + padTop + padBottom }
    public var paddedWidth: Int { inWidth + padLeft + padRight }
    public var inGroupChannels: Int { inChannels / groups }
    public var outGroupChannels: Int { outChannels / groups }
    public var isPadded: Bool { padTop | padLeft | padBottom | padRight != 0 }
    /// One input channel per group: the depthwise kernel, not the blocked one.
    public var isDepthwise: Bool { inGroupChannels == 1 && groups > 1 }
    public var inputCount: Int { inChannels * inHeight * inWidth }
    public var outputCount: Int { outChannels * outHeight * outWidth }
    public var weightCount: Int { outChannels * inGroupChannels * kernelH * kernelW }
    /// Multiply-adds times two.
    public var flops: Int { 2 * outputCount * inGroupChannels * kernelH * kernelW }

    public func validate() throws(CoreError) {
        if inChannels <= 0 || inHeight <= 0 || inWidth <= 0 || outChannels <= 0 {
            throw .invalidShape("conv sizes must be positive")
        }
        if kernelH <= 0 || kernelW <= 0 || strideH <= 0 || strideW <= 0 || dilationH <= 0 || dilationW <= 0 {
            throw .invalidShape("conv kernel, strides and dilations must be positive")
        }
        if padTop < 0 || padLeft < 0 || padBottom < 0 || padRight < 0 { throw .invalidShape("conv pads must be >= 0") }
        if groups <= 0 || inChannels % groups != 0 || outChannels % groups != 0 {
            throw .invalidShape(
                "conv group " + String(groups) + " must divide input channels "
                    + String(inChannels) + " and output channels " + String(outChannels))
        }
        if outHeight <= 0 || outWidth <= 0 { throw .invalidShape("conv output would be empty") }
        if usesWinograd && !isWinogradEligible { throw .invalidShape("Winograd needs a 3x3 stride-1 ungrouped conv") }
    }

    /// Stride-1 convs with a short reduction (the 3-channel first layer of an
    /// image model) use the row kernel: with few multiply-adds per output, the
    /// blocked kernel's per-pixel channel scatter would dominate. So do convs whose
    /// few output channels fill the blocked kernel's channel block by less than
    /// 0.8 of what the row kernel's 8-channel blocks and pixel chunks fill (with
    /// AVX-512's 64-channel blocks, MobileNetV2's 1x1 projections to 24 channels
    /// computed 64 and kept 24).
    public var usesRowKernel: Bool {
        guard !usesWinograd && !isDepthwise && strideW == 1 && outWidth >= 2 * KVec.scalarCount else { return false }
        if inGroupChannels * kernelH * kernelW <= 32 { return true }
        let chunk = rowPixelVectors * KVec.scalarCount, ocg = Double(outGroupChannels)
        let blockedFill = ocg / Double(roundUp(outGroupChannels, channelBlock))
        let rowFill =
            ocg / Double(roundUp(outGroupChannels, rowChannelBlock)) * Double(outWidth)
            / Double(roundUp(outWidth, chunk))
        return blockedFill < 0.8 * rowFill
    }
    /// Output channels one packed weight block holds for the chosen kernel.
    var packBlock: Int { usesRowKernel ? rowChannelBlock : channelBlock }

    /// Floats of the packed weight buffer (channel blocks padded with zeros).
    public var packedWeightCount: Int {
        if usesWinograd { return WinogradKernel.packedWeightCount(self) }
        if isDepthwise { return weightCount }
        return groups * roundUp(outGroupChannels, packBlock) * inGroupChannels * kernelH * kernelW
    }
    public var packedBiasCount: Int {
        isDepthwise ? outChannels : groups * roundUp(outGroupChannels, packBlock)
    }
    /// The blocked micro-kernel (`ConvKernel.tile`): neither Winograd, depthwise nor the row kernel.
    var usesBlockedKernel: Bool { !usesWinograd && !isDepthwise && !usesRowKernel }
    /// Terms of one output's reduction: a group's input channels times the kernel's taps.
    var reductionCount: Int { inGroupChannels * kernelH * kernelW }
    /// Floats of the zero-padded input copy, at the start of the scratch.
    var paddedInputCount: Int { isPadded ? inChannels * paddedHeight * paddedWidth : 0 }
    /// Floats of scratch the kernel needs: the zero-padded input copy, and for the blocked kernel its
    /// table of input offsets (one 32-bit slot per reduction term, the same size on every target).
    public var scratchCount: Int {
        if usesWinograd { return WinogradKernel.scratchCount(self) }
        return paddedInputCount + (usesBlockedKernel ? reductionCount : 0)
    }
}

/// How a conv is computed. Winograd trades 4x the weight memory (transformed weights) and some
/// rounding error for 4x fewer multiply-adds on 3x3 stride-1 convs.
public enum ConvAlgorithm: UInt8, Equatable, Sendable {
    case direct = 0
    case winograd = 1
}

/// Clamp applied when results are stored: none, ReLU (0, +inf) or Clip (lo, hi).
public struct Activation: Equatable, Sendable {
    public var low: Float, high: Float
    public init(low: Float, high: Float) { self.low = low; self.high = high }
    public static let none = Activation(low: -.infinity, high: .infinity)
    public static let relu = Activation(low: 0, high: .infinity)
    /// Compare-and-select lowers to vmaxps/vminps (fmax/fmin on NEON) with no
    /// branches; `pointwiseMax`/`pointwiseMin` go lane by lane through the NaN
    /// rules of `Float.maximum`. NaN passes through, as in the scalar form.
    /// Written for `KVec` itself, beside the generic form: with the generic one alone the kernels' epilogues
    /// ran 3x slower (MobileNetV2 at 64x64, `iop bench`: 4.3 -> 12.7 ms; depthwise and elementwise 27-80x in
    /// `iop-node profile`), the vector compare-and-select no longer specialised at every call.
    @inline(__always) func apply(_ v: KVec) -> KVec {
        let lo = KVec(repeating: low), hi = KVec(repeating: high)
        let m = v.replacing(with: lo, where: v .< lo)
        return m.replacing(with: hi, where: m .> hi)
    }
    /// The same on a vector of another width (the depthwise kernel's narrow rows).
    @inline(__always) func apply<V: SIMD>(_ v: V) -> V where V.Scalar == Float {
        let lo = V(repeating: low), hi = V(repeating: high)
        let m = v.replacing(with: lo, where: v .< lo)
        return m.replacing(with: hi, where: m .> hi)
    }
    @inline(__always) func apply(_ v: Float) -> Float { Swift.min(Swift.max(v, low), high) }
}
