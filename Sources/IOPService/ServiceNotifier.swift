import CIOPSystem

/// systemd's notify protocol (sd_notify(3)) spoken directly, without
/// libsystemd: newline-separated `KEY=VALUE` datagrams to the AF_UNIX socket
/// named by `NOTIFY_SOCKET`. Outside systemd (no socket) every call is a no-op.
public struct ServiceNotifier {
    let socket: String?
    /// Half of `WATCHDOG_USEC` (systemd's advice), or 0 when no watchdog is set.
    public let watchdogIntervalNs: UInt64
    var lastPing: UInt64 = 0
    /// systemd arms the watchdog once start-up completes (READY=1); until then TimeoutStartSec= governs.
    var isReady = false
    var lastStatus: UInt64 = 0

    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` (a watchdog meant for another process is ignored).
    public init() {
        socket = ServiceNotifier.environment("NOTIFY_SOCKET")
        var interval: UInt64 = 0
        if let usec = ServiceNotifier.environment("WATCHDOG_USEC").flatMap({ UInt64($0) }), usec > 0 {
            let pid = ServiceNotifier.environment("WATCHDOG_PID").flatMap { Int32($0) }
            if pid == nil || pid == getpid() { interval = usec * 1000 / 2 }
        }
        watchdogIntervalNs = interval
    }

    /// How often a serving loop must hand control back so pings stay on time: a
    /// quarter of the watchdog period, at most `ceilingMs`.
    public func checkIntervalMs(ceilingMs: Int32) -> Int32 {
        guard watchdogIntervalNs > 0 else { return ceilingMs }
        return Int32(max(1, min(UInt64(ceilingMs), watchdogIntervalNs / 2_000_000)))
    }

    /// Sends `state` as is (lines like `READY=1\nSTATUS=...`); failures are not fatal to a node.
    public func send(_ state: String) {
        guard let socket else { return }
        var s = state
        _ = s.withUTF8 { bytes in socket.withCString { iop_datagram_send($0, bytes.baseAddress, bytes.count) } }
    }

    public mutating func ready(status: String) {
        send("READY=1\nSTATUS=" + status)
        isReady = true
        lastPing = iop_monotonic_ns()
        lastStatus = lastPing
    }

    public func stopping(status: String) { send("STOPPING=1\nSTATUS=" + status) }

    /// Pings the watchdog when half its period has passed since READY=1 or the
    /// last ping. Cheap and allocation-free when nothing is due, so serving loops call it often.
    public mutating func tick() {
        guard watchdogIntervalNs > 0, isReady else { return }
        let now = iop_monotonic_ns()
        if now &- lastPing >= watchdogIntervalNs {
            send("WATCHDOG=1")
            lastPing = now
        }
    }

    /// True at most once per `periodNs`: whether a fresh `STATUS=` line is worth sending.
    public mutating func statusDue(periodNs: UInt64 = 1_000_000_000) -> Bool {
        guard socket != nil else { return false }
        let now = iop_monotonic_ns()
        if now &- lastStatus < periodNs { return false }
        lastStatus = now
        return true
    }

    static func environment(_ name: String) -> String? {
        guard let value = getenv(name) else { return nil }
        let s = String(cString: value)
        return s.isEmpty ? nil : s
    }
}
