import CIOPSystem
import IOPNet

/// What a probe failed on, for the agent to print.
public enum ProbeError: Error {
    case net(NetError)
    case protocolViolation(String)

    public var message: String {
        switch self {
        case .net(let e): return e.message
        case .protocolViolation(let m): return "probe: " + m
        }
    }
}

/// One direction of a burst at one size.
public struct ProbeBurst: Sendable {
    public var bytes: Int
    public var messages: Int
    /// From the first send to the last byte heard (the acknowledgement, or the last message).
    public var wallNs: UInt64
    /// Process CPU time each end spent on the burst (libzmq's I/O thread included).
    public var senderCpuNs: UInt64
    public var receiverCpuNs: UInt64
}

/// The link between this board (the client, the leader in a cluster) and a serving peer, measured
/// with real ZeroMQ messages: one-way latency from small ping-pongs, and bursts at several sizes in
/// both directions for the bandwidth and the CPU each end spends per byte (a throttled board pays
/// real time copying and checksumming what it sends and receives).
///
/// Every message starts with 16 bytes: the operation (UInt32), a count (UInt32) and a value (UInt64),
/// little-endian. The client says hello with its reply endpoint; pings come back as pongs; a push
/// burst of `count` messages is acknowledged with the server's CPU time; a pull request makes the
/// server send `count` messages of `value` bytes, and a report once they are all in is answered
/// with the CPU time the server spent sending them (its I/O thread sends after `zmq_send` returns), a
/// report with count 1 with the CPU time it spent since hello (the ping-pongs); bye ends it.
public enum LinkProbe {
    enum Operation: UInt32 {
        case hello = 1
        case ping, pong, push, acknowledge, pull, pulled, report, bye
    }
    static let headerBytes = 16

    static func write(_ op: Operation, count: Int, value: UInt64, into buffer: UnsafeMutableRawBufferPointer) {
        buffer.storeBytes(of: op.rawValue.littleEndian, toByteOffset: 0, as: UInt32.self)
        buffer.storeBytes(of: UInt32(count).littleEndian, toByteOffset: 4, as: UInt32.self)
        buffer.storeBytes(of: value.littleEndian, toByteOffset: 8, as: UInt64.self)
    }

    static func read(_ buffer: UnsafeMutableRawBufferPointer, length: Int) throws(ProbeError) -> (
        op: Operation, count: Int, value: UInt64
    ) {
        guard length >= headerBytes,
            let op = Operation(rawValue: UInt32(littleEndian: buffer.loadUnaligned(fromByteOffset: 0, as: UInt32.self)))
        else { throw .protocolViolation("a message of " + String(length) + " bytes is not a probe message") }
        // A count above Int.max (a 32-bit board) is no count a peer of ours sends.
        guard let count = Int(exactly: UInt32(littleEndian: buffer.loadUnaligned(fromByteOffset: 4, as: UInt32.self)))
        else { throw .protocolViolation("a probe message with a count beyond this board's Int") }
        return (op, count, UInt64(littleEndian: buffer.loadUnaligned(fromByteOffset: 8, as: UInt64.self)))
    }

    static func net<T>(_ body: () throws(NetError) -> T) throws(ProbeError) -> T {
        do throws(NetError) { return try body() } catch { throw .net(error) }
    }

    /// The ZAP domain a probe's server sockets admit the peer on.
    public static let domain = "iop-probe"

    /// A probe over CURVE, as the cluster's links run: this end's keys and the one peer's public key,
    /// which the context's gatekeeper admits on `domain`. Encryption is part of what a byte costs.
    public struct Keys: Sendable {
        public var own: CurveKeypair
        public var peer: [UInt8]
        public init(own: CurveKeypair, peer: [UInt8]) {
            self.own = own; self.peer = peer
        }
    }

    /// A PULL socket bound to `listen`, a CURVE server when `keys` are given.
    static func boundInbox(_ context: Context, _ listen: String, keys: Keys?, largestBytes: Int) throws(ProbeError)
        -> Socket
    {
        try net { () throws(NetError) in
            let inbox = try Socket(context, .pull)
            try inbox.setMaxMessageSize(largestBytes + headerBytes)
            if let keys { try inbox.makeCurveServer(keys.own, domain: domain) }
            try inbox.bind(listen)
            return inbox
        }
    }

