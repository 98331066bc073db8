import IOPNet
import IOPWire
import Testing

/// PUSH/PULL over loopback TCP, with the wire format on top.
@Suite struct SocketTests {
    func pair(maxMessage: Int = 1 << 20) throws -> (Socket, Socket, Context) {
        let ctx = try Context()
        let pull = try Socket(ctx, .pull)
        try pull.setMaxMessageSize(maxMessage)
        try pull.setTimeouts(sendMs: 2000, receiveMs: 2000)
        try pull.bind("tcp://127.0.0.1:*")
        let push = try Socket(ctx, .push)
        try push.setTimeouts(sendMs: 2000, receiveMs: 2000)
        try push.connect(try pull.boundEndpoint())
        return (push, pull, ctx)
    }

    @Test func framesCrossLoopbackIntact() throws {
        let (push, pull, _) = try pair()
        let payload = (0..<10_000).map { UInt8($0 % 251) }
        var f = [UInt8](repeating: 0, count: MessageHeader.size + payload.count)
        _ = try payload.withUnsafeBytes { p in
            try f.withUnsafeMutableBytes {
                try Wire.encode(kind: .activation, requestID: 42, step: 5, payload: p, into: $0)
            }
        }
        try f.withUnsafeBytes { try push.send($0) }
        var buffer = [UInt8](repeating: 0, count: 20_000)
        let n = try buffer.withUnsafeMutableBytes { try pull.receive(into: $0) }
        #expect(n == f.count && Array(buffer[0..<n]) == f)
        let h = try buffer.withUnsafeBytes {
            try Wire.decode(UnsafeRawBufferPointer(rebasing: $0[0..<n]), maxPayload: 1 << 20)
        }
        #expect(h.kind == .activation && h.requestID == 42 && h.step == 5)
    }

    @Test func aMessageLargerThanTheBufferIsAnError() throws {
        let (push, pull, _) = try pair()
        try [UInt8](repeating: 1, count: 100).withUnsafeBytes { try push.send($0) }
        var small = [UInt8](repeating: 0, count: 64)
        do {
            _ = try small.withUnsafeMutableBytes { try pull.receive(into: $0) }
            Issue.record("a 100-byte message fitted 64 bytes")
        } catch let e as NetError {
            #expect(e.truncatedLength == 100 && e.message.contains("100 bytes"))
        }
    }

    @Test func receiveTimesOutInsteadOfHanging() throws {
        let (_, pull, _) = try pair()
        try pull.setTimeouts(sendMs: 100, receiveMs: 100)
        var buffer = [UInt8](repeating: 0, count: 16)
        do {
            _ = try buffer.withUnsafeMutableBytes { try pull.receive(into: $0) }
            Issue.record("received from nobody")
        } catch let e as NetError {
            #expect(e.isTimeout)
        }
    }

    @Test func oversizedMessagesAreDropped() throws {
        let (push, pull, _) = try pair(maxMessage: 1000)
        try pull.setTimeouts(sendMs: 300, receiveMs: 300)
        try [UInt8](repeating: 7, count: 5000).withUnsafeBytes { try push.send($0) }
        var buffer = [UInt8](repeating: 0, count: 8000)
        #expect(throws: NetError.self) { try buffer.withUnsafeMutableBytes { try pull.receive(into: $0) } }
    }

    @Test func badEndpointsFailWithANamedCall() throws {
        let ctx = try Context()
        let s = try Socket(ctx, .pull)
        do { try s.bind("tcp://not-an-address"); Issue.record("bound") } catch {
            #expect(error.operation == .bind && error.message.hasPrefix("zmq bind failed: "))
        }
    }
}
