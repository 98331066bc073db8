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

/// One wait on a socket, made of supervisor-sized slices: a stop request is
/// heard within a slice, and `limitMs` (-1: none) still bounds the whole wait.
struct SlicedWait {
    enum Next { case again, stop, expired }

    /// The socket timeout to use while waiting.
    let sliceMs: Int32
    let limitMs: Int32
    var waitedMs: Int32 = 0

    init(_ supervisor: Supervisor, limitMs: Int32) {
        self.limitMs = limitMs
        if supervisor.checkIntervalMs < 0 {
            sliceMs = limitMs
        } else if limitMs < 0 {
            sliceMs = supervisor.checkIntervalMs
        } else {
            sliceMs = min(supervisor.checkIntervalMs, limitMs)
        }
    }

    /// A slice passed with nothing: wait again, stop (the supervisor says so), or give up.
    mutating func sliceElapsed(_ supervisor: Supervisor) -> Next {
        waitedMs += sliceMs
        if limitMs >= 0 && waitedMs >= limitMs { return .expired }
        return supervisor.check() ? .again : .stop
    }

    mutating func restart() { waitedMs = 0 }
}