    /// A PUSH socket connected to `endpoint`, a CURVE client of the peer when `keys` are given.
    static func connectedOutbox(_ context: Context, _ endpoint: String, keys: Keys?) throws(ProbeError) -> Socket {
        try net { () throws(NetError) in
            let outbox = try Socket(context, .push, lingerMs: 1000)
            if let keys { try outbox.makeCurveClient(keys.own, server: keys.peer) }
            try outbox.connect(endpoint)
            return outbox
        }
    }

    /// Serves probes on `listen` until a client says bye (or forever with `once` false). With `once`, a
    /// silence of `timeoutMs` ends it too: a server started remotely must not outlive a client that failed.
    public static func serve(
        context: Context, listen: String, keys: Keys? = nil, largestBytes: Int, once: Bool, timeoutMs: Int32 = 30000,
        heard: (String) -> Void
    ) throws(ProbeError) {
        let inbox = try boundInbox(context, listen, keys: keys, largestBytes: largestBytes)
        if once { try net { () throws(NetError) in try inbox.setTimeouts(sendMs: timeoutMs, receiveMs: timeoutMs) } }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: largestBytes + headerBytes, alignment: 64)
        defer { buffer.deallocate() }
        buffer.initializeMemory(as: UInt8.self, repeating: 0)
        var reply: Socket? = nil
        // The server blocks between requests, so CPU time since the last request handled is a burst's.
        var cpuMark = iop_process_cpu_ns()
        var pullMark = cpuMark, pingMark = cpuMark
        var pushed = 0
        while true {
            let length: Int
            do throws(NetError) { length = try inbox.receive(into: buffer) } catch {
                if error.isTimeout { throw .protocolViolation("no client for " + String(timeoutMs) + " ms") }
                throw .net(error)
            }
            let (op, count, value) = try read(buffer, length: length)
            switch op {
            case .hello:
                let endpoint = String(decoding: buffer[headerBytes..<length], as: UTF8.self)
                heard(endpoint)
                reply = try connectedOutbox(context, endpoint, keys: keys)
                pushed = 0
                pingMark = iop_process_cpu_ns()
            case .ping:
                write(.pong, count: count, value: 0, into: buffer)
                try send(reply, buffer, bytes: headerBytes)
            case .push:
                pushed += 1
                if pushed == count {
                    pushed = 0
                    write(.acknowledge, count: count, value: iop_process_cpu_ns() - cpuMark, into: buffer)
                    try send(reply, buffer, bytes: headerBytes)
                }
            case .pull:
                let bytes = Int(value)
                guard bytes >= headerBytes, bytes <= largestBytes + headerBytes, count > 0 else {
                    throw .protocolViolation("a pull of " + String(count) + " x " + String(bytes) + " bytes")
                }
                pullMark = cpuMark
                for k in 0..<count {
                    write(.pulled, count: k + 1, value: 0, into: buffer)
                    try send(reply, buffer, bytes: bytes)
                }
            case .report:
                // count 1 asks for the CPU since hello: the pings and this report, one message at a time.
                let mark = count == 1 ? pingMark : pullMark
                write(.acknowledge, count: 0, value: iop_process_cpu_ns() - mark, into: buffer)
                try send(reply, buffer, bytes: headerBytes)
            case .bye:
                if once { return }
                reply = nil
            case .pong, .acknowledge, .pulled:
                throw .protocolViolation("the client sent a server's message")
            }
            if op != .push || pushed == 0 { cpuMark = iop_process_cpu_ns() }
        }
    }

    static func send(_ socket: Socket?, _ buffer: UnsafeMutableRawBufferPointer, bytes: Int) throws(ProbeError) {
        guard let socket else { throw .protocolViolation("a request before hello") }
        try net { () throws(NetError) in try socket.send(UnsafeRawBufferPointer(rebasing: buffer[0..<bytes])) }
    }

    /// What a client measured against one server.
    public struct Result: Sendable {
        public var pingNs: [UInt64]
        public var push: [ProbeBurst]
        public var pull: [ProbeBurst]
        /// Single messages of the largest size, each pushed after 200 ms of silence: how long until
        /// the acknowledgement. A shaped link (a token bucket) lets its bucket through at once.
        public var loneBytes: Int = 0
        public var loneNs: [UInt64] = []
        /// Process CPU time each end spent on the ping-pongs, each message sent alone and waited for, as
        /// a cluster's messages are: the client's over its sends and receives, the server's over those
        /// and the report that asked for it.
        public var pingCpuNs: UInt64 = 0
        public var peerPingCpuNs: UInt64 = 0
    }

    /// Probes the server at `peer`, answering on `listen` (its bound endpoint is sent in hello):
    /// `pings` ping-pongs, then each size pushed and pulled in bursts of about `burstBytes`.
    public static func measure(
        context: Context, peer: String, listen: String, keys: Keys? = nil, sizes: [Int], burstBytes: Int, pings: Int,
        timeoutMs: Int32
    ) throws(ProbeError) -> Result {
        let largest = sizes.max() ?? headerBytes
        let inbox = try boundInbox(context, listen, keys: keys, largestBytes: largest)
        let outbox = try connectedOutbox(context, peer, keys: keys)
        let endpoint = try net { () throws(NetError) in
            try inbox.setTimeouts(sendMs: timeoutMs, receiveMs: timeoutMs)
            try outbox.setTimeouts(sendMs: timeoutMs, receiveMs: timeoutMs)
            return try inbox.boundEndpoint()
        }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: largest + headerBytes, alignment: 64)
        defer { buffer.deallocate() }
        buffer.initializeMemory(as: UInt8.self, repeating: 0)
        func post(_ op: Operation, count: Int, value: UInt64, bytes: Int) throws(ProbeError) {
            write(op, count: count, value: value, into: buffer)
            try net { () throws(NetError) in try outbox.send(UnsafeRawBufferPointer(rebasing: buffer[0..<bytes])) }
        }
        func expect(_ wanted: Operation) throws(ProbeError) -> (count: Int, value: UInt64) {
            let length = try net { () throws(NetError) in try inbox.receive(into: buffer) }
            let (op, count, value) = try read(buffer, length: length)
            guard op == wanted else { throw .protocolViolation("expected operation " + String(wanted.rawValue)) }
            return (count, value)
        }
        var hello = Array(endpoint.utf8)
        write(.hello, count: 0, value: 0, into: buffer)
        for (k, b) in hello.enumerated() { buffer[headerBytes + k] = b }
        try net { () throws(NetError) in
            try outbox.send(UnsafeRawBufferPointer(rebasing: buffer[0..<(headerBytes + hello.count)]))
        }
        hello.removeAll()
        var result = Result(pingNs: [], push: [], pull: [])
        let pingCpu = iop_process_cpu_ns()
        for k in 0..<pings {
            let start = iop_monotonic_ns()
            try post(.ping, count: k, value: 0, bytes: headerBytes)
            _ = try expect(.pong)
            result.pingNs.append(iop_monotonic_ns() - start)
        }
        result.pingCpuNs = iop_process_cpu_ns() - pingCpu
        try post(.report, count: 1, value: 0, bytes: headerBytes)
        result.peerPingCpuNs = try expect(.acknowledge).value
        for size in sizes {
            let bytes = max(size, headerBytes)
            let count = max(4, min(4096, burstBytes / bytes))
            var cpu = iop_process_cpu_ns()
            var start = iop_monotonic_ns()
            for _ in 0..<count { try post(.push, count: count, value: 0, bytes: bytes) }
            let serverCpu = try expect(.acknowledge).value
            result.push.append(
                ProbeBurst(
                    bytes: bytes, messages: count, wallNs: iop_monotonic_ns() - start,
                    senderCpuNs: iop_process_cpu_ns() - cpu, receiverCpuNs: serverCpu))
            cpu = iop_process_cpu_ns()
            start = iop_monotonic_ns()
            try post(.pull, count: count, value: UInt64(bytes), bytes: headerBytes)
            var last = 0
            for _ in 0..<count { last = try expect(.pulled).count }
            guard last == count else { throw .protocolViolation("pulled messages arrived out of order") }
            let wall = iop_monotonic_ns() - start, mine = iop_process_cpu_ns() - cpu
            try post(.report, count: 0, value: 0, bytes: headerBytes)
            result.pull.append(
                ProbeBurst(
                    bytes: bytes, messages: count, wallNs: wall, senderCpuNs: try expect(.acknowledge).value,
                    receiverCpuNs: mine))
        }
        result.loneBytes = max(largest, headerBytes)
        for _ in 0..<3 {
            iop_sleep_ns(200_000_000)
            let start = iop_monotonic_ns()
            try post(.push, count: 1, value: 0, bytes: result.loneBytes)
            _ = try expect(.acknowledge)
            result.loneNs.append(iop_monotonic_ns() - start)
        }
        try post(.bye, count: 0, value: 0, bytes: headerBytes)
        return result
    }
}

