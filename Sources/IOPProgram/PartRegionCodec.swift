import IOPWire

/// The regions of a segment's tensors that parts read and write, as bundles store them, and the checks
/// that keep a decoded region inside its tensor.
extension BoardPart.Input {
    /// Whether selecting this part from a tensor of `tensor` elements reads inside it and yields `count`.
    func fits(tensor: Int, count n: Int) -> Bool {
        switch self {
        case .all: return n == tensor
        case .elements(let r): return r.upperBound <= tensor && r.count == n
        case .rows(let rows, let c, let h, let w):
            return rows.upperBound <= h && c * h * w <= tensor && rows.count * c * w == n
        case .tile(let rows, let columns, let c, let h, let w):
            return rows.upperBound <= h && columns.upperBound <= w && c * h * w <= tensor
                && rows.count * columns.count * c == n
        }
    }
}

extension BoardPart.Output {
    /// Whether placing `count` results into a tensor of `tensor` elements writes inside it.
    func fits(tensor: Int, count n: Int) -> Bool {
        switch self {
        case .all, .partialSum: return n <= tensor
        case .elements(let r): return r.upperBound <= tensor && r.count == n
        case .rows(let rows, let c, let h, let w):
            return rows.upperBound <= h && c * h * w <= tensor && rows.count * c * w == n
        case .tile(let rows, let columns, let c, let h, let w):
            return rows.upperBound <= h && columns.upperBound <= w && c * h * w <= tensor
                && rows.count * columns.count * c == n
        }
    }
}

/// A part's input or output on disk: tag 0 whole, 1 elements, 2 rows, 3 partial sum (outputs only), 4 tile.
///
///     u8 tag, then for 1: u32 first, end; for 2: u32 first row, end row, channels, height, width;
///     for 4: u32 first row, end row, first column, end column, channels, height, width
extension BoardPart.Input {
    func write(to w: inout ByteWriter<GrowingBytes>) {
        switch self {
        case .all: w.write(UInt8(0))
        case .elements(let r): writeRegion(1, r, [], to: &w)
        case .rows(let r, let c, let h, let width): writeRegion(2, r, [c, h, width], to: &w)
        case .tile(let r, let cols, let c, let h, let width):
            writeRegion(4, r, [cols.lowerBound, cols.upperBound, c, h, width], to: &w)
        }
    }

    static func read(_ r: inout ByteReader) throws(WireError) -> BoardPart.Input {
        switch try r.read(UInt8.self) {
        case 0: return .all
        case 1: return .elements(try readRange(&r))
        case 2: let (rows, c, h, w) = try readRowBand(&r); return .rows(rows, channels: c, height: h, width: w)
        case 4:
            let rows = try readRange(&r), columns = try readRange(&r), (c, h, w) = try readShape(&r)
            return .tile(rows, columns: columns, channels: c, height: h, width: w)
        default: throw .malformedPayload
        }
    }
}

extension BoardPart.Output {
    func write(to w: inout ByteWriter<GrowingBytes>) {
        switch self {
        case .all: w.write(UInt8(0))
        case .elements(let r): writeRegion(1, r, [], to: &w)
        case .rows(let r, let c, let h, let width): writeRegion(2, r, [c, h, width], to: &w)
        case .tile(let r, let cols, let c, let h, let width):
            writeRegion(4, r, [cols.lowerBound, cols.upperBound, c, h, width], to: &w)
        case .partialSum: w.write(UInt8(3))
        }
    }

    static func read(_ r: inout ByteReader) throws(WireError) -> BoardPart.Output {
        switch try r.read(UInt8.self) {
        case 0: return .all
        case 1: return .elements(try readRange(&r))
        case 2: let (rows, c, h, w) = try readRowBand(&r); return .rows(rows, channels: c, height: h, width: w)
        case 4:
            let rows = try readRange(&r), columns = try readRange(&r), (c, h, w) = try readShape(&r)
            return .tile(rows, columns: columns, channels: c, height: h, width: w)
        case 3: return .partialSum
        default: throw .malformedPayload
        }
    }
}

private func writeRegion(_ tag: UInt8, _ r: Range<Int>, _ extra: [Int], to w: inout ByteWriter<GrowingBytes>) {
    w.write(tag); w.write(u32: r.lowerBound); w.write(u32: r.upperBound)
    for v in extra { w.write(u32: v) }
}

private func readRange(_ r: inout ByteReader) throws(WireError) -> Range<Int> {
    let lo = try r.readInt(), hi = try r.readInt()
    guard lo <= hi else { throw .malformedPayload }
    return lo..<hi
}

private func readRowBand(_ r: inout ByteReader) throws(WireError) -> (Range<Int>, Int, Int, Int) {
    let rows = try readRange(&r), (c, h, w) = try readShape(&r)
    return (rows, c, h, w)
}

private func readShape(_ r: inout ByteReader) throws(WireError) -> (Int, Int, Int) {
    // Bounded so channels x height x width cannot overflow.
    let c = try r.readInt(atMost: 1 << 20), h = try r.readInt(atMost: 1 << 20), w = try r.readInt(atMost: 1 << 20)
    return (c, h, w)
}
