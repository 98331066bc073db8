/// How a serving node hands control back between messages, so whoever runs it
/// (the agent under systemd: watchdog pings, status lines, a stop signal) is
/// heard even while no work arrives. The default never interrupts.
public struct Supervisor {
    /// Longest a serving loop blocks on its socket before calling `check`; -1 blocks until a message.
    public var checkIntervalMs: Int32
    /// Called after every handled message and every quiet interval; false stops serving cleanly.
    public var check: () -> Bool

    public init(checkIntervalMs: Int32 = -1, check: @escaping () -> Bool = { true }) {
        self.checkIntervalMs = checkIntervalMs
        self.check = check
    }
}

extension Supervisor {
    /// The socket timeout a loop with its own idle limit (`idleMs`, -1 none) should use.
    func receiveTimeout(idleMs: Int32) -> Int32 {
        if checkIntervalMs < 0 { return idleMs }
        if idleMs < 0 { return checkIntervalMs }
        return min(checkIntervalMs, idleMs)
    }
}
