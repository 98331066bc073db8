import IOPCore
import IOPProgram

/// The calibrated model of one segment: the leader's schedule (`Leader.infer`) replayed on the
/// boards' profiles, not summed. Formulas in docs/planner.md ("Calibrated model"):
///
/// - the leader scatters in part order; each message costs its CPU (selecting the slice, handing
///   it to ZeroMQ) and then leaves on its link one after the other: the sends are serialised
///   (through the token bucket of a shaped link, which lets its depth through at once);
/// - a worker starts when its input has arrived, receives it, computes its part (each op by its
///   kernel class and shape), and sends its result; its input arrives at a random moment of its
///   quota's cycle (`BoardProfile.arrivingMs`);
/// - meanwhile the leader computes its own part; results then come in over its link one after the
///   other, in the order they are ready, and each is received and placed (copied or added);
/// - last the leader reduces (bias, activation, pools) and copies the result into place.
///
/// An fp16 segment's messages carry 2 bytes per element: the leader narrows each slice as it selects
/// it and widens each result as it places it (adds it, for partial sums), the worker widens its input
/// and narrows its result (`halfMs`).
///
/// CPU work is counted at full speed and turned into wall time per board by `CPUClock`: a board
/// under a CPU quota runs its burst at full speed after idling, then at its share. Costed alone, a
/// segment starts with the leader just busy and each worker at a random phase of its quota, having run flat
/// out until then; in a plan (`CostModel.costs`) it starts where the segment before left them
/// (`leaderStretch`, `quota`).
struct SegmentTimeline {
    let cluster: Cluster

    var leader: Int { cluster.leader }

    func profile(_ d: Int) -> BoardProfile { cluster.devices[d].profile! }

    /// Full-speed milliseconds of `work` on a kernel class: the profile's steady time times the share.
    func fullMs(_ kernel: KernelClass, _ work: Double, board d: Int) -> Double {
        profile(d).milliseconds(kernel, work: work) * profile(d).cpuShare
    }

    func computeMs(_ layers: [Layer], board d: Int) -> Double {
        layers.reduce(0) { $0 + layerMs($1.kind, board: d) }
    }

    /// A layer's full-speed time on its kernel class. A direct conv also reads all its weights once per call,
    /// so with few output pixels per weight it is bound by streaming them, as a linear layer is (`linear`'s
    /// rate): ResNet-18's 512-channel 3x3 convs at a 64x64 input (2x2 output) ran at a quarter of the blocked
    /// kernel's rate, and took the time their 9.4 MB of weights take at that rate (docs/planner.md).
    func layerMs(_ kind: LayerKind, board d: Int) -> Double {
        let kernel = KernelClass(kind)
        let compute = fullMs(kernel, KernelClass.work(kind), board: d)
        guard case .conv(let g, _) = kind, kernel != .convWinograd, profile(d).kernels[.linear] != nil else {
            return compute
        }
        return max(compute, fullMs(.linear, Double(4 * g.weightCount), board: d))
    }

    func copyMs(bytes: Int, board d: Int) -> Double { fullMs(.copy, Double(bytes), board: d) }

    /// Placing a result of `count` floats in the leader's tensor: an add for a partial sum, else a copy.
    func placeMs(_ output: BoardPart.Output, count: Int) -> Double {
        output == .partialSum
            ? fullMs(.reduction, Double(count), board: leader) : copyMs(bytes: 4 * count, board: leader)
    }

    /// The link between the leader and `d`: one-way latency, and a token bucket at each end (the
    /// leader's side shared by every message of the segment), full at the segment's start.
    func latency(_ d: Int) -> Double {
        cluster.devices[d].profile?.link?.latencyMs ?? max(cluster.devices[leader].setupMs, cluster.devices[d].setupMs)
    }
    func bucket(_ d: Int) -> TokenBucket {
        let b = cluster.devices[d]
        return TokenBucket(
            depth: b.profile?.link?.burstBytes ?? 0,
            bytesPerMs: (b.profile?.link?.bandwidthMbps ?? b.bandwidthMbps) * 1e3 / 8)
    }

