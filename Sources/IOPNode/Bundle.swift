import IOPCore
import IOPWire

/// What `iop compile` writes and `iop-node leader` runs: the boards and, for
/// every segment, each board's part (its layers with their weight shards,
/// what it reads and produces) and the leader's reduction. One file:
///
///     "IOPB", u16 version, u16 0, u32 Adler-32 of the body, u32 body length, body
public struct Bundle {
    public struct BoardEntry: Equatable, Sendable {
        public var name: String, endpoint: String, budgetBytes: Int
        public init(name: String, endpoint: String, budgetBytes: Int) { self.name = name; self.endpoint = endpoint; self.budgetBytes = budgetBytes }
    }
    public var boards: [BoardEntry]
    public var leaderIndex: Int
    public var segments: [SegmentProgram]
    public init(boards: [BoardEntry], leaderIndex: Int, segments: [SegmentProgram]) {
        self.boards = boards; self.leaderIndex = leaderIndex; self.segments = segments
    }

    static let magic: UInt32 = 0x4250_4F49  // "IOPB"
    public static let version: UInt16 = 1
    static let headerSize = 16

    public func encoded() -> [UInt8] {
        var body = ByteWriter()
        body.u32(boards.count)
        for b in boards { body.string(b.name); body.string(b.endpoint); body.u64(b.budgetBytes) }
        body.u32(leaderIndex)
        body.u32(segments.count)
        for (k, s) in segments.enumerated() {
            body.u32(s.inputCount); body.u32(s.outputCount); body.u32(s.partialCount); body.u32(s.parts.count)
            for p in s.parts {
                body.u32(p.board)
                switch p.input {
                case .all: body.u8(0)
                case .elements(let r): body.region(1, r)
                case .rows(let r, let c, let h, let w): body.region(2, r, [c, h, w])
                }
                switch p.output {
                case .all: body.u8(0)
                case .elements(let r): body.region(1, r)
                case .rows(let r, let c, let h, let w): body.region(2, r, [c, h, w])
                case .partialSum: body.u8(3)
                }
                body.program(StepProgram(step: UInt32(k), layers: p.layers))
            }
            body.program(StepProgram(step: UInt32(k), layers: s.reduceLayers))
        }
        var out = ByteWriter()
        out.u32(Int(Bundle.magic)); out.u16(Bundle.version); out.u16(0)
        out.u32(Int(body.bytes.withUnsafeBytes { adler32($0) })); out.u32(body.bytes.count)
        return out.bytes + body.bytes
    }

    public static func decode(_ bytes: UnsafeRawBufferPointer) throws(WireError) -> Bundle {
        guard bytes.count >= headerSize else { throw .truncated(needed: headerSize, got: bytes.count) }
        var h = PayloadReader(UnsafeRawBufferPointer(rebasing: bytes[0..<headerSize]))
        let magic = try h.read(UInt32.self)
        guard magic == Bundle.magic else { throw .badMagic(magic) }
        let version = try h.read(UInt16.self)
        guard version == Bundle.version else { throw .unsupportedVersion(version) }
        _ = try h.read(UInt16.self)
        let sum = try h.read(UInt32.self), length = Int(try h.read(UInt32.self))
        guard bytes.count - headerSize == length else { throw .lengthMismatch(declared: length, actual: bytes.count - headerSize) }
        let body = UnsafeRawBufferPointer(rebasing: bytes[headerSize...])
        let actual = adler32(body)
        guard actual == sum else { throw .checksumMismatch(expected: sum, actual: actual) }
        var r = PayloadReader(body)
        func int(_ r: inout PayloadReader) throws(WireError) -> Int { Int(try r.read(UInt32.self)) }
        let boardCount = try int(&r)
        guard boardCount > 0, boardCount <= 256 else { throw .malformedPayload }
        var boards: [BoardEntry] = []
        for _ in 0..<boardCount {
            let name = String(decoding: try r.readBytes(), as: UTF8.self), endpoint = String(decoding: try r.readBytes(), as: UTF8.self)
            boards.append(BoardEntry(name: name, endpoint: endpoint, budgetBytes: Int(try r.read(UInt64.self))))
        }
        let leader = try int(&r)
        guard leader < boardCount else { throw .malformedPayload }
        let segmentCount = try int(&r)
        guard segmentCount <= 4096 else { throw .malformedPayload }
        var segments: [SegmentProgram] = []
        for _ in 0..<segmentCount {
            let inCount = try int(&r), outCount = try int(&r), partial = try int(&r), partCount = try int(&r)
            guard partCount <= boardCount else { throw .malformedPayload }
            var parts: [BoardPart] = []
            for _ in 0..<partCount {
                let board = try int(&r)
                guard board < boardCount else { throw .malformedPayload }
                let input: BoardPart.Input, output: BoardPart.Output
                switch try region(&r) {
                case .whole: input = .all
                case .elements(let e): input = .elements(e)
                case .rows(let rows, let c, let h, let w): input = .rows(rows, channels: c, height: h, width: w)
                case .partialSum: throw .malformedPayload
                }
                switch try region(&r) {
                case .whole: output = .all
                case .elements(let e): output = .elements(e)
                case .rows(let rows, let c, let h, let w): output = .rows(rows, channels: c, height: h, width: w)
                case .partialSum: output = .partialSum
                }
                parts.append(BoardPart(board: board, layers: try program(&r).layers, input: input, output: output))
            }
            segments.append(SegmentProgram(parts: parts, reduceLayers: try program(&r).layers, inputCount: inCount,
                                           outputCount: outCount, partialCount: partial))
        }
        guard r.isAtEnd else { throw .malformedPayload }
        return Bundle(boards: boards, leaderIndex: leader, segments: segments)
    }

