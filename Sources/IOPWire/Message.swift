/// The iop wire format, version 5 (version 4 with the worker's CPU time in its results: `PartResult`). Every
/// ZeroMQ message is one frame: a fixed 28-byte little-endian header, then the payload (its layouts: Payloads.swift).
///
///     offset size field
///          0    4 magic "IOPW"
///          4    2 version (5)
///          6    1 kind
///          7    1 flags (0)
///          8    8 request id
///         16    4 step (the plan segment an activation belongs to; 0 otherwise)
///         20    4 payload length in bytes
///         24    4 Adler-32 of header bytes 0..<24, then the payload
///
/// The checksum covers the header too, so a flipped bit in the kind, request id or step cannot turn one valid
/// frame into another. Decoding never traps: truncated, oversized, wrong-version, unknown-kind and corrupted
/// frames are typed errors.
/// Values 7 and 10 (v1's partial sums and heartbeats) are retired, never reused.
public enum MessageKind: UInt8, Sendable {
    case hello = 1
    case program = 2
    case weightShard = 3
    case ready = 4
    case refuse = 5
    case activation = 6
    case result = 8
    case error = 9
    case shutdown = 11
    /// A client asking the leader for one inference (payload: `InferenceRequest`).
    case request = 12
    /// A client asking the leader for its counters (empty), and the answer (payload: `ClusterStats`).
    case stats = 13
}

public struct MessageHeader: Equatable, Sendable {
    public static let size = 28
    public static let magic: UInt32 = 0x5750_4F49  // "IOPW" read little-endian
    public static let currentVersion: UInt16 = 5

    public var kind: MessageKind
    public var requestID: UInt64
    public var step: UInt32
    public var payloadLength: UInt32
    public var checksum: UInt32

    public init(
        kind: MessageKind, requestID: UInt64 = 0, step: UInt32 = 0, payloadLength: UInt32 = 0, checksum: UInt32 = 1
    ) {
        self.kind = kind; self.requestID = requestID; self.step = step; self.payloadLength = payloadLength;
        self.checksum = checksum
    }
}

public enum WireError: Error, Equatable, Sendable {
    case truncated(needed: Int, got: Int)
    case badMagic(UInt32)
    case unsupportedVersion(UInt16)
    case unknownKind(UInt8)
    case oversized(length: Int, limit: Int)
    case lengthMismatch(declared: Int, actual: Int)
    case checksumMismatch(expected: UInt32, actual: UInt32)
    case malformedPayload
    case bufferTooSmall(needed: Int, capacity: Int)
    /// A bundle written by another release of `iop compile`.
    case unsupportedBundleVersion(found: UInt16, reads: UInt16)

    public var message: String {
        switch self {
        case .truncated(let needed, let got): return "truncated: needs " + String(needed) + " bytes, got " + String(got)
        case .badMagic(let m): return "bad magic 0x" + String(m, radix: 16) + " (not an iop message)"
        case .unsupportedVersion(let v): return "unsupported format version " + String(v)
        case .unknownKind(let k): return "unknown message kind " + String(k)
        case .oversized(let length, let limit): return "oversized: " + String(length) + " bytes, limit " + String(limit)
        case .lengthMismatch(let declared, let actual):
            return "length mismatch: declared " + String(declared) + ", actual " + String(actual)
        case .checksumMismatch(let expected, let actual):
            return "checksum mismatch: expected 0x" + String(expected, radix: 16) + ", got 0x"
                + String(actual, radix: 16)
        case .malformedPayload: return "malformed payload"
        case .bufferTooSmall(let needed, let capacity):
            return "buffer too small: needs " + String(needed) + " bytes, has " + String(capacity)
        case .unsupportedBundleVersion(let found, let reads):
            return "bundle format version " + String(found) + ", but this iop reads version " + String(reads)
                + (found < reads ? " (written by an older iop compile)" : " (written by a newer iop compile)")
        }
    }
}

/// Adler-32 (RFC 1950): cheap enough for activation payloads, no tables. It
/// catches every 1- and 2-bit error in short payloads, not every 3-bit one;
/// it guards against corrupted or foreign frames on top of TCP's own checksum.
/// `continuing` is the checksum of the bytes before these, for data checked a piece at a time.
public func adler32(_ bytes: UnsafeRawBufferPointer, continuing previous: UInt32 = 1) -> UInt32 {
    var a: UInt32 = previous & 0xffff, b: UInt32 = previous >> 16
    var i = 0
    let n = bytes.count
    while i < n {
        // 5552 is the largest run before b can overflow 32 bits.
        let end = min(n, i + 5552)
        while i < end { a &+= UInt32(bytes[i]); b &+= a; i += 1 }
        a %= 65521; b %= 65521
    }
    return b << 16 | a
}