    /// CPU milliseconds (full speed, as probed) board `d` spends sending or receiving a message of `bytes`;
    /// a send that follows another at once (`alone` false) shares its wake-up and pays for its bytes only.
    func sendCpuMs(_ bytes: Int, board d: Int, alone: Bool = true) -> Double {
        profile(d).sendCpuMs(bytes: Double(bytes), alone: alone)
    }
    func receiveCpuMs(_ bytes: Int, board d: Int) -> Double { profile(d).receiveCpuMs(bytes: Double(bytes)) }

    /// Full-speed milliseconds board `d` spends converting `bytes` of fp32 to fp16 or back: its
    /// profile's `fp16` class, else `CostModel.nominalHalfBytesPerSecond`.
    func halfMs(_ bytes: Int, board d: Int) -> Double {
        if profile(d).kernels[.fp16] != nil { return fullMs(.fp16, Double(bytes), board: d) }
        return Double(bytes) / CostModel.nominalHalfBytesPerSecond * 1e3
    }

    /// The segment's latency, the longest any one board computes (the rest is moving data), and the
    /// leader's four phases as it clocks them (`ClusterStats` segments), to hold beside the measured ones.
    ///
    /// Each worker's input lands at a moment of its quota's cycle the leader does not choose, and the
    /// leader waits for the last result: the expected segment is the mean over `phaseSamples` draws of
    /// every worker's phase at once (a rank-1 lattice, one coordinate per board), not the schedule of
    /// each worker's mean, which would miss that the slowest of several workers sets the pace.
    ///
    /// `quota`: every board's quota state at the segment's start in each draw, as the segment before left
    /// it (nil: each board at its draw's phase, having run flat out until the segment began); the result
    /// gives the states at the segment's end, draw by draw.
    func time(_ seg: SegmentProgram, leaderStretch: LeaderStretch? = nil, quota: [[QuotaState]]? = nil) -> (
        latencyMs: Double, computeMs: Double, phases: SegmentPhases, leaderAfter: LeaderStretch,
        quotaAfter: [[QuotaState]], cpuMs: [Double]
    ) {
        let half = seg.wire == .fp16, wireBytes = seg.wire.bytesPerElement
        var cpu = CPUClock(profile(leader))
        if let l = leaderStretch { cpu.start = -l.sinceStart; cpu.idle = l.idle; cpu.spent = l.spent }
        var carry = LeaderStretch(sinceStart: 0, idle: 0, spent: 0)
        var leaderOut = bucket(leader)
        var work: [WorkerPart] = []
        var longest = 0.0
        // Full-speed CPU per board: what its quota must pay for, whatever the schedule.
        var spent = [Double](repeating: 0, count: cluster.devices.count)
        for part in seg.parts where part.board != leader {
            let d = part.board
            let inCount = part.input.count(ofWhole: seg.inputCount), inBytes = wireBytes * inCount
            let select = half ? halfMs(4 * inCount, board: leader) : copyMs(bytes: 4 * inCount, board: leader)
            // The leader sends the segment's inputs back to back: one wake-up of its I/O thread for them all.
            cpu.run(select + sendCpuMs(inBytes, board: leader, alone: work.isEmpty), from: 0)
            var workerIn = bucket(d)
            let sent = max(
                leaderOut.pass(Double(inBytes), offeredAt: cpu.now), workerIn.pass(Double(inBytes), offeredAt: cpu.now))
            let compute = computeMs(part.layers, board: d)
            longest = max(longest, profile(d).wallMs(fullSpeedMs: compute, idleMs: sent + latency(d)))
            let outCount = outputCount(part, seg)
            let converts = half ? halfMs(4 * inCount, board: d) + halfMs(4 * outCount, board: d) : 0
            let x = receiveCpuMs(inBytes, board: d) + converts + compute + sendCpuMs(wireBytes * outCount, board: d)
            work.append(
                WorkerPart(
                    start: sent + latency(d), fullSpeedMs: x, bytes: wireBytes * outCount, output: part.output,
                    count: outCount, board: d))
            spent[d] += x
        }
        let scattered = cpu.now
        if seg.partialCount > 0 { cpu.run(copyMs(bytes: 4 * seg.assembledCount, board: leader), from: 0) }
        if let own = seg.parts.first(where: { $0.board == leader }) {
            let select =
                own.input == .all ? 0 : copyMs(bytes: 4 * own.input.count(ofWhole: seg.inputCount), board: leader)
            let compute = computeMs(own.layers, board: leader)
            longest = max(longest, profile(leader).wallMs(fullSpeedMs: compute, idleMs: 0))
            cpu.run(select + compute + placeMs(own.output, count: outputCount(own, seg)), from: 0)
        }
        let ownDone = cpu.now
        let reduce = computeMs(seg.reduceLayers, board: leader)
        // Receiving a result and placing it (fp16 results are widened into place, or widened and added).
        func gatherMs(_ w: WorkerPart) -> Double {
            let place =
                !half
                ? placeMs(w.output, count: w.count)
                : halfMs(4 * w.count, board: leader) + (w.output == .partialSum ? placeMs(w.output, count: w.count) : 0)
            return receiveCpuMs(w.bytes, board: leader) + place
        }
        let samples = work.isEmpty ? 1 : Self.phaseSamples
        var gathered = 0.0, end = 0.0
        var states =
            quota
            ?? (0..<Self.phaseSamples).map { k in
                cluster.devices.indices.map {
                    profile($0).quota(phase: Self.phase(sample: k, board: $0), idleMs: 0)
                }
            }
        var lastEnd = 0.0
        for k in 0..<samples {
            var clock = cpu, leaderIn = bucket(leader)
            // Each worker's input meets its quota where this draw left it.
            let ready = work.map { w in
                let p = profile(w.board)
                p.wait(w.start, from: &states[k][w.board])
                return (at: w.start + p.run(fullSpeedMs: w.fullSpeedMs, from: &states[k][w.board]), w: w)
            }
            for (at, r) in ready.sorted(by: { $0.at < $1.at }) {
                var workerOut = bucket(r.board)
                let got = max(
                    workerOut.pass(Double(r.bytes), offeredAt: at), leaderIn.pass(Double(r.bytes), offeredAt: at))
                clock.run(gatherMs(r), from: got + latency(r.board))
            }
            gathered += clock.now
            clock.run(reduce + copyMs(bytes: 4 * seg.outputCount, board: leader), from: clock.now)
            end += clock.now
            lastEnd = clock.now
            // Every draw does the same work in another order: any draw's total is the leader's CPU.
            spent[leader] = clock.total
            var worked = Set<Int>()
            for (at, r) in ready {
                profile(r.board).wait(clock.now - at, from: &states[k][r.board]); worked.insert(r.board)
            }
            for d in cluster.devices.indices where d != leader && !worked.contains(d) {
                profile(d).wait(clock.now, from: &states[k][d])
            }
            carry.sinceStart += clock.now - clock.start; carry.idle += clock.idle; carry.spent += clock.spent
        }
        carry.sinceStart /= Double(samples); carry.idle /= Double(samples); carry.spent /= Double(samples)
        gathered /= Double(samples); end /= Double(samples)
        let phases = SegmentPhases(
            scatterMs: scattered, ownMs: ownDone - scattered, gatherMs: gathered - ownDone, reduceMs: end - gathered)
        // With no worker the draws do not differ: every draw waits out the one end.
        for k in samples..<Self.phaseSamples {
            for d in cluster.devices.indices where d != leader { profile(d).wait(lastEnd, from: &states[k][d]) }
        }
        return (
            end, min(end, longest + profile(leader).wallMs(fullSpeedMs: reduce, idleMs: 0)), phases, carry, states,
            spent
        )
    }

