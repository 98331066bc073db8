import CIOPSystem
import IOPAudio
import IOPCore
import IOPWire

/// What `iop compile` writes and `iop-node leader` runs, in one file: the
/// boards, every board's program (flat ops naming arena offsets), the leader's
/// schedule, and every board's weight shards.
///
///     "IOPB", u16 version, u16 0, u32 Adler-32 of the body, u32 body length, body
///     body: boards, leader, stream, schedule, programs, padding to 4 bytes, shards
///     schedule: per segment its counts, offsets, own part, reduction, remote parts, then u32 wire (0 fp32, 1 fp16)
///     stream: u8 0 (none) or 1, then u32 sample rate, frame length, frame hop, FFT size, mel bins,
///             f64 fMin, fMax, log offset, u32 patch frames, patch hop, f32 alert threshold, u32 consecutive
///
/// Shard floats sit 4-byte aligned, so a leader that maps the file reads them in place.
public struct ProgramBundle {
    public struct BoardEntry: Equatable, Sendable {
        public var name: String, endpoint: String, budgetBytes: Int
        public init(name: String, endpoint: String, budgetBytes: Int) {
            self.name = name; self.endpoint = endpoint; self.budgetBytes = budgetBytes
        }
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
    /// For a stream service: the audio front end and alert rule; the leader's arena ends with its region.
    public var stream: StreamSpec?

    static let magic: UInt32 = 0x4250_4F49  // "IOPB"
    /// 4: a wire precision per segment (and per worker step). 5: a conv's algorithm (direct or
    /// Winograd) in its program geometry. 6: a part may read and write a tile (region tag 4, a fused grid's
    /// rectangle). 7: a blocked conv's scratch also holds its table of input offsets (`ConvGeometry.scratchCount`);
    /// a program laid out for the smaller scratch would let the kernel write past it. Older bundles are refused:
    /// compile again.
    public static let version: UInt16 = 7
    static let headerSize = 16

    /// Lays out every board's arena for `segments` and writes the bundle.
    public static func encode(
        boards: [BoardEntry], leaderIndex: Int, segments: [SegmentProgram], stream: StreamSpec? = nil
    ) -> [UInt8] {
        let outputCount = segments.last?.outputCount ?? 0
        let (programs, schedule, sources) = BoardLayout.compile(
            segments, boards: boards.count, leader: leaderIndex,
            leaderTailFloats: stream?.leaderFloats(outputCount: outputCount) ?? 0)
        var body = ByteWriter()
        body.write(u32: boards.count)
        for b in boards {
            body.write(lengthPrefixed: Array(b.name.utf8)); body.write(lengthPrefixed: Array(b.endpoint.utf8))
            body.write(UInt64(b.budgetBytes))
        }
        body.write(u32: leaderIndex)
        write(stream, to: &body)
        body.write(u32: schedule.count)
        for s in schedule {
            for v in [
                s.inputCount, s.outputCount, s.assembledCount, s.sumsPartials ? 1 : 0, s.current, s.assembled,
                s.sendPayload, s.receivePayload,
            ] { body.write(u32: v) }
            if let own = s.own {
                body.write(u32: own.step + 1); own.input.write(to: &body); own.output.write(to: &body)
            } else {
                body.write(u32: 0)
            }
            body.write(u32: s.reduce.map { $0 + 1 } ?? 0)
            body.write(u32: s.remote.count)
            for r in s.remote {
                body.write(u32: r.board); r.input.write(to: &body); body.write(u32: r.inputCount)
                r.output.write(to: &body); body.write(u32: r.outputCount)
            }
            body.write(u32: Int(s.wire.rawValue))
        }
        for p in programs {
            let bytes = ProgramCodec.encode(p)
            body.write(u32: bytes.count); body.write(raw: bytes)
        }
        // Shard floats 4-byte aligned in the file (its header is 16 bytes).
        body.pad(to: 4)
        for layers in sources {
            let records = layers.enumerated().filter { $0.element.kind.parameterChannels > 0 }
            body.write(u32: records.count)
            for (op, layer) in records {
                body.write(u32: op); body.write(u32: layer.kind.parameterChannels);
                body.write(u32: layer.bias.isEmpty ? 0 : 1)
                body.write(floats: layer.weights); body.write(floats: layer.bias)
            }
        }
        var out = ByteWriter()
        out.write(ProgramBundle.magic); out.write(ProgramBundle.version); out.write(UInt16(0))
        out.write(body.bytes.withUnsafeBytes { adler32($0) }); out.write(u32: body.bytes.count)
        out.write(raw: body.bytes)
        return out.bytes
    }

