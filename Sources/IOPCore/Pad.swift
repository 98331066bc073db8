/// How Pad fills the border: a constant, the planes mirrored about their edge (not repeating it),
/// or the edge repeated (ONNX `constant`, `reflect`, `edge`).
public enum PadMode: Int, Equatable, Sendable {
    case constant = 0
    case reflect, edge
}

/// Pad on the planes of a CHW tensor (batch 1), ONNX semantics.
public struct PadGeometry: Equatable, Sendable {
    public var channels, inHeight, inWidth: Int
    public var top, left, bottom, right: Int
    public var mode: PadMode
    /// The fill of a constant pad.
    public var value: Float

    public init(
        channels: Int, inHeight: Int, inWidth: Int, top: Int, left: Int, bottom: Int, right: Int, mode: PadMode,
        value: Float = 0
    ) {
        self.channels = channels; self.inHeight = inHeight; self.inWidth = inWidth
        self.top = top; self.left = left; self.bottom = bottom; self.right = right
        self.mode = mode; self.value = value
    }

    public var outHeight: Int { inHeight + top + bottom }
    public var outWidth: Int { inWidth + left + right }
    public var inputCount: Int { channels * inHeight * inWidth }
    public var outputCount: Int { channels * outHeight * outWidth }

    public func validate() throws(CoreError) {
        if channels <= 0 || inHeight <= 0 || inWidth <= 0 { throw .invalidShape("empty tensor") }
        if top < 0 || left < 0 || bottom < 0 || right < 0 { throw .invalidShape("pads must be >= 0") }
        // A mirror reaches at most one plane's width beyond the edge.
        if mode == .reflect && (max(top, bottom) >= inHeight || max(left, right) >= inWidth) {
            throw .invalidShape("reflect pads must be smaller than the plane")
        }
    }

    /// The input index output index `i` (already shifted by the leading pad) reads along an axis of
    /// `n`, or -1 for the constant fill.
    @inline(__always) func source(_ i: Int, _ n: Int) -> Int {
        if i >= 0 && i < n { return i }
        switch mode {
        case .constant: return -1
        case .edge: return i < 0 ? 0 : n - 1
        case .reflect: return i < 0 ? -i : 2 * (n - 1) - i
        }
    }
}

public enum PadKernel {
    public static func run(_ g: PadGeometry, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>) {
        for c in 0..<g.channels {
            let src = input + c * g.inHeight * g.inWidth, dst = output + c * g.outHeight * g.outWidth
            for oy in 0..<g.outHeight {
                let row = dst + oy * g.outWidth, iy = g.source(oy - g.top, g.inHeight)
                if iy < 0 {
                    row.update(repeating: g.value, count: g.outWidth)
                    continue
                }
                let from = src + iy * g.inWidth
                (row + g.left).update(from: from, count: g.inWidth)
                for ox in 0..<g.left { row[ox] = at(from, g.source(ox - g.left, g.inWidth), g.value) }
                for ox in (g.left + g.inWidth)..<g.outWidth {
                    row[ox] = at(from, g.source(ox - g.left, g.inWidth), g.value)
                }
            }
        }
    }

    @inline(__always) static func at(_ row: UnsafePointer<Float>, _ i: Int, _ fill: Float) -> Float {
        i < 0 ? fill : row[i]
    }
}