    /// A worker's part of a segment: when its input has arrived, its CPU work, and the result it sends.
    struct WorkerPart {
        var start, fullSpeedMs: Double
        var bytes: Int, output: BoardPart.Output, count: Int, board: Int
    }

    static let phaseSamples = 64
    /// Sample `k`'s phase for board `d`: the Korobov lattice k * (1, 19, 27, 45, ...) / 64 shifted to
    /// the middle of its cell, so each board's phases alone are evenly spread and boards differ.
    static func phase(sample k: Int, board d: Int) -> Double {
        let generators = [1, 19, 27, 45, 13, 53, 7, 37]
        let g = d < generators.count ? generators[d] : 2 * d + 1
        return (Double((k * g) % phaseSamples) + 0.5) / Double(phaseSamples)
    }

    func outputCount(_ part: BoardPart, _ seg: SegmentProgram) -> Int {
        switch part.output {
        case .all: return seg.outputCount
        case .partialSum: return seg.partialCount
        case .elements(let r): return r.count
        case .rows(let r, let c, _, let w): return r.count * c * w
        case .tile(let r, let cols, let c, _, _): return r.count * cols.count * c
        }
    }
}

/// The leader's stretch of CPU work going on when a segment ends: since when, after what wait, how much CPU.
public struct LeaderStretch: Sendable, Equatable {
    public var sinceStart, idle, spent: Double
}

