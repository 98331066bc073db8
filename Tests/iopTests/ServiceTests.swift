import Foundation
import Glibc
import TestSupport
import Testing

/// A datagram socket standing in for systemd's notify socket: collects every
/// message with the time it arrived.
final class NotifySocket: @unchecked Sendable {
    let path: String
    private let fd: Int32
    private let lock = NSLock()
    private var received: [(at: Double, text: String)] = []
    private var open = true

    init(_ name: String) throws {
        path = temporaryPath(name)
        unlink(path)
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { p in
            path.utf8CString.withUnsafeBytes {
                p.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0.prefix(p.count - 1)))
            }
        }
        let ok = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        try #require(fd >= 0 && ok == 0, "cannot bind a datagram socket at \(path)")
        var timeout = timeval(tv_sec: 0, tv_usec: 100_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        Thread.detachNewThread { [self] in
            var buffer = [UInt8](repeating: 0, count: 4096)
            while lock.withLock({ open }) {
                let n = recv(fd, &buffer, buffer.count, 0)
                if n > 0 {
                    let text = String(decoding: buffer[0..<n], as: UTF8.self)
                    lock.withLock { received.append((Date().timeIntervalSince1970, text)) }
                }
            }
        }
    }

    deinit { lock.withLock { open = false }; usleep(200_000); close(fd); unlink(path) }

    var messages: [(at: Double, text: String)] { lock.withLock { received } }

    /// Waits up to `seconds` for a message with a line starting with `line`; returns when it arrived.
    func wait(for line: String, seconds: Double) -> Double? {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if let m = messages.first(where: { $0.text.split(separator: "\n").contains { $0.hasPrefix(line) } }) {
                return m.at
            }
            usleep(20_000)
        }
        return nil
    }
}

/// A process whose stdout lines and exit are observable.
final class NodeProcess: @unchecked Sendable {
    let process = Process()
    private let lock = NSLock()
    private var out = ""
    private var err = ""

    init(_ arguments: [String], environment: [String: String]) throws {
        process.executableURL = URL(
            fileURLWithPath: URL(fileURLWithPath: CLITests.binary).deletingLastPathComponent().appendingPathComponent(
                "iop-node"
            ).path)
        process.arguments = arguments
        // Plain links unless the test gives keys: most tests here are about other things than CURVE.
        let insecure = arguments.contains("--keys") || environment["IOP_KEYS"] != nil ? [:] : ["IOP_INSECURE": "1"]
        process.environment = ProcessInfo.processInfo.environment.filter {
            !$0.key.hasPrefix("IOP_") && !$0.key.hasPrefix("NOTIFY_") && !$0.key.hasPrefix("WATCHDOG_")
        }
        .merging(insecure) { $1 }.merging(environment) { $1 }
        let o = Pipe(), e = Pipe()
        process.standardOutput = o; process.standardError = e
        o.fileHandleForReading.readabilityHandler = { [self] h in
            let d = h.availableData; lock.withLock { out += String(decoding: d, as: UTF8.self) }
        }
        e.fileHandleForReading.readabilityHandler = { [self] h in
            let d = h.availableData; lock.withLock { err += String(decoding: d, as: UTF8.self) }
        }
        try process.run()
    }

    var stdout: String { lock.withLock { out } }
    var stderr: String { lock.withLock { err } }

    func waitLine(prefix: String, seconds: Double) -> String? {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if let l = stdout.split(separator: "\n").first(where: { $0.hasPrefix(prefix) }) {
                return String(l.dropFirst(prefix.count))
            }
            usleep(20_000)
        }
        return nil
    }

    /// The exit status, or nil if still running after `seconds` (the process is then killed).
    func exitStatus(within seconds: Double) -> Int32? {
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning { process.interrupt(); kill(process.processIdentifier, SIGKILL); return nil }
        return process.terminationStatus
    }

    deinit { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
}

/// A port nobody listens on right now (bound to 0, read back, released).
func freeLoopbackPort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var a = sockaddr_in()
    a.sin_family = sa_family_t(AF_INET)
    a.sin_addr.s_addr = inet_addr("127.0.0.1")
    _ = withUnsafePointer(to: &a) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &a) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return Int(UInt16(bigEndian: a.sin_port))
}