extension LinkProbe.Result {
    /// One-way latency of a small message: half the median ping-pong.
    public var latencyMs: Double {
        guard !pingNs.isEmpty else { return 0 }
        let sorted = pingNs.sorted()
        return Double(sorted[sorted.count / 2]) / 2e6
    }

    /// Megabits per second of a burst once its first message's latency is taken off.
    public func megabitsPerSecond(_ b: ProbeBurst) -> Double {
        let ms = max(Double(b.wallNs) / 1e6 - 2 * latencyMs, 1e-3)
        return Double(b.bytes * b.messages) * 8 / (ms * 1e3)
    }

    /// The largest burst of a direction: per-message costs amortised, the link's own rate.
    static func largest(_ bursts: [ProbeBurst]) -> ProbeBurst? { bursts.max { $0.bytes < $1.bytes } }

    /// The link's rate: the slower direction at the largest size.
    public var bandwidthMbps: Double {
        let rates = [Self.largest(push), Self.largest(pull)].compactMap { $0 }.map(megabitsPerSecond)
        return rates.min() ?? 0
    }

    /// Bytes a link lets through at once after a silence (a token bucket's depth; 0 for a plain link):
    /// what a lone message's time falls short of latency plus its bytes at the link's rate.
    public var burstBytes: Double {
        guard !loneNs.isEmpty, bandwidthMbps > 0 else { return 0 }
        let ms = Double(loneNs.sorted()[loneNs.count / 2]) / 1e6 - 2 * latencyMs
        let atRate = Double(loneBytes) * 8 / (bandwidthMbps * 1e3)
        return min(Double(loneBytes), max(0, (atRate - ms) * bandwidthMbps * 1e3 / 8))
    }

    /// CPU microseconds per message sent or received alone, this end and the peer (from the ping-pongs).
    public var localMessageCpuUs: Double {
        pingNs.isEmpty ? 0 : Double(pingCpuNs) / Double(2 * pingNs.count) / 1e3
    }
    public var peerMessageCpuUs: Double {
        pingNs.isEmpty ? 0 : Double(peerPingCpuNs) / Double(2 * pingNs.count + 1) / 1e3
    }

    static func perByte(_ ns: UInt64, _ b: ProbeBurst) -> Double { Double(ns) / Double(b.bytes * b.messages) }
    /// CPU nanoseconds per byte, at the largest size, this end and the peer, sending and receiving.
    public var localSendNsPerByte: Double { Self.largest(push).map { Self.perByte($0.senderCpuNs, $0) } ?? 0 }
    public var localReceiveNsPerByte: Double { Self.largest(pull).map { Self.perByte($0.receiverCpuNs, $0) } ?? 0 }
    public var peerSendNsPerByte: Double { Self.largest(pull).map { Self.perByte($0.senderCpuNs, $0) } ?? 0 }
    public var peerReceiveNsPerByte: Double { Self.largest(push).map { Self.perByte($0.receiverCpuNs, $0) } ?? 0 }
}
