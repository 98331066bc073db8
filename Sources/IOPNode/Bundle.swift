import CIOPSystem
import IOPCore
import IOPWire

/// What `iop compile` writes and `iop-node leader` runs, in one file: the
/// boards, every board's program (flat ops naming arena offsets), the leader's
/// schedule, and every board's weight shards.
///
///     "IOPB", u16 version, u16 0, u32 Adler-32 of the body, u32 body length, body
///     body: boards, leader, schedule, programs, padding to 4 bytes, shards
///
/// Shard floats sit 4-byte aligned, so a leader that maps the file reads them in place.
public struct Bundle {
    public struct BoardEntry: Equatable, Sendable {
        public var name: String, endpoint: String, budgetBytes: Int
        public init(name: String, endpoint: String, budgetBytes: Int) { self.name = name; self.endpoint = endpoint; self.budgetBytes = budgetBytes }
    }
    /// One op's whole parameters inside the bundle bytes (byte offsets of 4-byte-aligned floats).
    public struct ShardRef: Equatable, Sendable {
        public var op: Int, channels: Int, weights: Int
        public var bias: Int?
    }
    public var boards: [BoardEntry]
    public var leaderIndex: Int
    public var schedule: [LeaderSegment]
    public var programs: [BoardProgram]
    /// Where each board's encoded program lies in the bundle (the leader forwards it as is).
    public var programBytes: [Range<Int>]
    public var shards: [[ShardRef]]

    static let magic: UInt32 = 0x4250_4F49  // "IOPB"
    public static let version: UInt16 = 2
    static let headerSize = 16

    /// Lays out every board's arena for `segments` and writes the bundle.
    public static func encode(boards: [BoardEntry], leaderIndex: Int, segments: [SegmentProgram]) -> [UInt8] {
        let (programs, schedule, sources) = BoardLayout.compile(segments, boards: boards.count, leader: leaderIndex)
        var body = ByteWriter()
        body.u32(boards.count)
        for b in boards { body.string(b.name); body.string(b.endpoint); body.u64(b.budgetBytes) }
        body.u32(leaderIndex)
        body.u32(schedule.count)
        for s in schedule {
            for v in [s.inputCount, s.outputCount, s.assembledCount, s.sumsPartials ? 1 : 0, s.current, s.assembled, s.sendPayload, s.receivePayload] { body.u32(v) }
            if let own = s.own {
                body.u32(own.step + 1); body.input(own.input); body.output(own.output)
            } else { body.u32(0) }
            body.u32(s.reduce.map { $0 + 1 } ?? 0)
            body.u32(s.remote.count)
            for r in s.remote { body.u32(r.board); body.input(r.input); body.u32(r.inputCount); body.output(r.output); body.u32(r.outputCount) }
        }
        for p in programs {
            let bytes = ProgramCodec.encode(p)
            body.u32(bytes.count); body.bytes += bytes
        }
        while (headerSize + body.bytes.count) % 4 != 0 { body.u8(0) }
        for layers in sources {
            let records = layers.enumerated().filter { $0.element.kind.parameterChannels > 0 }
            body.u32(records.count)
            for (op, layer) in records {
                body.u32(op); body.u32(layer.kind.parameterChannels); body.u32(layer.bias.isEmpty ? 0 : 1)
                body.floats(layer.weights); body.floats(layer.bias)
            }
        }
        var out = ByteWriter()
        out.u32(Int(Bundle.magic)); out.u16(Bundle.version); out.u16(0)
        out.u32(Int(body.bytes.withUnsafeBytes { adler32($0) })); out.u32(body.bytes.count)
        return out.bytes + body.bytes
    }