public enum Wire {
    /// Writes header + payload into `buffer`; returns the frame length.
    public static func encode(
        kind: MessageKind, requestID: UInt64 = 0, step: UInt32 = 0, payload: UnsafeRawBufferPointer,
        into buffer: UnsafeMutableRawBufferPointer
    ) throws(WireError) -> Int {
        let total = MessageHeader.size + payload.count
        guard total <= buffer.count else { throw .bufferTooSmall(needed: total, capacity: buffer.count) }
        if payload.count > 0 {
            (buffer.baseAddress! + MessageHeader.size).copyMemory(from: payload.baseAddress!, byteCount: payload.count)
        }
        return try seal(kind: kind, requestID: requestID, step: step, payloadLength: payload.count, in: buffer)
    }

    /// Writes the header for a payload already in place after it; returns the frame length.
    public static func seal(
        kind: MessageKind, requestID: UInt64 = 0, step: UInt32 = 0, payloadLength: Int,
        in buffer: UnsafeMutableRawBufferPointer
    ) throws(WireError) -> Int {
        let total = MessageHeader.size + payloadLength
        guard total <= buffer.count else { throw .bufferTooSmall(needed: total, capacity: buffer.count) }
        var header = MessageHeader(kind: kind, requestID: requestID, step: step, payloadLength: UInt32(payloadLength))
        writeHeader(header, into: buffer)
        header.checksum = checksum(UnsafeRawBufferPointer(rebasing: buffer[0..<total]))
        writeHeader(header, into: buffer)
        return total
    }

    /// The frame's checksum: header bytes before the checksum field, then the payload.
    static func checksum(_ frame: UnsafeRawBufferPointer) -> UInt32 {
        let sum = adler32(UnsafeRawBufferPointer(rebasing: frame[0..<checksumOffset]))
        return adler32(UnsafeRawBufferPointer(rebasing: frame[MessageHeader.size...]), continuing: sum)
    }

    static let checksumOffset = 24

    static func writeHeader(_ h: MessageHeader, into buffer: UnsafeMutableRawBufferPointer) {
        var w = ByteWriter(into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<MessageHeader.size]))
        // Cannot fail: callers check the buffer holds the whole frame.
        try? w.write(MessageHeader.magic); try? w.write(MessageHeader.currentVersion)
        try? w.write(h.kind.rawValue); try? w.write(UInt8(0))
        try? w.write(h.requestID); try? w.write(h.step); try? w.write(h.payloadLength); try? w.write(h.checksum)
    }

    /// Checks a received frame and returns its header; the payload is
    /// `frame[MessageHeader.size ..< MessageHeader.size + payloadLength]`.
    public static func decode(_ frame: UnsafeRawBufferPointer, maxPayload: Int) throws(WireError) -> MessageHeader {
        guard frame.count >= MessageHeader.size else { throw .truncated(needed: MessageHeader.size, got: frame.count) }
        var r = ByteReader(frame)
        let magic = try r.read(UInt32.self)
        guard magic == MessageHeader.magic else { throw .badMagic(magic) }
        let version = try r.read(UInt16.self)
        guard version == MessageHeader.currentVersion else { throw .unsupportedVersion(version) }
        let rawKind = try r.read(UInt8.self)
        guard let kind = MessageKind(rawValue: rawKind) else { throw .unknownKind(rawKind) }
        _ = try r.read(UInt8.self)
        let requestID = try r.read(UInt64.self), step = try r.read(UInt32.self)
        // Bounded so the frame's size (header + length) is an Int on a 32-bit board too.
        let length = try r.readInt(atMost: Int.max - MessageHeader.size)
        guard length <= maxPayload else { throw .oversized(length: length, limit: maxPayload) }
        let actual = frame.count - MessageHeader.size
        guard length <= actual else { throw .truncated(needed: MessageHeader.size + length, got: frame.count) }
        guard length == actual else { throw .lengthMismatch(declared: length, actual: actual) }
        let expected = try r.read(UInt32.self)
        let sum = checksum(frame)
        guard sum == expected else { throw .checksumMismatch(expected: expected, actual: sum) }
        return MessageHeader(
            kind: kind, requestID: requestID, step: step, payloadLength: UInt32(length), checksum: expected)
    }
}
