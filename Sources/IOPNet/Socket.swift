import CIOPZap
import CZMQ

/// A libzmq error: the call that failed and its errno.
public struct NetError: Error, Equatable, Sendable {
    public enum Operation: UInt8, Sendable { case context, socket, option, bind, connect, send, receive }
    public var operation: Operation
    public var errno: Int32
    /// A message longer than the buffer it was received into (libzmq truncates silently).
    public var truncatedLength: Int = 0

    public var isTimeout: Bool { errno == EAGAIN }
    /// A bind to a port that is still held (by another process, or by sockets of this one still closing).
    public var isAddressInUse: Bool { operation == .bind && errno == EADDRINUSE }
    public var message: String {
        if truncatedLength > 0 {
            return "received message of " + String(truncatedLength) + " bytes does not fit its buffer"
        }
        return "zmq " + NetError.name(operation) + " failed: " + String(cString: zmq_strerror(errno))
    }
    static func name(_ o: Operation) -> String {
        switch o {
        case .context: return "context"
        case .socket: return "socket"
        case .option: return "setsockopt"
        case .bind: return "bind"
        case .connect: return "connect"
        case .send: return "send"
        case .receive: return "receive"
        }
    }
    static func last(_ op: Operation) -> NetError { NetError(operation: op, errno: zmq_errno()) }
}

/// One libzmq context per process (zmq_ctx_new / zmq_ctx_term).
public final class Context {
    let raw: UnsafeMutableRawPointer
    public init() throws(NetError) {
        guard let c = zmq_ctx_new() else { throw .last(.context) }
        raw = c
    }
    var terminated = false
    /// The ZAP handler, once `guarded` started it.
    public private(set) var gatekeeper: Gatekeeper?

    /// Starts this context's ZAP handler (once), before any CURVE server socket binds: without it libzmq would
    /// admit any client that knows a server's public key.
    public func guarded() throws(NetError) -> Gatekeeper {
        if let gatekeeper { return gatekeeper }
        let g = try Gatekeeper(self)
        gatekeeper = g
        return g
    }

    /// Waits until every socket of the context is closed and their lingering
    /// messages are delivered (or their linger ran out), then releases libzmq.
    /// A process calls it before exiting so its last messages are not lost.
    public func terminate() {
        if !terminated {
            zmq_ctx_term(raw)
            // The handler's socket ended with the context: its thread is done.
            if let gatekeeper { iop_zap_join(gatekeeper.raw) }
        }
        terminated = true
    }
    deinit { terminate() }
}

/// A PUSH or PULL socket (zmq_socket). Sends and receives go straight from and
/// into caller-owned buffers; closed on deinit with LINGER set, so closing
/// never hangs on undelivered messages.
public final class Socket {
    public enum Kind: Sendable { case push, pull }
    let raw: UnsafeMutableRawPointer
    let context: Context  // keeps the context alive while the socket is

    public init(_ context: Context, _ kind: Kind, lingerMs: Int32 = 0) throws(NetError) {
        guard let s = zmq_socket(context.raw, kind == .push ? ZMQ_PUSH : ZMQ_PULL) else { throw .last(.socket) }
        raw = s
        self.context = context
        try set(ZMQ_LINGER, lingerMs)
        // Queue only to completed connections, so a send to a peer that is not up blocks or times out
        // instead of vanishing.
        if kind == .push { try set(ZMQ_IMMEDIATE, Int32(1)) }
    }

    /// Wraps a socket libzmq made (a monitor's PAIR); LINGER 0.
    init(adopting raw: UnsafeMutableRawPointer, context: Context) {
        self.raw = raw
        self.context = context
        var zero: Int32 = 0
        zmq_setsockopt(raw, ZMQ_LINGER, &zero, MemoryLayout<Int32>.size)
    }

    deinit { zmq_close(raw) }

    /// ZMTP heartbeats, sent and checked by libzmq's I/O thread (so a busy node still answers them): a PING every
    /// `intervalMs`, and the connection dropped when no traffic arrives for `timeoutMs`. Call before connect or bind.
    public func setHeartbeat(intervalMs: Int32, timeoutMs: Int32) throws(NetError) {
        try set(ZMQ_HEARTBEAT_IVL, intervalMs)
        try set(ZMQ_HEARTBEAT_TIMEOUT, timeoutMs)
        try set(ZMQ_HEARTBEAT_TTL, timeoutMs)
    }

    func set(_ option: Int32, _ value: Int32) throws(NetError) {
        var v = value
        if zmq_setsockopt(raw, option, &v, MemoryLayout<Int32>.size) != 0 { throw .last(.option) }
    }

    func set(_ option: Int32, _ value: Int64) throws(NetError) {
        var v = value
        if zmq_setsockopt(raw, option, &v, MemoryLayout<Int64>.size) != 0 { throw .last(.option) }
    }