    /// Decodes and checks a bundle. With `releasingPages` (a read-only file
    /// mapping), each piece's pages are dropped once checksummed, so checking a
    /// large bundle never holds it all in memory.
    public static func decode(_ bytes: UnsafeRawBufferPointer, releasingPages: Bool = false) throws(WireError) -> Bundle {
        guard bytes.count >= headerSize else { throw .truncated(needed: headerSize, got: bytes.count) }
        var h = PayloadReader(UnsafeRawBufferPointer(rebasing: bytes[0..<headerSize]))
        let magic = try h.read(UInt32.self)
        guard magic == Bundle.magic else { throw .badMagic(magic) }
        let version = try h.read(UInt16.self)
        guard version == Bundle.version else { throw .unsupportedVersion(version) }
        _ = try h.read(UInt16.self)
        let sum = try h.read(UInt32.self), length = Int(try h.read(UInt32.self))
        guard bytes.count - headerSize == length else { throw .lengthMismatch(declared: length, actual: bytes.count - headerSize) }
        var actual: UInt32 = 1
        var at = headerSize
        while at < bytes.count {
            let piece = UnsafeRawBufferPointer(rebasing: bytes[at..<min(bytes.count, at + (8 << 20))])
            actual = adler32(piece, continuing: actual)
            if releasingPages { iop_release_mapped(piece.baseAddress, piece.count) }
            at += piece.count
        }
        guard actual == sum else { throw .checksumMismatch(expected: sum, actual: actual) }
        // Offsets below are into the whole file, so shard references point into it directly.
        var r = PayloadReader(bytes)
        try r.skip(headerSize)
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
        guard segmentCount > 0, segmentCount <= 4096 else { throw .malformedPayload }
        var schedule: [LeaderSegment] = []
        for _ in 0..<segmentCount {
            var s = LeaderSegment(inputCount: try int(&r), outputCount: try int(&r), assembledCount: try int(&r), sumsPartials: try int(&r) == 1,
                                  current: try int(&r), assembled: try int(&r), sendPayload: try int(&r), receivePayload: try int(&r),
                                  remote: [], own: nil, reduce: nil)
            let own = try int(&r)
            if own > 0 { s.own = .init(step: own - 1, input: try input(&r), output: try output(&r)) }
            let reduce = try int(&r)
            if reduce > 0 { s.reduce = reduce - 1 }
            let remoteCount = try int(&r)
            guard remoteCount < boardCount else { throw .malformedPayload }
            for _ in 0..<remoteCount {
                let board = try int(&r)
                guard board < boardCount, board != leader else { throw .malformedPayload }
                s.remote.append(RemotePart(board: board, input: try input(&r), inputCount: try int(&r), output: try output(&r), outputCount: try int(&r)))
            }
            schedule.append(s)
        }
        var programs: [BoardProgram] = [], programBytes: [Range<Int>] = []
        for _ in 0..<boardCount {
            let n = try int(&r)
            let start = r.offset
            try r.skip(n)
            programs.append(try r.bytesSlice(start..<(start + n)) { slice throws(WireError) in try ProgramCodec.decode(slice) })
            programBytes.append(start..<(start + n))
        }
        while r.offset % 4 != 0 { _ = try r.read(UInt8.self) }
        var shards: [[ShardRef]] = []
        for d in 0..<boardCount {
            let count = try int(&r)
            guard count <= programs[d].ops.count else { throw .malformedPayload }
            var refs: [ShardRef] = []
            for _ in 0..<count {
                let op = try int(&r), channels = try int(&r), flags = try int(&r)
                guard op < programs[d].ops.count, flags <= 1 else { throw .malformedPayload }
                let kind = programs[d].ops[op].kind
                guard channels == kind.parameterChannels, channels > 0 else { throw .malformedPayload }
                var ref = ShardRef(op: op, channels: channels, weights: r.offset, bias: nil)
                try r.skip(4 * channels * kind.weightsPerChannel)
                if flags == 1 { ref.bias = r.offset; try r.skip(4 * channels) }
                refs.append(ref)
            }
            shards.append(refs)
        }
        guard r.isAtEnd else { throw .malformedPayload }
        let bundle = Bundle(boards: boards, leaderIndex: leader, schedule: schedule, programs: programs, programBytes: programBytes, shards: shards)
        guard bundle.scheduleFitsLeader else { throw .malformedPayload }
        return bundle
    }

    /// Whether the leader's schedule stays inside its arena and its program, and each board part inside its tensors.
    var scheduleFitsLeader: Bool {
        let p = programs[leaderIndex]
        func inside(_ at: Int, _ n: Int) -> Bool { at >= 0 && n >= 0 && at <= p.activationFloats - n }
        for s in schedule {
            guard inside(s.current, max(s.inputCount, s.outputCount)), inside(s.assembled, s.assembledCount), s.inputCount > 0 else { return false }
            if !s.remote.isEmpty {
                guard s.sendPayload >= ArenaLayout.frameRoom, inside(s.sendPayload, s.largestRemoteInput),
                      s.receivePayload >= ArenaLayout.frameRoom, inside(s.receivePayload, s.largestRemoteOutput) else { return false }
            }
            for r in s.remote {
                guard r.input.fits(tensor: s.inputCount, count: r.inputCount), r.output.fits(tensor: s.assembledCount, count: r.outputCount)
                else { return false }
            }
            if let own = s.own {
                guard own.step < p.steps.count else { return false }
                let step = p.steps[own.step]
                guard own.input.fits(tensor: s.inputCount, count: step.inputCount), own.output.fits(tensor: s.assembledCount, count: step.outputCount)
                else { return false }
            }
            if let reduce = s.reduce {
                guard reduce < p.steps.count, p.steps[reduce].outputCount == s.outputCount else { return false }
            } else if s.assembledCount < s.outputCount { return false }
        }
        return true
    }

