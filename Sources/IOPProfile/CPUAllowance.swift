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
    /// The quota's period, after which the allowance is back: the median spacing of the stalls' ends
    /// while spinning without a break (they fall on the period's boundaries). Without stalls (no quota)
    /// it is the median wall time from a burst's start to its stall's end, as first measured.
    public var periodMs: Double
    public init(share: Double, burstMs: Double, periodMs: Double) {
        self.share = share; self.burstMs = burstMs; self.periodMs = periodMs
    }

    /// Spins for `spinMs` to measure the share and the period, then five times: sleeps 100 ms (a fresh
    /// allowance: longer than any quota period) and spins until the clock jumps by more than 2 ms.
    /// The share is counted over whole periods, from the first stall's end to the last: a window cut
    /// anywhere else holds a burst more or less (over 300 ms of 50 ms periods that read 7.7 % or 8.0 %
    /// for a quota of 8 %, and the model's wall times scale with it).
    public static func measure(spinMs: Int = 1000) -> CPUAllowance {
        let cpu0 = iop_process_cpu_ns(), wall0 = iop_monotonic_ns()
        // A burst starts anywhere in a period, so its start to its stall's end is not the period; the
        // spacing of stalls' ends in a long spin is (a period refills the quota at its boundary).
        var stallEnds: [UInt64] = [], cpuAtStallEnds: [UInt64] = [], last = wall0
        while true {
            let now = iop_monotonic_ns()
            if now - wall0 >= UInt64(spinMs) * 1_000_000 { break }
            if now - last > 2_000_000 {
                stallEnds.append(now); cpuAtStallEnds.append(iop_process_cpu_ns())
            }
            last = now
        }
        let share = Self.share(
            wallNs: [wall0] + stallEnds + [iop_monotonic_ns()], cpuNs: [cpu0] + cpuAtStallEnds + [iop_process_cpu_ns()])
        var bursts: [Double] = [], spells: [Double] = []
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
            spells.append(Double(now - began) / 1e6)
        }
        var spacings: [Double] = []
        if stallEnds.count >= 4 {
            for i in 1..<stallEnds.count { spacings.append(Double(stallEnds[i] - stallEnds[i - 1]) / 1e6) }
        }
        let period = spacings.isEmpty ? spells.sorted()[2] : spacings.sorted()[spacings.count / 2]
        return CPUAllowance(share: share, burstMs: bursts.sorted()[2], periodMs: period)
    }

    /// CPU time over wall time of a spin, given both clocks at its start, at each stall's end, and at its
    /// end: between the first and the last stall's end when there are at least two periods in between
    /// (whole periods), else over the whole spin. At most 1.
    public static func share(wallNs: [UInt64], cpuNs: [UInt64]) -> Double {
        precondition(wallNs.count == cpuNs.count && wallNs.count >= 2)
        let stalls = wallNs.count - 2
        let (a, b) = stalls >= 3 ? (1, stalls) : (0, wallNs.count - 1)
        return min(1, Double(cpuNs[b] - cpuNs[a]) / Double(wallNs[b] - wallNs[a]))
    }
}