/// The agent under systemd's notify protocol, with a socket the test owns in
/// place of systemd's: READY=1 only once registered, watchdog pings at half of
/// WATCHDOG_USEC, STOPPING=1 and exit 0 on SIGTERM.
@Suite(.serialized) struct ServiceTests {
    @Test func notifyReadyAfterRegistrationWatchdogAndCleanStop() throws {
        let dir = temporaryPath("service-bundle")
        let compiled = try runIOP(["compile", "--model", "lenet5", "--nodes", "2", "--planner", "oc", "--out", dir])
        try #require(compiled.status == 0, "\(compiled.stderr)")
        // One socket for both agents, as systemd has one: arrival order is sending order.
        let notify = try NotifySocket("notify.sock")
        let leaderEndpoint = "tcp://127.0.0.1:\(freeLoopbackPort())"

        // The worker starts first, configured only through the environment as
        // under EnvironmentFile=; the leader it registers with is not up yet.
        let worker = try NodeProcess(
            ["worker"],
            environment: [
                "IOP_NAME": "node1", "IOP_LISTEN": "tcp://127.0.0.1:*", "IOP_LEADER": leaderEndpoint,
                "IOP_MEMORY_BUDGET": "64MiB",
                "NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "400000",
            ])
        #expect(notify.wait(for: "STATUS=registering with \(leaderEndpoint)", seconds: 10) != nil, "\(worker.stderr)")
        usleep(1_000_000)
        #expect(!notify.messages.contains { $0.text.contains("READY=1") }, "READY=1 before the worker has a program")
        #expect(!notify.messages.contains { $0.text.contains("WATCHDOG=1") }, "watchdog pings before READY=1")

        let leader = try NodeProcess(
            [
                "leader", "--bundle", dir + "/bundle.iop", "--listen", leaderEndpoint,
                "--requests", "tcp://127.0.0.1:*", "--timeout-ms", "3000",
            ],
            environment: ["NOTIFY_SOCKET": notify.path])
        let requests = try #require(leader.waitLine(prefix: "ready ", seconds: 20), "\(leader.stderr)")
        #expect(
            notify.wait(for: "STATUS=serving requests on \(requests), 0 inferences", seconds: 10) != nil,
            "\(leader.stderr)")
        let texts = notify.messages.map(\.text)
        let workerReady = try #require(texts.firstIndex { $0.hasPrefix("READY=1\nSTATUS=serving: arena ") }, "\(texts)")
        let leaderReady = try #require(
            texts.firstIndex { $0.hasPrefix("READY=1\nSTATUS=serving requests on ") }, "\(texts)")
        // The leader is ready only after every worker is.
        #expect(workerReady < leaderReady)
        let readyAt = notify.messages[workerReady].at

        // Watchdog (the worker's alone: the leader has no WATCHDOG_USEC): a ping every 200 ms, never sooner.
        usleep(1_500_000)
        let pings = notify.messages.filter { $0.text == "WATCHDOG=1" }.map(\.at)
        #expect(pings.count >= 4, "\(pings.count) pings in 1.5 s")
        let gaps = zip(pings.dropFirst(), pings).map { $0 - $1 }
        #expect(gaps.allSatisfy { $0 >= 0.15 && $0 <= 0.8 }, "gaps between pings: \(gaps)")
        #expect(pings.allSatisfy { $0 >= readyAt })

        // SIGTERM: STOPPING=1, then a clean exit; first the worker, then the leader.
        kill(worker.process.processIdentifier, SIGTERM)
        #expect(worker.exitStatus(within: 10) == 0, "\(worker.stderr)")
        #expect(notify.messages.filter { $0.text.hasPrefix("STOPPING=1") }.count == 1)
        kill(leader.process.processIdentifier, SIGTERM)
        #expect(leader.exitStatus(within: 15) == 0, "\(leader.stderr)")
        usleep(200_000)
        #expect(notify.messages.filter { $0.text.hasPrefix("STOPPING=1") }.count == 2)
        #expect(worker.stderr.contains("<6>iop-node: stopping on signal 15"), "\(worker.stderr)")
    }

    @Test func sigtermWhileRegisteringStopsAtOnce() throws {
        let notify = try NotifySocket("notify-registering.sock")
        // Nobody listens at the leader's endpoint: the hello waits (30 s by default).
        let worker = try NodeProcess(
            [
                "worker", "--name", "lonely", "--listen", "tcp://127.0.0.1:*",
                "--leader", "tcp://127.0.0.1:\(freeLoopbackPort())", "--memory-budget", "8MiB",
            ],
            environment: ["NOTIFY_SOCKET": notify.path])
        #expect(notify.wait(for: "STATUS=registering with tcp://127.0.0.1:", seconds: 10) != nil, "\(worker.stderr)")
        kill(worker.process.processIdentifier, SIGTERM)
        #expect(worker.exitStatus(within: 5) == 0, "\(worker.stderr)")
        #expect(notify.messages.contains { $0.text.hasPrefix("STOPPING=1") })
        #expect(!notify.messages.contains { $0.text.contains("READY=1") })
    }
}
