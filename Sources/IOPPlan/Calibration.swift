import Foundation

/// Each board's CPU as a trial run of a plan measured it, against the plan's model of it: what `iop profile
/// --calibrate` turns into each profile's `cpu_scale`.
///
/// A profile times every kernel warm, over and over, alone. A board running a plan meets each kernel once per
/// inference, after other kernels and other messages have been through its caches: on the emulated boards it
/// used 13-58 % more CPU than its profile said, and at 1 Gbit/s the busiest board's CPU over its share is the
/// latency (docs/planner.md, "Calibrated model"). The nodes count their own CPU time (their process's, every
/// thread, ZeroMQ's included) and the leader reports it per board (`iop request --stats`). The new scale is the
/// one the plan was modelled with times measured over modelled, so calibrating again refines it.
public struct CPUCalibration: Equatable, Sendable {
    public struct Board: Equatable, Sendable {
        public var name: String
        /// CPU milliseconds per inference: the plan's model (at `scaleBefore`), and as the board counted them.
        public var modelledMs, measuredMs: Double
        public var scaleBefore, scale: Double
        public init(name: String, modelledMs: Double, measuredMs: Double, scaleBefore: Double, scale: Double) {
            self.name = name; self.modelledMs = modelledMs; self.measuredMs = measuredMs
            self.scaleBefore = scaleBefore; self.scale = scale
        }
    }
    /// One entry per board the trial's plan gave work to and that reported its CPU.
    public var boards: [Board]
    /// Inferences the trial counted the CPU over.
    public var inferences: Int

    /// The fewest counted inferences a calibration trusts: one inference's CPU is mostly what happened to be
    /// running beside it.
    public static let minimumInferences = 3

    /// From a plan's manifest (`iop compile`: each board's `cpu_ms_per_inference` and `cpu_scale`) and the
    /// leader's counters after the plan ran (`iop request --stats --json`: each board's `cpu_ms_per_inference`
    /// over `cpu_inferences`).
    public static func from(manifest: Any, stats: Any) throws -> CPUCalibration {
        func fail(_ m: String) -> ClusterError { ClusterError(path: nil, message: m) }
        guard let m = manifest as? [String: Any], let planned = m["boards"] as? [[String: Any]] else {
            throw fail("the trial's manifest has no 'boards' (expected iop compile's manifest.json)")
        }
        guard let s = stats as? [String: Any], let counted = s["boards"] as? [[String: Any]] else {
            throw fail("the trial's stats have no 'boards' (expected iop request --stats --json's output)")
        }
        guard let n = (s["cpu_inferences"] as? NSNumber)?.intValue else {
            throw fail("the trial's stats have no 'cpu_inferences': the leader is older than CPU reports")
        }
        guard n >= minimumInferences else {
            throw fail(
                "the trial counted CPU over \(n) inferences; send at least \(minimumInferences + 1) requests "
                    + "on the plan (the first starts the count)")
        }
        var boards: [Board] = []
        for b in planned {
            guard let name = b["name"] as? String else { throw fail("a manifest board has no name") }
            guard let modelled = (b["cpu_ms_per_inference"] as? NSNumber)?.doubleValue else {
                throw fail("board '\(name)': the manifest has no cpu_ms_per_inference (the plan had no profiles)")
            }
            guard let run = counted.first(where: { $0["name"] as? String == name }) else {
                throw fail("board '\(name)' is in the trial's plan but not in its stats (another cluster's?)")
            }
            let measured = (run["cpu_ms_per_inference"] as? NSNumber)?.doubleValue ?? 0
            // A board the plan gave no work reports nothing to scale by.
            guard modelled > 0, measured > 0 else { continue }
            let before = (b["cpu_scale"] as? NSNumber)?.doubleValue ?? 1
            boards.append(
                Board(
                    name: name, modelledMs: modelled, measuredMs: measured, scaleBefore: before,
                    scale: before * measured / modelled))
        }
        return CPUCalibration(boards: boards, inferences: n)
    }
}
