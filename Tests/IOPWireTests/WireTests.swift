import IOPWire
import Testing

func frame(kind: MessageKind, requestID: UInt64 = 7, step: UInt32 = 3, payload: [UInt8]) throws -> [UInt8] {
    var buffer = [UInt8](repeating: 0, count: MessageHeader.size + payload.count)
    let n = try payload.withUnsafeBytes { p in
        try buffer.withUnsafeMutableBytes {
            try Wire.encode(kind: kind, requestID: requestID, step: step, payload: p, into: $0)
        }
    }
    #expect(n == buffer.count)
    return buffer
}

func decode(_ bytes: [UInt8], maxPayload: Int = 1 << 20) -> Result<MessageHeader, WireError> {
    bytes.withUnsafeBytes { b in
        do throws(WireError) { return .success(try Wire.decode(b, maxPayload: maxPayload)) } catch {
            return .failure(error)
        }
    }
}

/// Every kind in use; 7 and 10 are retired.
let allKinds: [MessageKind] = [
    .hello, .program, .weightShard, .ready, .refuse, .activation, .result, .error, .shutdown, .request, .stats,
]

@Suite struct WireTests {
    @Test func roundTripsEveryKindAndRetiredKindsAreUnknown() throws {
        #expect(MessageKind(rawValue: 7) == nil && MessageKind(rawValue: 10) == nil)
        #expect(
            decode(try frame(kind: .hello, payload: []).enumerated().map { $0 == 6 ? 7 : $1 })
                == .failure(.unknownKind(7)))
        for kind in allKinds {
            let raw = kind.rawValue
            let payload = (0..<Int(raw) * 13).map { UInt8($0 & 0xff) }
            let h = try decode(frame(kind: kind, requestID: UInt64(raw) << 40, step: UInt32(raw), payload: payload))
                .get()
            #expect(
                h.kind == kind && h.requestID == UInt64(raw) << 40 && h.step == UInt32(raw)
                    && h.payloadLength == UInt32(payload.count))
        }
    }

    @Test func headerLayoutIsLittleEndianAsDocumented() throws {
        let f = try frame(kind: .activation, requestID: 0x0102_0304_0506_0708, step: 0x0A0B_0C0D, payload: [1, 2, 3])
        #expect(Array(f[0..<4]) == Array("IOPW".utf8))
        #expect(f[4] == 5 && f[5] == 0 && f[6] == MessageKind.activation.rawValue)
        #expect(Array(f[8..<16]) == [8, 7, 6, 5, 4, 3, 2, 1])
        #expect(Array(f[16..<20]) == [0x0D, 0x0C, 0x0B, 0x0A])
        #expect(Array(f[20..<24]) == [3, 0, 0, 0])
        // Adler-32 (checked against RFC 1950 below) of the header's first 24 bytes, then the payload.
        let sum = (Array(f[0..<24]) + [1, 2, 3]).withUnsafeBytes { adler32($0) }
        #expect(Array(f[24..<28]) == [0, 8, 16, 24].map { UInt8(truncatingIfNeeded: sum >> $0) })
    }

    /// The checksum covers the header: no single flipped bit, anywhere in the frame, yields a valid frame.
    @Test func everySingleBitFlipIsRejected() throws {
        for kind in allKinds {
            let good = try frame(
                kind: kind, requestID: 0xDEAD_BEEF, step: 2, payload: (0..<40).map { UInt8($0 * 7 & 0xff) })
            for bit in 0..<(8 * good.count) {
                var bad = good
                bad[bit / 8] ^= 1 << UInt8(bit % 8)
                if case .success(let h) = decode(bad) {
                    Issue.record("bit \(bit) of a \(kind) frame flipped, still decoded as \(h)")
                }
            }
        }
    }

    @Test func adler32MatchesTheRFCExample() {
        // RFC 1950's classic check value: adler32("Wikipedia") = 0x11E60398.
        let v = Array("Wikipedia".utf8).withUnsafeBytes { adler32($0) }
        #expect(v == 0x11E6_0398)
    }

    @Test func rejectsEachKindOfBadFrame() throws {
        let good = try frame(kind: .activation, payload: [9, 8, 7, 6])
        #expect(decode(Array(good.prefix(10))) == .failure(.truncated(needed: 28, got: 10)))
        #expect(decode(Array(good.dropLast())) == .failure(.truncated(needed: 32, got: 31)))
        var bad = good; bad[0] ^= 1
        guard case .failure(.badMagic) = decode(bad) else { Issue.record("magic"); return }
        bad = good; bad[4] = 3
        #expect(decode(bad) == .failure(.unsupportedVersion(3)))
        bad = good; bad[6] = 200
        #expect(decode(bad) == .failure(.unknownKind(200)))
        #expect(decode(good, maxPayload: 3) == .failure(.oversized(length: 4, limit: 3)))
        #expect(decode(good + [0]) == .failure(.lengthMismatch(declared: 4, actual: 5)))
        bad = good; bad[30] ^= 0x10
        guard case .failure(.checksumMismatch) = decode(bad) else { Issue.record("checksum"); return }
    }

    @Test func payloadsRoundTripAndRejectGarbage() throws {
        let hello = Hello(
            name: Array("pi4-b".utf8), endpoint: Array("tcp://127.0.0.1:5555".utf8), budgetBytes: 1 << 30, threads: 4)
        let h = hello.encode()
        #expect(try h.withUnsafeBytes { try Hello.decode($0) } == hello)
        #expect(throws: WireError.malformedPayload) { try h.dropLast().withUnsafeBytes { try Hello.decode($0) } }
        #expect(throws: WireError.malformedPayload) { try (h + [0]).withUnsafeBytes { try Hello.decode($0) } }
        let refuse = Refuse(reason: .cannotAllocate, bytesNeeded: 600 << 20, budgetBytes: 512 << 20)
        #expect(try refuse.encode().withUnsafeBytes { try Refuse.decode($0) } == refuse)
        #expect(throws: WireError.self) {
            try [UInt8](repeating: 0, count: 17).withUnsafeBytes { try Refuse.decode($0) }
        }
        #expect(
            try Ready(arenaBytes: 123_456).encode().withUnsafeBytes { try Ready.decode($0) }
                == Ready(arenaBytes: 123_456))
        let stats = ClusterStats(
            inferences: 5, rejectedFrames: 7, rejectedHandshakes: 9,
            boards: [
                .init(name: Array("a".utf8), arenaBytes: 1 << 20, bytesSent: 400, messagesSent: 2, cpuNs: 11),
                .init(name: Array("bb".utf8), arenaBytes: 2 << 20, bytesSent: 40, messagesSent: 1, cpuNs: 1 << 40),
            ], planInferences: 3,
            segments: [.init(scatterNs: 1, ownNs: 2, gatherNs: 3, reduceNs: 4), .init(scatterNs: 5, ownNs: 6)],
            cpuInferences: 2)
        let encoded = stats.encode()
        #expect(try encoded.withUnsafeBytes { try ClusterStats.decode($0) } == stats)
        #expect(throws: WireError.malformedPayload) {
            try encoded.dropLast().withUnsafeBytes { try ClusterStats.decode($0) }
        }
        // The CPU counts close the payload: u64 inferences, then a u64 per board.
        #expect(Array(encoded.suffix(24)) == [2, 0, 0, 0, 0, 0, 0, 0, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0])
        // A leader from before CPU reports ends after the segments, and one from before segment times after the
        // boards; both still decode.
        var beforeCPU = stats
        beforeCPU.cpuInferences = 0
        for k in beforeCPU.boards.indices { beforeCPU.boards[k].cpuNs = 0 }
        let beforeCPUBytes = Array(beforeCPU.encode().dropLast(8 + 2 * 8))
        #expect(try beforeCPUBytes.withUnsafeBytes { try ClusterStats.decode($0) } == beforeCPU)
        var older = beforeCPU
        older.planInferences = 0; older.segments = []
        let olderBytes = Array(older.encode().dropLast(8 + 4 + 8 + 2 * 8))
        #expect(try olderBytes.withUnsafeBytes { try ClusterStats.decode($0) } == older)
    }

    /// Byte layouts written out by hand, as the doc comments give them.
    @Test func payloadLayoutsAreAsDocumented() throws {
        // Hello: u16 n, name, u16 m, endpoint, u64 budget, u16 threads, u32 held program checksum.
        #expect(
            Hello(name: Array("a".utf8), budgetBytes: 1, threads: 2, heldProgram: 0x0102_0304).encode()
                == [1, 0, 0x61, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 4, 3, 2, 1])
        // Refuse: u8 reason, u64 needed, u64 budget.
        #expect(
            Refuse(reason: .overBudget, bytesNeeded: 0x0102, budgetBytes: 3).encode()
                == [1, 2, 1, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0])
        // Request: u16 length, the endpoint, then the input floats (1.0 = 0x3F800000).
        let request = InferenceRequest.encode(replyEndpoint: Array("ep".utf8), input: [1, -2])
        #expect(request == [2, 0, 0x65, 0x70, 0, 0, 0x80, 0x3F, 0, 0, 0, 0xC0])
        let parts = try request.withUnsafeBytes { try InferenceRequest.parse($0, inputCount: 2) }
        #expect(parts == .init(replyEndpoint: 2..<4, input: 4..<12))
        #expect(throws: WireError.malformedPayload) {
            try request.withUnsafeBytes { try InferenceRequest.parse($0, inputCount: 3) }
        }
        #expect(throws: WireError.malformedPayload) {
            try [5, 0, 1].withUnsafeBytes { try InferenceRequest.parse($0, inputCount: 0) }
        }
        // Stats request: the reply endpoint alone.
        let ask = StatsRequest.encode(replyEndpoint: Array("ep".utf8))
        #expect(ask == [2, 0, 0x65, 0x70])
        #expect(try ask.withUnsafeBytes { try StatsRequest.parse($0) } == 2..<4)
        // A part's result: u32 board index and u64 CPU nanoseconds in front of its floats.
        var result = [UInt8](repeating: 0xFF, count: 16)
        try result.withUnsafeMutableBytes {
            try PartResult.writeHeader(board: 0x0203, cpuNs: 0x0102_0304_0506_0708, into: $0)
        }
        #expect(result == [3, 2, 0, 0, 8, 7, 6, 5, 4, 3, 2, 1, 0xFF, 0xFF, 0xFF, 0xFF])
        let part = try result.withUnsafeBytes { try PartResult.read($0) }
        #expect(part.board == 0x0203 && part.cpuNs == 0x0102_0304_0506_0708)
        #expect(PartResult.headerSize == 12)
    }

    /// The codec every format uses: little-endian fields, bounds checked both ways.
    @Test func byteCodecIsLittleEndianAndBounded() throws {
        var w = ByteWriter()
        w.write(UInt16(0x0102)); w.write(u32: 0x0304_0506); w.write(lengthPrefixed: [9]); w.write(floats: [1])
        w.pad(to: 8)
        #expect(w.bytes == [2, 1, 6, 5, 4, 3, 1, 0, 9, 0, 0, 0x80, 0x3F, 0, 0, 0])
        try w.bytes.withUnsafeBytes { b in
            var r = ByteReader(b)
            #expect(try r.read(UInt16.self) == 0x0102 && r.readInt() == 0x0304_0506)
            #expect(try r.readLengthPrefixed() == [9])
            try r.skip(4)
            try r.skipPadding(to: 8)
            try r.expectEnd()
            #expect(throws: WireError.malformedPayload) { try r.read(UInt8.self) }
        }
        var small = [UInt8](repeating: 0, count: 3)
        small.withUnsafeMutableBytes { b in
            var f = ByteWriter(into: b)
            #expect(throws: WireError.bufferTooSmall(needed: 4, capacity: 3)) { try f.write(UInt32(1)) }
        }
    }

    /// 100,000 random, truncated and bit-flipped frames: each decodes to a
    /// header or a typed error, and nothing traps.
    @Test func fuzzedFramesNeverTrap() throws {
        var rng = XorShift(state: 0x9E37_79B9_7F4A_7C15)
        var seeds: [[UInt8]] = []
        for kind in allKinds {
            seeds.append(
                try frame(
                    kind: kind,
                    payload: (0..<Int.random(in: 0...300, using: &rng)).map { _ in .random(in: 0...255, using: &rng) }))
        }
        var accepted = 0, flippedAccepted = 0, flipped = 0
        for i in 0..<100_000 {
            var bytes: [UInt8]
            switch i % 4 {
            case 0:  // pure noise, sometimes with a valid magic and version
                bytes = (0..<Int.random(in: 0...80, using: &rng)).map { _ in .random(in: 0...255, using: &rng) }
                if bytes.count >= 6 && Bool.random(using: &rng) {
                    bytes.replaceSubrange(0..<6, with: Array("IOPW".utf8) + [UInt8(MessageHeader.currentVersion), 0])
                }
            case 1:  // truncated
                let s = seeds.randomElement(using: &rng)!
                bytes = Array(s.prefix(Int.random(in: 0..<s.count, using: &rng)))
            case 2:  // bit flips in the payload
                let seed = seeds.randomElement(using: &rng)!
                bytes = seed
                guard bytes.count > MessageHeader.size else { continue }
                for _ in 0..<Int.random(in: 1...3, using: &rng) {
                    bytes[Int.random(in: MessageHeader.size..<bytes.count, using: &rng)] ^=
                        1 << UInt8.random(in: 0...7, using: &rng)
                }
                // Two flips of the same bit give the original frame back: not a corruption.
                if bytes == seed { continue }
                flipped += 1
            default:  // one bit flipped anywhere, the header included
                bytes = seeds.randomElement(using: &rng)!
                bytes[Int.random(in: 0..<bytes.count, using: &rng)] ^= 1 << UInt8.random(in: 0...7, using: &rng)
            }
            if case .success = decode(bytes, maxPayload: 4096) {
                accepted += 1
                if i % 4 == 2 { flippedAccepted += 1 }
                if i % 4 == 3 { Issue.record("a frame with one flipped bit was accepted") }
            }
        }
        // Adler-32 catches every 1- and 2-bit corruption of payloads this short, but
        // not every 3-bit one (equal flips at i and j cancelled by a double-weight
        // flip at their midpoint): allow 0.1 %. TCP's own checksum sits under it.
        #expect(flippedAccepted * 1000 <= flipped, "\(flippedAccepted) of \(flipped) corrupted payloads accepted")
        #expect(flipped > 20_000)
        #expect(accepted < 30_000)
    }
}

/// Seeded, so the fuzz run is the same every time.
struct XorShift: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state ^= state << 13; state ^= state >> 7; state ^= state << 17
        return state
    }
}