    /// How long closing (and the context's `terminate`) keeps trying to deliver queued messages.
    public func setLinger(_ ms: Int32) throws(NetError) { try set(ZMQ_LINGER, ms) }
    /// Largest message accepted (ZMQ_MAXMSGSIZE): a peer sending more is disconnected.
    /// libzmq checks the size on the wire, where CURVE adds its own framing to each message: `bytes` is what the
    /// caller expects, plus room for that.
    public func setMaxMessageSize(_ bytes: Int) throws(NetError) {
        // In 64 bits: a 32-bit board's budget may be Int.max (parseByteSize clamps to it).
        try set(ZMQ_MAXMSGSIZE, Int64(bytes) + Int64(Socket.curveOverhead))
    }
    /// More than CURVE's MESSAGE command adds to a message (its name, nonce, flags and MAC: 33 bytes).
    static let curveOverhead = 256
    /// Messages queued per direction before sends block (ZMQ_SNDHWM / ZMQ_RCVHWM).
    public func setHighWaterMark(_ messages: Int32) throws(NetError) {
        try set(ZMQ_SNDHWM, messages); try set(ZMQ_RCVHWM, messages)
    }
    /// How long send and receive wait before failing with EAGAIN; -1 waits forever.
    public func setTimeouts(sendMs: Int32, receiveMs: Int32) throws(NetError) {
        try set(ZMQ_SNDTIMEO, sendMs); try set(ZMQ_RCVTIMEO, receiveMs)
    }

    public func bind(_ endpoint: String) throws(NetError) {
        var ok = true
        endpoint.withCString { ok = zmq_bind(raw, $0) == 0 }
        if !ok { throw .last(.bind) }
    }

    public func connect(_ endpoint: String) throws(NetError) {
        var ok = true
        endpoint.withCString { ok = zmq_connect(raw, $0) == 0 }
        if !ok { throw .last(.connect) }
    }

    /// The endpoint actually bound (resolves `tcp://127.0.0.1:*` to its port).
    public func boundEndpoint() throws(NetError) -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        var size = buffer.count
        if zmq_getsockopt(raw, ZMQ_LAST_ENDPOINT, &buffer, &size) != 0 { throw .last(.option) }
        let length = buffer.prefix(max(0, size - 1)).firstIndex(of: 0) ?? max(0, size - 1)
        return String(decoding: buffer.prefix(length).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public func send(_ bytes: UnsafeRawBufferPointer) throws(NetError) {
        while zmq_send(raw, bytes.baseAddress, bytes.count, 0) < 0 {
            if zmq_errno() != EINTR { throw .last(.send) }
        }
    }

    /// One message into `msg` (zmq_msg_recv, retried on EINTR); its size.
    func receive(_ msg: inout zmq_msg_t) throws(NetError) -> Int {
        var n: Int32
        repeat { n = zmq_msg_recv(&msg, raw, 0) } while n < 0 && zmq_errno() == EINTR
        if n < 0 { throw .last(.receive) }
        return zmq_msg_size(&msg)
    }

    /// Receives one message of any size (zmq_msg_recv), for setup messages
    /// whose size is not known in advance; allocates, so not for the inference path.
    public func receiveMessage() throws(NetError) -> [UInt8] {
        var msg = zmq_msg_t()
        zmq_msg_init(&msg)
        defer { zmq_msg_close(&msg) }
        let size = try receive(&msg)
        var out = [UInt8](repeating: 0, count: size)
        if size > 0 {
            out.withUnsafeMutableBytes { $0.baseAddress!.copyMemory(from: zmq_msg_data(&msg), byteCount: size) }
        }
        return out
    }

    /// Receives one message into `buffer` and who sent it: the user id the ZAP handler gave the peer's key
    /// ("role:name"; empty without CURVE) into `peer`. Returns both lengths; allocates nothing here.
    public func receive(into buffer: UnsafeMutableRawBufferPointer, peer: UnsafeMutableRawBufferPointer)
        throws(NetError) -> (length: Int, peerLength: Int)
    {
        var msg = zmq_msg_t()
        zmq_msg_init(&msg)
        defer { zmq_msg_close(&msg) }
        let size = try receive(&msg)
        if size > buffer.count { throw NetError(operation: .receive, errno: 0, truncatedLength: size) }
        if size > 0 { buffer.baseAddress!.copyMemory(from: zmq_msg_data(&msg), byteCount: size) }
        var peerLength = 0
        if let id = zmq_msg_gets(&msg, "User-Id") {
            while id[peerLength] != 0 && peerLength < peer.count {
                peer[peerLength] = UInt8(bitPattern: id[peerLength])
                peerLength += 1
            }
        }
        return (size, peerLength)
    }

    /// Receives one message into `buffer`; returns its length. A message longer
    /// than the buffer is an error (zmq_recv would report the full length and truncate).
    /// With `dontWait`, only a message already queued: none is a timeout.
    public func receive(into buffer: UnsafeMutableRawBufferPointer, dontWait: Bool = false) throws(NetError) -> Int {
        var n: Int32
        repeat {
            n = zmq_recv(raw, buffer.baseAddress, buffer.count, dontWait ? ZMQ_DONTWAIT : 0)
        } while n < 0
            && zmq_errno() == EINTR
        if n < 0 { throw .last(.receive) }
        if Int(n) > buffer.count { throw NetError(operation: .receive, errno: 0, truncatedLength: Int(n)) }
        return Int(n)
    }
}
