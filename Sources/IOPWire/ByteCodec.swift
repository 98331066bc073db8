/// The one little-endian codec every iop format is written and read with:
/// message headers and payloads, programs, weight shards and bundles.
/// Every target iop builds for is little-endian, so floats travel as their bytes.

/// Where a `ByteWriter` puts its bytes.
public protocol ByteSink {
    /// What appending can fail with: `Never` for a growing array.
    associatedtype Failure: Error
    /// Bytes written so far.
    var count: Int { get }
    mutating func append(_ bytes: UnsafeRawBufferPointer) throws(Failure)
}

/// Caller-owned memory (a frame in an arena): bounds-checked, never allocates.
public struct FixedBytes: ByteSink {
    let buffer: UnsafeMutableRawBufferPointer
    public private(set) var count = 0
    public init(_ buffer: UnsafeMutableRawBufferPointer) { self.buffer = buffer }

    public mutating func append(_ bytes: UnsafeRawBufferPointer) throws(WireError) {
        guard bytes.count <= buffer.count - count else {
            throw .bufferTooSmall(needed: count + bytes.count, capacity: buffer.count)
        }
        if bytes.count > 0 {
            (buffer.baseAddress! + count).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
        }
        count += bytes.count
    }
}

/// A growing array, for what the host writes once (programs, bundles).
public struct GrowingBytes: ByteSink {
    public private(set) var bytes: [UInt8] = []
    public init() {}
    public var count: Int { bytes.count }
    public mutating func append(_ b: UnsafeRawBufferPointer) { bytes.append(contentsOf: b) }
}

/// Appends little-endian fields to a sink.
public struct ByteWriter<Sink: ByteSink> {
    public private(set) var sink: Sink
    public init(_ sink: Sink) { self.sink = sink }
    /// Bytes written so far.
    public var count: Int { sink.count }

    public mutating func write<T: FixedWidthInteger>(_ value: T) throws(Sink.Failure) {
        var le = value.littleEndian
        try withUnsafeBytes(of: &le) { (b) throws(Sink.Failure) in try sink.append(b) }
    }

    /// A count or offset as a u32 (formats bound them well below 4 Gi).
    public mutating func write(u32 value: Int) throws(Sink.Failure) { try write(UInt32(truncatingIfNeeded: value)) }

    /// A length-prefixed byte string (u16 length).
    public mutating func write(lengthPrefixed b: [UInt8]) throws(Sink.Failure) {
        try write(UInt16(truncatingIfNeeded: b.count))
        try write(raw: b)
    }

    public mutating func write(raw b: [UInt8]) throws(Sink.Failure) {
        var failure: Sink.Failure?
        b.withUnsafeBytes { p in
            do throws(Sink.Failure) { try sink.append(p) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    public mutating func write(raw b: UnsafeRawBufferPointer) throws(Sink.Failure) { try sink.append(b) }

    public mutating func write(floats v: [Float]) throws(Sink.Failure) {
        var failure: Sink.Failure?
        v.withUnsafeBytes { p in
            do throws(Sink.Failure) { try sink.append(p) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    /// Zero bytes until `count` is a multiple of `alignment`.
    public mutating func pad(to alignment: Int) throws(Sink.Failure) {
        while sink.count % alignment != 0 { try write(UInt8(0)) }
    }
}

extension ByteWriter where Sink == GrowingBytes {
    public init() { self.init(GrowingBytes()) }
    public var bytes: [UInt8] { sink.bytes }
}

extension ByteWriter where Sink == FixedBytes {
    /// Writes into caller-owned memory.
    public init(into buffer: UnsafeMutableRawBufferPointer) { self.init(FixedBytes(buffer)) }
}

/// A bounds-checked little-endian cursor: every read past the end is `malformedPayload`.
public struct ByteReader {
    let bytes: UnsafeRawBufferPointer
    public private(set) var offset = 0
    public init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    public mutating func read<T: FixedWidthInteger>(_: T.Type) throws(WireError) -> T {
        let size = MemoryLayout<T>.size
        guard size <= bytes.count - offset else { throw .malformedPayload }
        defer { offset += size }
        return T(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
    }

    /// A u32 count or offset. On a 32-bit board a value above Int.max is malformed, not a trap.
    public mutating func readInt() throws(WireError) -> Int {
        guard let v = Int(exactly: try read(UInt32.self)) else { throw .malformedPayload }
        return v
    }

    /// A u32 that must not exceed `limit` (so arithmetic on it cannot overflow).
    public mutating func readInt(atMost limit: Int) throws(WireError) -> Int {
        let v = try readInt()
        guard v <= limit else { throw .malformedPayload }
        return v
    }

    /// A length-prefixed byte string (u16 length), at most `limit` bytes.
    public mutating func readLengthPrefixed(limit: Int = 255) throws(WireError) -> [UInt8] {
        let range = try lengthPrefixedRange(limit: limit)
        return [UInt8](UnsafeRawBufferPointer(rebasing: bytes[range]))
    }

    /// Where a length-prefixed byte string lies, without copying it (the serving path allocates nothing).
    public mutating func lengthPrefixedRange(limit: Int = 255) throws(WireError) -> Range<Int> {
        let n = Int(try read(UInt16.self))
        guard n <= limit, n <= bytes.count - offset else { throw .malformedPayload }
        defer { offset += n }
        return offset..<(offset + n)
    }

    public var isAtEnd: Bool { offset == bytes.count }
    public var remaining: Int { bytes.count - offset }

    /// Hands a sub-range of the bytes to `body` (for nested, length-prefixed records).
    public func slice<T>(_ range: Range<Int>, _ body: (UnsafeRawBufferPointer) throws(WireError) -> T) throws(WireError)
        -> T
    {
        guard range.lowerBound >= 0, range.upperBound <= bytes.count else { throw .malformedPayload }
        return try body(UnsafeRawBufferPointer(rebasing: bytes[range]))
    }

    /// Skips `n` bytes.
    public mutating func skip(_ n: Int) throws(WireError) {
        guard n >= 0, n <= bytes.count - offset else { throw .malformedPayload }
        offset += n
    }

    /// Skips zero bytes until `offset` is a multiple of `alignment`.
    public mutating func skipPadding(to alignment: Int) throws(WireError) {
        while offset % alignment != 0 { _ = try read(UInt8.self) }
    }

    /// Fails unless every byte was read: trailing bytes mean a foreign or corrupted record.
    public func expectEnd() throws(WireError) { if !isAtEnd { throw .malformedPayload } }
}