    /// A part's input or output on disk: tag 0 whole, 1 elements, 2 rows, 3 partial sum (outputs only).
    static func input(_ r: inout PayloadReader) throws(WireError) -> BoardPart.Input {
        switch try r.read(UInt8.self) {
        case 0: return .all
        case 1: return .elements(try range(&r))
        case 2: let (rows, c, h, w) = try rowBand(&r); return .rows(rows, channels: c, height: h, width: w)
        default: throw .malformedPayload
        }
    }

    static func output(_ r: inout PayloadReader) throws(WireError) -> BoardPart.Output {
        switch try r.read(UInt8.self) {
        case 0: return .all
        case 1: return .elements(try range(&r))
        case 2: let (rows, c, h, w) = try rowBand(&r); return .rows(rows, channels: c, height: h, width: w)
        case 3: return .partialSum
        default: throw .malformedPayload
        }
    }

    static func range(_ r: inout PayloadReader) throws(WireError) -> Range<Int> {
        let lo = Int(try r.read(UInt32.self)), hi = Int(try r.read(UInt32.self))
        guard lo <= hi else { throw .malformedPayload }
        return lo..<hi
    }

    static func rowBand(_ r: inout PayloadReader) throws(WireError) -> (Range<Int>, Int, Int, Int) {
        let rows = try range(&r)
        let c = Int(try r.read(UInt32.self)), h = Int(try r.read(UInt32.self)), w = Int(try r.read(UInt32.self))
        // Bounded so channels x height x width cannot overflow.
        guard c <= 1 << 20, h <= 1 << 20, w <= 1 << 20 else { throw .malformedPayload }
        return (rows, c, h, w)
    }
}

extension BoardPart.Input {
    /// Whether selecting this part from a tensor of `tensor` elements reads inside it and yields `count`.
    func fits(tensor: Int, count n: Int) -> Bool {
        switch self {
        case .all: return n == tensor
        case .elements(let r): return r.upperBound <= tensor && r.count == n
        case .rows(let rows, let c, let h, let w): return rows.upperBound <= h && c * h * w <= tensor && rows.count * c * w == n
        }
    }
}

extension BoardPart.Output {
    /// Whether placing `count` results into a tensor of `tensor` elements writes inside it.
    func fits(tensor: Int, count n: Int) -> Bool {
        switch self {
        case .all, .partialSum: return n <= tensor
        case .elements(let r): return r.upperBound <= tensor && r.count == n
        case .rows(let rows, let c, let h, let w): return rows.upperBound <= h && c * h * w <= tensor && rows.count * c * w == n
        }
    }
}

/// Appends little-endian fields to a growing byte array (host side: bundles and programs).
struct ByteWriter {
    var bytes: [UInt8] = []
    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u16(_ v: UInt16) { bytes.append(UInt8(v & 0xff)); bytes.append(UInt8(v >> 8)) }
    mutating func u32(_ v: Int) { for i in 0..<4 { bytes.append(UInt8((UInt32(v) >> (8 * UInt32(i))) & 0xff)) } }
    mutating func u64(_ v: Int) { for i in 0..<8 { bytes.append(UInt8((UInt64(v) >> (8 * UInt64(i))) & 0xff)) } }
    /// Raw float bytes: every target iop builds for is little-endian.
    mutating func floats(_ v: [Float]) { v.withUnsafeBytes { bytes.append(contentsOf: $0) } }
    mutating func region(_ tag: UInt8, _ r: Range<Int>, _ extra: [Int] = []) {
        u8(tag); u32(r.lowerBound); u32(r.upperBound)
        for v in extra { u32(v) }
    }
    mutating func input(_ i: BoardPart.Input) {
        switch i {
        case .all: u8(0)
        case .elements(let r): region(1, r)
        case .rows(let r, let c, let h, let w): region(2, r, [c, h, w])
        }
    }
    mutating func output(_ o: BoardPart.Output) {
        switch o {
        case .all: u8(0)
        case .elements(let r): region(1, r)
        case .rows(let r, let c, let h, let w): region(2, r, [c, h, w])
        case .partialSum: u8(3)
        }
    }
    mutating func string(_ s: String) { let b = Array(s.utf8); u16(UInt16(b.count)); bytes += b }
}