    /// The on-disk form of a part's input or output: tag 0 whole, 1 elements, 2 rows, 3 partial sum.
    enum Region { case whole, elements(Range<Int>), rows(Range<Int>, Int, Int, Int), partialSum }

    static func region(_ r: inout PayloadReader) throws(WireError) -> Region {
        let tag = try r.read(UInt8.self)
        if tag == 0 { return .whole }
        if tag == 3 { return .partialSum }
        guard tag == 1 || tag == 2 else { throw .malformedPayload }
        let lo = Int(try r.read(UInt32.self)), hi = Int(try r.read(UInt32.self))
        guard lo <= hi else { throw .malformedPayload }
        if tag == 1 { return .elements(lo..<hi) }
        return .rows(lo..<hi, Int(try r.read(UInt32.self)), Int(try r.read(UInt32.self)), Int(try r.read(UInt32.self)))
    }

    static func program(_ r: inout PayloadReader) throws(WireError) -> StepProgram {
        let n = Int(try r.read(UInt32.self))
        guard n <= r.remaining else { throw .malformedPayload }
        let start = r.offset
        try r.skip(n)
        return try r.bytesSlice(start..<(start + n)) { slice throws(WireError) in try ProgramCodec.decode(slice) }
    }
}

/// Appends little-endian fields to a growing byte array (host side: bundles).
struct ByteWriter {
    var bytes: [UInt8] = []
    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u16(_ v: UInt16) { bytes.append(UInt8(v & 0xff)); bytes.append(UInt8(v >> 8)) }
    mutating func u32(_ v: Int) { for i in 0..<4 { bytes.append(UInt8((UInt32(v) >> (8 * UInt32(i))) & 0xff)) } }
    mutating func u64(_ v: Int) { for i in 0..<8 { bytes.append(UInt8((UInt64(v) >> (8 * UInt64(i))) & 0xff)) } }
    mutating func region(_ tag: UInt8, _ r: Range<Int>, _ extra: [Int] = []) {
        u8(tag); u32(r.lowerBound); u32(r.upperBound)
        for v in extra { u32(v) }
    }
    mutating func string(_ s: String) { let b = Array(s.utf8); u16(UInt16(b.count)); bytes += b }
    mutating func program(_ p: StepProgram) {
        var buffer = [UInt8](repeating: 0, count: ProgramCodec.encodedSize(p))
        var n = 0
        buffer.withUnsafeMutableBytes { b in n = (try? ProgramCodec.encode(p, into: b)) ?? 0 }
        u32(n); bytes += buffer[0..<n]
    }
}
