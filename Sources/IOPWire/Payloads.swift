/// Little-endian cursor over a payload; every read is bounds-checked.
public struct PayloadReader {
    let bytes: UnsafeRawBufferPointer
    public private(set) var offset = 0
    public init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    public mutating func read<T: FixedWidthInteger>(_: T.Type) throws(WireError) -> T {
        let size = MemoryLayout<T>.size
        guard offset + size <= bytes.count else { throw .malformedPayload }
        defer { offset += size }
        return T(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
    }

    /// A length-prefixed byte string (UInt16 length), at most `limit` bytes.
    public mutating func readBytes(limit: Int = 255) throws(WireError) -> [UInt8] {
        let n = Int(try read(UInt16.self))
        guard n <= limit, offset + n <= bytes.count else { throw .malformedPayload }
        defer { offset += n }
        return [UInt8](UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + n)]))
    }

    public var isAtEnd: Bool { offset == bytes.count }
    public var remaining: Int { bytes.count - offset }

    /// Hands a sub-range of the payload to `body` (for nested, length-prefixed records).
    public func bytesSlice<T>(_ range: Range<Int>, _ body: (UnsafeRawBufferPointer) throws(WireError) -> T) throws(WireError) -> T {
        guard range.lowerBound >= 0, range.upperBound <= bytes.count else { throw .malformedPayload }
        return try body(UnsafeRawBufferPointer(rebasing: bytes[range]))
    }

    /// Skips `n` bytes.
    public mutating func skip(_ n: Int) throws(WireError) {
        guard n >= 0, offset + n <= bytes.count else { throw .malformedPayload }
        offset += n
    }
}

/// Little-endian writer into a caller-owned buffer.
public struct PayloadWriter {
    let buffer: UnsafeMutableRawBufferPointer
    public private(set) var offset = 0
    public init(_ buffer: UnsafeMutableRawBufferPointer) { self.buffer = buffer }

    public mutating func write<T: FixedWidthInteger>(_ v: T) throws(WireError) {
        let size = MemoryLayout<T>.size
        guard offset + size <= buffer.count else { throw .bufferTooSmall(needed: offset + size, capacity: buffer.count) }
        buffer.storeBytes(of: v.littleEndian, toByteOffset: offset, as: T.self)
        offset += size
    }

    public mutating func writeBytes(_ b: [UInt8]) throws(WireError) {
        guard b.count <= Int(UInt16.max) else { throw .malformedPayload }
        try write(UInt16(b.count))
        guard offset + b.count <= buffer.count else { throw .bufferTooSmall(needed: offset + b.count, capacity: buffer.count) }
        for (i, byte) in b.enumerated() { buffer[offset + i] = byte }
        offset += b.count
    }
}

/// A worker introducing itself to the leader, with the endpoint it listens on.
public struct Hello: Equatable, Sendable {
    public var name: [UInt8]
    public var endpoint: [UInt8]
    public var budgetBytes: UInt64
    public var threads: UInt16
    public init(name: [UInt8], endpoint: [UInt8] = [], budgetBytes: UInt64, threads: UInt16) {
        self.name = name; self.endpoint = endpoint; self.budgetBytes = budgetBytes; self.threads = threads
    }

    public func encode(into buffer: UnsafeMutableRawBufferPointer) throws(WireError) -> Int {
        var w = PayloadWriter(buffer)
        try w.writeBytes(name); try w.writeBytes(endpoint); try w.write(budgetBytes); try w.write(threads)
        return w.offset
    }
    public static func decode(_ payload: UnsafeRawBufferPointer) throws(WireError) -> Hello {
        var r = PayloadReader(payload)
        let h = Hello(name: try r.readBytes(), endpoint: try r.readBytes(), budgetBytes: try r.read(UInt64.self), threads: try r.read(UInt16.self))
        guard r.isAtEnd else { throw .malformedPayload }
        return h
    }
}

/// A worker declining its program: its arena would exceed its budget.
public struct Refuse: Equatable, Sendable {
    public enum Reason: UInt8, Sendable { case overBudget = 1, badProgram = 2 }
    public var reason: Reason
    public var bytesNeeded: UInt64
    public var budgetBytes: UInt64
    public init(reason: Reason, bytesNeeded: UInt64, budgetBytes: UInt64) { self.reason = reason; self.bytesNeeded = bytesNeeded; self.budgetBytes = budgetBytes }

    public func encode(into buffer: UnsafeMutableRawBufferPointer) throws(WireError) -> Int {
        var w = PayloadWriter(buffer)
        try w.write(reason.rawValue); try w.write(bytesNeeded); try w.write(budgetBytes)
        return w.offset
    }
    public static func decode(_ payload: UnsafeRawBufferPointer) throws(WireError) -> Refuse {
        var r = PayloadReader(payload)
        guard let reason = Reason(rawValue: try r.read(UInt8.self)) else { throw .malformedPayload }
        let v = Refuse(reason: reason, bytesNeeded: try r.read(UInt64.self), budgetBytes: try r.read(UInt64.self))
        guard r.isAtEnd else { throw .malformedPayload }
        return v
    }
}
