import CIOPSystem
import IOPNet
import IOPWire

/// Setup and control frames, shared by both roles: whole messages in arrays (they allocate; the serving
/// path builds its frames in the arena instead).
extension Socket {
    /// Binds, retrying for a few seconds while the port is still held: a restarted node's previous sockets
    /// close asynchronously, and a port a node was given can be held for a moment by another process's
    /// outgoing connection (a loopback connect to a port nobody listens on can take it as its own source).
    func bindRetrying(_ endpoint: String) throws(NetError) {
        var tries = 0
        while true {
            do throws(NetError) { return try bind(endpoint) } catch {
                tries += 1
                guard error.isAddressInUse, tries < 50 else { throw error }
                iop_sleep_ns(100_000_000)
            }
        }
    }

    func sendFrame(_ kind: MessageKind, requestID: UInt64 = 0, step: UInt32 = 0, payload: [UInt8] = [])
        throws(NodeError)
    {
        let frame = try encodeFrame(kind, requestID: requestID, step: step, payload: payload)
        var failure: NodeError?
        frame.withUnsafeBytes { b in
            do throws(NetError) { try send(b) } catch { failure = .net(error) }
        }
        if let failure { throw failure }
    }

    /// One whole message and its header (setup path: allocates).
    func receiveFrame(waitingFor what: String, maxPayload: Int) throws(NodeError) -> (MessageHeader, [UInt8]) {
        let bytes: [UInt8]
        do { bytes = try receiveMessage() } catch {
            if error.isTimeout { throw .timedOut(waitingFor: what) }
            throw .net(error)
        }
        var result: Result<MessageHeader, WireError> = .failure(.malformedPayload)
        bytes.withUnsafeBytes { b in
            do throws(WireError) { result = .success(try Wire.decode(b, maxPayload: maxPayload)) } catch {
                result = .failure(error)
            }
        }
        switch result {
        case .success(let header): return (header, Array(bytes[MessageHeader.size...]))
        case .failure(let e): throw .wire(e)
        }
    }
}

/// A whole frame in an array (setup path: allocates).
func encodeFrame(_ kind: MessageKind, requestID: UInt64 = 0, step: UInt32 = 0, payload: [UInt8] = [])
    throws(NodeError) -> [UInt8]
{
    var frame = [UInt8](repeating: 0, count: MessageHeader.size + payload.count)
    var failure: NodeError?
    payload.withUnsafeBytes { p in
        frame.withUnsafeMutableBytes { f in
            do throws(WireError) {
                _ = try Wire.encode(kind: kind, requestID: requestID, step: step, payload: p, into: f)
            } catch { failure = .wire(error) }
        }
    }
    if let failure { throw failure }
    return frame
}
