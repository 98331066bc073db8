import IOPCore

/// What one board runs for one segment, and which part of the segment's input
/// it reads and of its output it produces. The layers are ordinary IOPCore
/// layers with sliced weights (or none, when the planner only lays them out);
/// `BoardLayout` turns the parts into each board's program.
public struct BoardPart {
    public enum Input: Equatable, Sendable {
        /// The whole segment input.
        case all
        /// A contiguous run of elements (an IC slice: channels [c0, c1) of CHW).
        case elements(Range<Int>)
        /// Rows [r0, r1) of every channel of a CHW tensor.
        case rows(Range<Int>, channels: Int, height: Int, width: Int)
        /// The rectangle rows [r0, r1) x columns [c0, c1) of every channel of a CHW tensor (a fused grid's tile).
        case tile(Range<Int>, columns: Range<Int>, channels: Int, height: Int, width: Int)
    }
    public enum Output: Equatable, Sendable {
        /// The whole segment output (the leader running a stage alone).
        case all
        /// Elements [e0, e1) of the output (OC slices are contiguous in CHW).
        case elements(Range<Int>)
        /// Rows [r0, r1) of every output channel.
        case rows(Range<Int>, channels: Int, height: Int, width: Int)
        /// The rectangle rows [r0, r1) x columns [c0, c1) of every output channel.
        case tile(Range<Int>, columns: Range<Int>, channels: Int, height: Int, width: Int)
        /// A partial sum of the whole pre-bias output, to be added up at the leader.
        case partialSum
    }
    public var board: Int
    public var layers: [Layer]
    public var input: Input
    public var output: Output
    public init(board: Int, layers: [Layer], input: Input, output: Output) {
        self.board = board; self.layers = layers; self.input = input; self.output = output
    }
}

/// The parts of one segment, plus what the leader runs after a reduction.
public struct SegmentProgram {
    public var parts: [BoardPart]
    /// After summing partial sums: bias, activation and the stage's pools.
    public var reduceLayers: [Layer]
    public var inputCount: Int
    public var outputCount: Int
    /// Elements of each partial sum (IC and IOP segments).
    public var partialCount: Int
    /// How the segment's activations cross the wire, both ways.
    public var wire: WirePrecision = .fp32
    /// Whether the reduction's last layer is a residual's `add` whose second input is the segment's
    /// input, which the leader still holds (a shortcut that crosses no link).
    public var addsShortcut = false
    public init(parts: [BoardPart], reduceLayers: [Layer], inputCount: Int, outputCount: Int, partialCount: Int) {
        self.parts = parts; self.reduceLayers = reduceLayers; self.inputCount = inputCount
        self.outputCount = outputCount; self.partialCount = partialCount
    }
    /// Elements the leader assembles before any reduction.
    public var assembledCount: Int { partialCount > 0 ? partialCount : outputCount }
}

extension BoardPart.Input {
    /// Elements this part receives of a segment input of `whole` elements.
    public func count(ofWhole whole: Int) -> Int {
        switch self {
        case .all: return whole
        case .elements(let r): return r.count
        case .rows(let r, let c, _, let w): return r.count * c * w
        case .tile(let r, let cols, let c, _, _): return r.count * cols.count * c
        }
    }

    /// Copies the part a board receives out of the leader's whole tensor.
    public func select(from x: UnsafePointer<Float>, count: Int, into out: UnsafeMutablePointer<Float>) -> Int {
        switch self {
        case .all:
            out.update(from: x, count: count)
            return count
        case .elements(let r):
            out.update(from: x + r.lowerBound, count: r.count)
            return r.count
        case .rows(let rows, let channels, let height, let width):
            let band = rows.count * width
            for c in 0..<channels {
                (out + c * band).update(from: x + (c * height + rows.lowerBound) * width, count: band)
            }
            return channels * band
        case .tile(let rows, let columns, let channels, let height, let width):
            var o = out
            for c in 0..<channels {
                for r in rows {
                    o.update(from: x + (c * height + r) * width + columns.lowerBound, count: columns.count)
                    o += columns.count
                }
            }
            return channels * rows.count * columns.count
        }
    }

    /// `select`, narrowed to fp16 on the way (one pass): the part's halves at `out`.
    public func selectNarrowing(from x: UnsafePointer<Float>, count: Int, into out: UnsafeMutableRawPointer) -> Int {
        switch self {
        case .all:
            Half.narrow(x, count: count, into: out)
            return count
        case .elements(let r):
            Half.narrow(x + r.lowerBound, count: r.count, into: out)
            return r.count
        case .rows(let rows, let channels, let height, let width):
            let band = rows.count * width
            for c in 0..<channels {
                Half.narrow(x + (c * height + rows.lowerBound) * width, count: band, into: out + 2 * c * band)
            }
            return channels * band
        case .tile(let rows, let columns, let channels, let height, let width):
            var o = out
            for c in 0..<channels {
                for r in rows {
                    Half.narrow(x + (c * height + r) * width + columns.lowerBound, count: columns.count, into: o)
                    o += 2 * columns.count
                }
            }
            return channels * rows.count * columns.count
        }
    }
}

extension BoardPart.Output {
    /// Puts a board's result into the leader's tensor; partial sums add up.
    public func place(_ y: UnsafePointer<Float>, count: Int, into out: UnsafeMutablePointer<Float>) {
        switch self {
        case .all: out.update(from: y, count: count)
        case .elements(let r): (out + r.lowerBound).update(from: y, count: r.count)
        case .partialSum: for i in 0..<count { out[i] += y[i] }
        case .rows(let rows, let channels, let height, let width):
            let band = rows.count * width
            for c in 0..<channels {
                (out + (c * height + rows.lowerBound) * width).update(from: y + c * band, count: band)
            }
        case .tile(let rows, let columns, let channels, let height, let width):
            var i = y
            for c in 0..<channels {
                for r in rows {
                    (out + (c * height + r) * width + columns.lowerBound).update(from: i, count: columns.count)
                    i += columns.count
                }
            }
        }
    }

    /// `place` for a result that came as fp16: widened straight into place, or added in fp32.
    public func placeWidening(_ h: UnsafeRawPointer, count: Int, into out: UnsafeMutablePointer<Float>) {
        switch self {
        case .all: Half.widen(h, count: count, into: out)
        case .elements(let r): Half.widen(h, count: r.count, into: out + r.lowerBound)
        case .partialSum: Half.widenAdding(h, count: count, onto: out)
        case .rows(let rows, let channels, let height, let width):
            let band = rows.count * width
            for c in 0..<channels {
                Half.widen(h + 2 * c * band, count: band, into: out + (c * height + rows.lowerBound) * width)
            }
        case .tile(let rows, let columns, let channels, let height, let width):
            var i = h
            for c in 0..<channels {
                for r in rows {
                    Half.widen(i, count: columns.count, into: out + (c * height + r) * width + columns.lowerBound)
                    i += 2 * columns.count
                }
            }
        }
    }
}