/// A segment's modelled time split as the leader clocks it: sending every worker its input, its own
/// part, waiting for and placing the results, reducing.
public struct SegmentPhases: Sendable, Equatable {
    public var scatterMs, ownMs, gatherMs, reduceMs: Double

    /// Two programs of one segment (a bottleneck's), phase by phase.
    static func + (a: SegmentPhases, b: SegmentPhases) -> SegmentPhases {
        SegmentPhases(
            scatterMs: a.scatterMs + b.scatterMs, ownMs: a.ownMs + b.ownMs, gatherMs: a.gatherMs + b.gatherMs,
            reduceMs: a.reduceMs + b.reduceMs)
    }
}

/// One board's CPU over a segment: work that starts after the board has waited starts a new
/// stretch, whose speed depends on how long it waited (`BoardProfile.wallMs`); work that follows
/// work continues the stretch. The segment starts at 0 with the leader just busy (it reduced the
/// segment before, or answered the request before: requests come back to back) and the workers
/// idle since then: a worker's wait is counted from 0.
struct CPUClock {
    let profile: BoardProfile
    /// When the work so far is done, when the current stretch started, its wait and its full-speed CPU.
    var now = 0.0, start = 0.0, idle = 0.0, spent = 0.0
    /// Full-speed CPU of all the work run on this clock, across stretches.
    var total = 0.0
    init(_ profile: BoardProfile) { self.profile = profile }

    mutating func run(_ fullSpeedMs: Double, from t: Double) {
        if t > now {
            idle = t - now; start = t; spent = 0
        }
        spent += fullSpeedMs
        total += fullSpeedMs
        now = start + profile.wallMs(fullSpeedMs: spent, idleMs: idle)
    }
}

/// A link's token bucket (a shaper's, as `tc tbf`): `depth` bytes pass at once, the rest at the
/// link's rate; messages pass one after the other. Depth 0 is a plain link.
struct TokenBucket {
    let depth: Double, bytesPerMs: Double
    /// Tokens at `at`, the time the last message finished passing.
    var tokens: Double, at = 0.0
    init(depth: Double, bytesPerMs: Double) {
        self.depth = depth; self.bytesPerMs = bytesPerMs
        tokens = depth
    }

    /// When `bytes` offered at `t` have passed.
    mutating func pass(_ bytes: Double, offeredAt t: Double) -> Double {
        let start = max(t, at)
        tokens = min(depth, tokens + (start - at) * bytesPerMs)
        if tokens >= bytes {
            tokens -= bytes; at = start
        } else {
            at = start + (bytes - tokens) / bytesPerMs; tokens = 0
        }
        return at
    }
}
