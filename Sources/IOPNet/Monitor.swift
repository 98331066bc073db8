import CZMQ

/// Whether a socket's peer is still there: libzmq's own socket events (zmq_socket_monitor), read without blocking.
/// With heartbeats on (`Socket.setHeartbeat`) libzmq's I/O thread pings the peer even while this thread computes,
/// and drops the connection when the pongs stop; a peer that exits drops it at once.
public final class Monitor {
    let pair: Socket
    /// Peers connected now, as the events tell (a PUSH socket here has one peer).
    public private(set) var connected = 0
    /// Disconnections since the last `takeDisconnections()`.
    var disconnections = 0

    /// Watches `socket`'s connections; `name` must be unique in the context (it names an inproc endpoint).
    public init(_ socket: Socket, name: String) throws(NetError) {
        let endpoint = "inproc://iop-monitor-" + name
        var ok = true
        endpoint.withCString {
            ok = zmq_socket_monitor(socket.raw, $0, ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED) == 0
        }
        if !ok { throw .last(.option) }
        guard let raw = zmq_socket(socket.context.raw, ZMQ_PAIR) else { throw .last(.socket) }
        pair = Socket(adopting: raw, context: socket.context)
        try pair.connect(endpoint)
    }

    /// Reads the events that arrived; returns how many disconnections there were since the last call.
    public func takeDisconnections() -> Int {
        var event = (UInt16(0), UInt16(0), UInt16(0), UInt16(0))  // u16 event, u32 value, padding
        var endpoint = (UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        while true {
            let n = withUnsafeMutableBytes(of: &event) { zmq_recv(pair.raw, $0.baseAddress, 6, ZMQ_DONTWAIT) }
            if n < 0 { break }
            // The second frame names the endpoint: not needed here.
            _ = withUnsafeMutableBytes(of: &endpoint) { zmq_recv(pair.raw, $0.baseAddress, 32, ZMQ_DONTWAIT) }
            if Int32(event.0) == ZMQ_EVENT_DISCONNECTED {
                connected = max(0, connected - 1)
                disconnections += 1
            } else if Int32(event.0) == ZMQ_EVENT_HANDSHAKE_SUCCEEDED {
                connected += 1
            }
        }
        defer { disconnections = 0 }
        return disconnections
    }
}
