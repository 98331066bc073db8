import IOPCore
import IOPWire

/// A weight shard: whole output channels of one op's parameters in
/// interchange layout, which the board packs straight into its arena.
///
///     u32 op, u32 first channel, u32 channel count, u32 flags (bit 0: bias follows),
///     f32 weights[count x kind.weightsPerChannel], f32 bias[count] (if flagged)
public enum ShardCodec {
    public static let headerSize = 16
    /// Shard messages are at most this big (or the smaller board's activation region)...
    public static let frameLimit = 1 << 20
    /// ...and at most this many wait in a socket queue at either end, so loading a
    /// board costs its arena plus a few MiB of queued messages, not a second copy of its weights.
    public static let queueLength: Int32 = 8

    public struct Header: Equatable, Sendable {
        public var op: Int, first: Int, count: Int, hasBias: Bool
        public init(op: Int, first: Int, count: Int, hasBias: Bool) {
            self.op = op; self.first = first; self.count = count; self.hasBias = hasBias
        }
        public var channels: Range<Int> { first..<(first + count) }
    }

    /// Floats of a shard frame carrying one channel of `kind`: every board stages at least one in
    /// its activation region while loading, so the arena reserves room for it.
    public static func stagingFloats(_ kind: LayerKind) -> Int {
        (MessageHeader.size + headerSize) / 4 + 1 + kind.weightsPerChannel + 1
    }

    public static func payloadSize(_ kind: LayerKind, channels: Int, hasBias: Bool) -> Int {
        headerSize + 4 * channels * (kind.weightsPerChannel + (hasBias ? 1 : 0))
    }

    /// Channels of `kind` per message so a shard frame fits `bytes` (at least one).
    public static func channelsPerMessage(_ kind: LayerKind, hasBias: Bool, frameBytes bytes: Int) -> Int {
        let perChannel = 4 * (kind.weightsPerChannel + (hasBias ? 1 : 0))
        return max(1, (bytes - MessageHeader.size - headerSize) / max(perChannel, 1))
    }

    /// Writes a shard's header at the start of its payload.
    public static func write(_ h: Header, into payload: UnsafeMutableRawBufferPointer) throws(WireError) {
        var w = ByteWriter(into: payload)
        for v in [h.op, h.first, h.count, h.hasBias ? 1 : 0] { try w.write(u32: v) }
    }

    /// Reads a shard's header and checks it against the program: a parameter
    /// op, channels in order after the `loaded` ones, and exactly the payload they need.
    public static func read(_ payload: UnsafeRawBufferPointer, ops: [Op], loaded: [Int]) throws(WireError) -> Header {
        var r = ByteReader(payload)
        let op = try r.readInt(), first = try r.readInt(), count = try r.readInt(), flags = try r.readInt()
        guard op < ops.count, flags <= 1, count > 0 else { throw .malformedPayload }
        let kind = ops[op].kind
        guard kind.parameterChannels > 0, first == loaded[op], count <= kind.parameterChannels - first,
            payload.count == payloadSize(kind, channels: count, hasBias: flags == 1)
        else { throw .malformedPayload }
        if case .addBias = kind, flags != 1 { throw .malformedPayload }
        return Header(op: op, first: first, count: count, hasBias: flags == 1)
    }
}
