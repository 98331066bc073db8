import CIOPSystem

/// How much of a core the board's process gets, and how it gets it. A board held to a CPU quota
/// (a cgroup, systemd's CPUQuota=) runs at full speed until its allowance for the period is spent,
/// then waits for the next period: work that starts after the board has been idle runs its first
/// `burstMs` at full speed, and only then at `share` of it. Inference is exactly such work (a worker
/// idles until its input arrives), so the planner times each stretch of work with both figures
/// (docs/planner.md). An unthrottled, unloaded board has a share of 1.
public struct CPUAllowance: Sendable {
    /// CPU time over wall time while busy, at most 1.
    public var share: Double
    /// Full-speed CPU milliseconds after an idle spell before the first stall (median of five).
    public var burstMs: Double
    /// Wall milliseconds from the start of a burst to the end of its stall: the quota's period,
    /// after which the allowance is back (median of five).
    public var periodMs: Double
    public init(share: Double, burstMs: Double, periodMs: Double) {
        self.share = share; self.burstMs = burstMs; self.periodMs = periodMs
    }

    /// Spins for `spinMs` to measure the share, then five times: sleeps 100 ms (a fresh allowance:
    /// longer than any quota period) and spins until the clock jumps by more than 2 ms.
    public static func measure(spinMs: Int = 300) -> CPUAllowance {
        let cpu0 = iop_process_cpu_ns(), wall0 = iop_monotonic_ns()
        while iop_monotonic_ns() - wall0 < UInt64(spinMs) * 1_000_000 {}
        let share = min(1, Double(iop_process_cpu_ns() - cpu0) / Double(iop_monotonic_ns() - wall0))
        var bursts: [Double] = [], periods: [Double] = []
        for _ in 0..<5 {
            iop_sleep_ns(100_000_000)
            let start = iop_process_cpu_ns(), began = iop_monotonic_ns()
            var last = began, now = began
            while true {
                now = iop_monotonic_ns()
                // No stall in 200 ms: nothing holds the board back.
                if now - last > 2_000_000 || now - began > 200_000_000 { break }
                last = now
            }
            bursts.append(Double(iop_process_cpu_ns() - start) / 1e6)
            periods.append(Double(now - began) / 1e6)
        }
        return CPUAllowance(share: share, burstMs: bursts.sorted()[2], periodMs: periods.sorted()[2])
    }
}