    /// Decodes and checks a bundle. With `releasingPages` (a read-only file
    /// mapping), each piece's pages are dropped once checksummed, so checking a
    /// large bundle never holds it all in memory.
    public static func decode(_ bytes: UnsafeRawBufferPointer, releasingPages: Bool = false) throws(WireError)
        -> ProgramBundle
    {
        guard bytes.count >= headerSize else { throw .truncated(needed: headerSize, got: bytes.count) }
        var h = ByteReader(UnsafeRawBufferPointer(rebasing: bytes[0..<headerSize]))
        let magic = try h.read(UInt32.self)
        guard magic == ProgramBundle.magic else { throw .badMagic(magic) }
        let version = try h.read(UInt16.self)
        guard version == ProgramBundle.version else {
            throw .unsupportedBundleVersion(found: version, reads: ProgramBundle.version)
        }
        _ = try h.read(UInt16.self)
        let sum = try h.read(UInt32.self), length = try h.readInt()
        guard bytes.count - headerSize == length else {
            throw .lengthMismatch(declared: length, actual: bytes.count - headerSize)
        }
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
        var r = ByteReader(bytes)
        try r.skip(headerSize)
        let boardCount = try r.readInt()
        guard boardCount > 0, boardCount <= 256 else { throw .malformedPayload }
        var boards: [BoardEntry] = []
        for _ in 0..<boardCount {
            let name = String(decoding: try r.readLengthPrefixed(), as: UTF8.self)
            let endpoint = String(decoding: try r.readLengthPrefixed(), as: UTF8.self)
            // Clamped on a 32-bit leader: a 64-bit board's budget may exceed its Int, and is then no limit.
            let budget = Int(clamping: try r.read(UInt64.self))
            boards.append(BoardEntry(name: name, endpoint: endpoint, budgetBytes: budget))
        }
        let leader = try r.readInt()
        guard leader < boardCount else { throw .malformedPayload }
        let stream = try readStream(&r)
        let segmentCount = try r.readInt()
        guard segmentCount > 0, segmentCount <= 4096 else { throw .malformedPayload }
        var schedule: [LeaderSegment] = []
        for _ in 0..<segmentCount {
            var s = LeaderSegment(
                inputCount: try r.readInt(), outputCount: try r.readInt(), assembledCount: try r.readInt(),
                sumsPartials: try r.readInt() == 1,
                current: try r.readInt(), assembled: try r.readInt(), sendPayload: try r.readInt(),
                receivePayload: try r.readInt(),
                remote: [], own: nil, reduce: nil)
            let own = try r.readInt()
            if own > 0 {
                s.own = .init(step: own - 1, input: try BoardPart.Input.read(&r), output: try BoardPart.Output.read(&r))
            }
            let reduce = try r.readInt()
            if reduce > 0 { s.reduce = reduce - 1 }
            let remoteCount = try r.readInt()
            guard remoteCount < boardCount else { throw .malformedPayload }
            for _ in 0..<remoteCount {
                let board = try r.readInt()
                guard board < boardCount, board != leader else { throw .malformedPayload }
                s.remote.append(
                    RemotePart(
                        board: board, input: try BoardPart.Input.read(&r), inputCount: try r.readInt(),
                        output: try BoardPart.Output.read(&r), outputCount: try r.readInt()))
            }
            guard let wire = WirePrecision(rawValue: UInt8(try r.readInt(atMost: 255))) else { throw .malformedPayload }
            s.wire = wire
            schedule.append(s)
        }
        var programs: [BoardProgram] = [], programBytes: [Range<Int>] = []
        for _ in 0..<boardCount {
            let n = try r.readInt()
            let start = r.offset
            try r.skip(n)
            programs.append(
                try r.slice(start..<(start + n)) { slice throws(WireError) in try ProgramCodec.decode(slice) })
            programBytes.append(start..<(start + n))
        }
        try r.skipPadding(to: 4)
        var shards: [[ShardRef]] = []
        for d in 0..<boardCount {
            let count = try r.readInt()
            guard count <= programs[d].ops.count else { throw .malformedPayload }
            var refs: [ShardRef] = []
            for _ in 0..<count {
                let op = try r.readInt(), channels = try r.readInt(), flags = try r.readInt()
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
        try r.expectEnd()
        let bundle = ProgramBundle(
            boards: boards, leaderIndex: leader, schedule: schedule, programs: programs, programBytes: programBytes,
            shards: shards, stream: stream)
        guard bundle.scheduleFitsLeader, bundle.streamFitsLeader else { throw .malformedPayload }
        return bundle
    }

    /// Whether the leader's arena holds its stream region after its program's own floats.
    var streamFitsLeader: Bool {
        guard let stream else { return true }
        let p = programs[leaderIndex]
        let own =
            p.activationFloats + p.ops.reduce(0) { $0 + $1.kind.reservedWeightFloats + $1.kind.reservedBiasFloats }
        let output = schedule.last?.outputCount ?? 0
        return p.arenaFloats - own == stream.leaderFloats(outputCount: output)
    }

    static func write(_ stream: StreamSpec?, to w: inout ByteWriter<GrowingBytes>) {
        guard let s = stream else { return w.write(UInt8(0)) }
        let a = s.audio
        w.write(UInt8(1))
        for v in [a.sampleRate, a.frameLength, a.frameHop, a.fftSize, a.melBins] { w.write(u32: v) }
        for v in [a.fMin, a.fMax, a.logOffset] { w.write(v.bitPattern) }
        w.write(u32: a.patchFrames); w.write(u32: a.patchHop)
        w.write(s.alerts.threshold.bitPattern); w.write(u32: s.alerts.consecutive)
    }

    static func readStream(_ r: inout ByteReader) throws(WireError) -> StreamSpec? {
        switch try r.read(UInt8.self) {
        case 0: return nil
        case 1: break
        default: throw .malformedPayload
        }
        var ints: [Int] = []
        for _ in 0..<5 { ints.append(try r.readInt()) }
        var reals: [Double] = []
        for _ in 0..<3 { reals.append(Double(bitPattern: try r.read(UInt64.self))) }
        let audio = AudioParameters(
            sampleRate: ints[0], frameLength: ints[1], frameHop: ints[2], fftSize: ints[3], melBins: ints[4],
            fMin: reals[0], fMax: reals[1], logOffset: reals[2], patchFrames: try r.readInt(), patchHop: try r.readInt()
        )
        let rule = AlertRule(threshold: Float(bitPattern: try r.read(UInt32.self)), consecutive: try r.readInt())
        let spec = StreamSpec(audio: audio, alerts: rule)
        do throws(AudioError) { try spec.validate() } catch { throw .malformedPayload }
        return spec
    }

    /// Whether the leader's schedule stays inside its arena and its program, and each board part inside its tensors.
    var scheduleFitsLeader: Bool {
        let p = programs[leaderIndex]
        func inside(_ at: Int, _ n: Int) -> Bool { at >= 0 && n >= 0 && at <= p.activationFloats - n }
        for s in schedule {
            guard inside(s.current, max(s.inputCount, s.outputCount)), inside(s.assembled, s.assembledCount),
                s.inputCount > 0
            else { return false }
            if !s.remote.isEmpty {
                guard s.sendPayload >= ArenaLayout.frameRoom, inside(s.sendPayload, s.largestRemoteInput),
                    s.receivePayload >= ArenaLayout.frameRoom, inside(s.receivePayload, s.largestRemoteOutput)
                else { return false }
            }
            for r in s.remote {
                guard r.input.fits(tensor: s.inputCount, count: r.inputCount),
                    r.output.fits(tensor: s.assembledCount, count: r.outputCount)
                else { return false }
            }
            if let own = s.own {
                guard own.step < p.steps.count else { return false }
                let step = p.steps[own.step]
                guard own.input.fits(tensor: s.inputCount, count: step.inputCount),
                    own.output.fits(tensor: s.assembledCount, count: step.outputCount)
                else { return false }
            }
            if let reduce = s.reduce {
                guard reduce < p.steps.count, p.steps[reduce].outputCount == s.outputCount else { return false }
            } else if s.assembledCount < s.outputCount {
                return false
            }
        }
        return true
    }
}
