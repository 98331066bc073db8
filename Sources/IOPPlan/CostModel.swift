import IOPCore
import IOPModel
import IOPProgram

/// The modelled cost of one segment: what each board computes, holds and
/// sends. When every board has a measured profile, time comes from `SegmentTimeline` (the
/// calibrated model); otherwise from the nominal figures. Nominal formulas (docs/planner.md):
///   compute_d   = FLOPs_d / capability_d
///   message     = setup + bytes / min(bandwidth_leader, bandwidth_d)
///   segment     = Σ scatter messages + max_d compute_d + Σ gather messages + leader's reduction
///   memory_d    = Σ_segments parameters_d + max_segments activations_d
/// An fp16 segment's messages carry 2 bytes per element, and each message adds its conversion
/// (`halfMs`): the leader's to the segment's communication, the worker's to its compute.
/// Every message crosses the leader's link, so messages are summed, not overlapped.
/// Memory is not a formula: the segment is sliced (geometry only) and laid out
/// exactly as the board's arena will be (`BoardLayout.footprint`), so a plan's
/// figure for a board is that board's arena size.
public struct SegmentCost: Sendable {
    public var computeMs: Double
    public var commMs: Double
    public var weightBytes: [Int]
    public var activationBytes: [Int]
    public var bytesSent: [Int]
    public var messagesSent: [Int]
    public var partitions: [Partition]
    /// How the segment's messages carry activations (fp32 when it sends none).
    public var wire: WirePrecision = .fp32
    /// The calibrated model's split of the segment's time as the leader clocks it (nil: nominal model).
    public var phases: SegmentPhases?
    /// What the segment leaves the next (calibrated model): the leader's stretch of work.
    public var leaderAfter: LeaderStretch?
    /// Every board's quota state when the segment ends, per draw of the workers' phases (`SegmentTimeline`).
    var quotaAfter: [[QuotaState]]?
    /// Full-speed CPU milliseconds per board (calibrated model): what each board's quota pays for.
    public var cpuMs: [Double]?
    public var latencyMs: Double { computeMs + commMs }
}

/// What serving a request adds around a plan's segments on the leader: wall time, and the full-speed CPU in it.
public struct RequestCost: Sendable, Equatable {
    public var wallMs, cpuMs: Double
    public init(wallMs: Double, cpuMs: Double) { self.wallMs = wallMs; self.cpuMs = cpuMs }
}

/// What `--wire` asks of the planner: fp32 everywhere, fp16 in every segment that sends messages, or
/// per segment whichever the cost model times faster (`auto`: the saved link time against the conversions).
public enum WireChoice: String, CaseIterable, Sendable {
    case fp32, fp16, auto
}

/// One stage's split: extents per board in cluster order.
public struct Partition: Sendable, Equatable {
    public var stage: Int
    public var layer: String
    public var dimension: Dimension
    public var extents: [Int]
    public var fullExtent: Int
    /// A fused grid's output columns per board (`extents` are its rows); nil for every other split.
    public var columnExtents: [Int]? = nil
}

/// A run of stages executed between two synchronisations at the leader.
public enum Segment: Sendable, Equatable {
    case single(stage: Int, Dimension)
    /// IOP: `first` by output channels, the channel-local stages after it on each board's own channels,
    /// `last` by input channels: one channel split, one reduction. With nothing in between, the paper's pair.
    case chain(first: Int, last: Int)
    /// A residual block (`Stage.branch`) whose branch runs as a chain; the leader, which holds the
    /// block's input, adds the shortcut after the reduction.
    case residual(stage: Int)
    /// A residual block whose branch ends in a chain after stages that no chain covers (a bottleneck:
    /// 1x1, then 3x3 -> 1x1): the leader runs those and the projection, keeping the shortcut, then the
    /// chain runs as `residual`'s does (`Bottleneck.swift`). Two programs, one segment of the plan.
    case bottleneck(stage: Int)

    /// DeepThings' fused tile partitioning over stages `first...last` (convs): rows of the last one's output
    /// per board, every layer of the run computed on the board from its input band, halos included.
    case fusedTiles(first: Int, last: Int)
    /// Fused tiles over stages `first...last` by the rectangles of a grid of n / `columns` rows by `columns`
    /// columns of the last one's output (`CostModel.gridExtents`), halos across as well as down.
    case fusedGrid(first: Int, last: Int, columns: Int)

    /// The paper's OC->IC pair.
    public static func pair(first: Int) -> Segment { .chain(first: first, last: first + 1) }

    public var stages: [Int] {
        switch self {
        case .single(let s, _): return [s]
        case .chain(let f, let l), .fusedTiles(let f, let l), .fusedGrid(let f, let l, _): return Array(f...l)
        case .residual(let s), .bottleneck(let s): return [s]
        }
    }
}

public struct CostModel: Sendable {
    public let cluster: Cluster
    public let stages: [Stage]
    /// The network's layers without weights: what memory figures are laid out from.
    let layers: [Layer]
    static let floatBytes = 4

    /// Bytes per board outside every segment: the leader's stream region (`StreamSpec.leaderFloats`).
    public let fixedBytes: [Int]

    /// With profiles, what a request adds around the segments: the leader receives its input
    /// (ZeroMQ's CPU per byte, then the copy into the arena) and sends the result, at its steady
    /// speed (requests come back to back). A stream's input comes from the leader's own front end: 0.
    public let request: RequestCost
    public var requestMs: Double { request.wallMs }

    /// How segments may send activations.
    public let wire: WireChoice

    /// Bytes of fp32 a board narrows to fp16, or widens from it, per second when its profile has no
    /// `fp16` class: a stated guess for a Pi-class core (docs/planner.md), not a measurement.
    public static let nominalHalfBytesPerSecond = 1e9

    public init(cluster: Cluster, network: Network, wire: WireChoice = .fp32) {
        self.cluster = cluster
        self.wire = wire
        stages = Stage.split(network)
        layers = network.layers.map { Layer(name: $0.name, kind: $0.kind, inputs: $0.inputs) }
        let stream = 4 * (network.stream?.leaderFloats(outputCount: network.outputCount) ?? 0)
        fixedBytes = cluster.devices.indices.map { $0 == cluster.leader ? stream : 0 }
        if cluster.isProfiled, network.stream == nil, let p = cluster.devices[cluster.leader].profile {
            let input = Double(4 * network.inputCount), output = Double(4 * network.outputCount)
            let full =
                p.receiveCpuMs(bytes: input) + p.sendCpuMs(bytes: output)
                + p.milliseconds(.copy, work: input + output) * p.cpuShare
            request = RequestCost(wallMs: p.wallMs(fullSpeedMs: full, idleMs: 0), cpuMs: full)
        } else {
            request = RequestCost(wallMs: 0, cpuMs: 0)
        }
    }

    var n: Int { cluster.devices.count }
    var leader: Int { cluster.leader }

    func computeMs(_ flops: Double, _ d: Int) -> Double { flops / (cluster.devices[d].gflops * 1e6) }

    /// What work is split in proportion to: the measured rate of the blocked conv kernel when the
    /// cluster is profiled (the kernel most of a CNN's FLOPs run on), else the nominal GFLOP/s.
    public func capability(_ d: Int) -> Double {
        guard cluster.isProfiled, let p = cluster.devices[d].profile,
            let conv = p.kernels[.conv3x3] ?? p.kernels.values.first
        else { return cluster.devices[d].gflops }
        return conv.gigaPerSecond
    }

    /// One message between the leader and board d.
    public func messageMs(bytes: Int, board d: Int) -> Double {
        let l = cluster.devices[leader], b = cluster.devices[d]
        let mbps = min(l.bandwidthMbps, b.bandwidthMbps)
        return max(l.setupMs, b.setupMs) + Double(bytes) * 8 / (mbps * 1e3)
    }

    /// Splits `full` in proportion to capability (CoEdge's rule). Channel
    /// counts round to multiples of 8 (SIMD-friendly) when every board still
    /// gets several; the remainder goes by largest fraction.
    public func proportionalSplit(_ full: Int, channels: Bool) -> [Int] {
        CostModel.split(
            full, capabilities: cluster.devices.indices.map(capability), unit: channels && full >= 32 * n ? 8 : 1)
    }

    /// `full` in proportion to `caps`, in multiples of `unit` but for the remainder, which goes to the first
    /// most capable.
    static func split(_ full: Int, capabilities caps: [Double], unit: Int = 1) -> [Int] {
        let total = caps.reduce(0, +)
        let units = full / unit
        let ideal = caps.map { Double(units) * $0 / total }
        var ext = ideal.map { Int($0) }
        var rest = units - ext.reduce(0, +)
        for i in ideal.indices.sorted(by: { ideal[$0] - Double(ext[$0]) > ideal[$1] - Double(ext[$1]) }) where rest > 0
        {
            ext[i] += 1; rest -= 1
        }
        ext = ext.map { $0 * unit }
        // What does not divide into units goes to the most capable board.
        let fastest = caps.indices.max { caps[$0] < caps[$1] }!
        ext[fastest] += full - ext.reduce(0, +)
        return ext
    }

    /// A fused grid of `columns` columns over a stage's output, as rows and columns per board: board d in
    /// grid row d / columns. Each grid row's band of rows in proportion to its boards' summed capability,
    /// each board's columns of the band in proportion to its own among them.
    public func gridExtents(_ stage: Int, columns: Int) -> (rows: [Int], columns: [Int]) {
        let s = stages[stage], caps = cluster.devices.indices.map(capability)
        let gridRows = n / columns
        let rowBands = CostModel.split(
            s.outputRows,
            capabilities: (0..<gridRows).map { k in caps[(k * columns)..<((k + 1) * columns)].reduce(0, +) })
        var rows: [Int] = [], cols: [Int] = []
        for k in 0..<gridRows {
            rows += Array(repeating: rowBands[k], count: columns)
            cols += CostModel.split(s.outputColumns, capabilities: Array(caps[(k * columns)..<((k + 1) * columns)]))
        }
        return (rows, cols)
    }

    public func extents(_ stage: Int, _ dim: Dimension) -> [Int] {
        let s = stages[stage]
        switch dim {
        case .none: return (0..<n).map { $0 == leader ? s.fullExtent(.none) : 0 }
        case .rows, .tiles: return proportionalSplit(s.outputRows, channels: false)
        case .outputChannels where s.inception != nil: return branchExtents(stage)
        case .outputChannels, .inputChannels: return proportionalSplit(s.fullExtent(dim), channels: true)
        }
    }

    /// Steady milliseconds board `d` spends converting `bytes` of fp32 to fp16 or back: its profile's
    /// `fp16` class when it has one, else `nominalHalfBytesPerSecond`.
    public func halfMs(fp32Bytes bytes: Int, board d: Int) -> Double {
        if let p = cluster.devices[d].profile, p.kernels[.fp16] != nil {
            return p.milliseconds(.fp16, work: Double(bytes))
        }
        return Double(bytes) / CostModel.nominalHalfBytesPerSecond * 1e3
    }

    /// The segment's cost with the wire precision `wire` asks for; with `auto`, the faster of the two
    /// (fp32 on a tie, as when the segment sends nothing).
    public func cost(_ segment: Segment) -> SegmentCost { cost(segment, leaderStretch: nil, quota: nil) }

    /// `leaderStretch`: the leader's work going on when the segment starts (nil: a stretch starting with the
    /// segment); `quota` the boards' quota states the segment before left (nil: each at a random phase of its
    /// period, having run flat out until the segment began).
    func cost(_ segment: Segment, leaderStretch: LeaderStretch?, quota: [[QuotaState]]?) -> SegmentCost {
        func costed(_ w: WirePrecision) -> SegmentCost {
            cost(segment, wire: w, leaderStretch: leaderStretch, quota: quota)
        }
        switch wire {
        case .fp32: return costed(.fp32)
        case .fp16: return costed(.fp16)
        case .auto:
            let full = costed(.fp32), half = costed(.fp16)
            return half.latencyMs < full.latencyMs ? half : full
        }
    }

    /// A plan's segments costed in order, as back-to-back requests run them (the calibrated model): each
    /// worker's quota goes on from where the segment before left it, in this request or the one before
    /// (`QuotaState`: a worker that used little of its allowance does not stall), and the leader's stretch of
    /// work goes on from one segment into the next (`CPUClock`). The plan is replayed three times from idle
    /// boards at their draws' phases, and the last request is the figure. The search costs each segment
    /// alone, every worker having run flat out until the segment began and the leader just busy.
    public func costs(_ segments: [Segment]) -> [SegmentCost] {
        guard cluster.isProfiled else { return segments.map { cost($0) } }
        var costs: [SegmentCost] = []
        var stretch: LeaderStretch? = nil
        var quota: [[QuotaState]]? = (0..<SegmentTimeline.phaseSamples).map { k in
            cluster.devices.indices.map {
                cluster.devices[$0].profile!.quota(
                    phase: SegmentTimeline.phase(sample: k, board: $0), idleMs: .infinity)
            }
        }
        for _ in 0..<3 {
            costs = []
            for s in segments {
                let c = cost(s, leaderStretch: stretch, quota: quota)
                stretch = c.leaderAfter
                quota = c.quotaAfter ?? quota
                costs.append(c)
            }
            quota = quota?.map { states in
                states.indices.map { d in
                    var q = states[d]
                    cluster.devices[d].profile!.wait(requestMs, from: &q)
                    return q
                }
            }
        }
        return costs
    }

    public func cost(
        _ segment: Segment, wire precision: WirePrecision, leaderStretch: LeaderStretch? = nil,
        quota: [[QuotaState]]? = nil
    ) -> SegmentCost {
        var c = SegmentCost(
            computeMs: 0, commMs: 0, weightBytes: Array(repeating: 0, count: n),
            activationBytes: Array(repeating: 0, count: n),
            bytesSent: Array(repeating: 0, count: n), messagesSent: Array(repeating: 0, count: n), partitions: [])
        var compute = [Double](repeating: 0, count: n)
        var leaderAfter = 0.0  // reduction and post-ops once the partial sums are in
        // Elements cross the wire at the segment's precision; the compute and arenas stay fp32.
        let F = precision.bytesPerElement
        func send(_ bytes: Int, from: Int, to: Int) {
            guard from != to, bytes > 0 else { return }
            let worker = from == leader ? to : from
            c.commMs += messageMs(bytes: bytes, board: worker)
            c.bytesSent[from] += bytes
            c.messagesSent[from] += 1
            if precision == .fp16 {
                // Both ends convert: the leader's conversions are serial with its messages, the worker's
                // are part of its own work.
                let fp32 = 2 * bytes
                c.commMs += halfMs(fp32Bytes: fp32, board: leader)
                compute[worker] += halfMs(fp32Bytes: fp32, board: worker)
            }
        }
        func fraction(_ e: Int, _ full: Int) -> Double { full > 0 ? Double(e) / Double(full) : 0 }
        /// A chain (its stages, and the indices its partitions name): every board gets the whole input and
        /// sends one partial sum of the last stage's output, for one channel split of the first stage's
        /// output that the middle stages keep. Returns the leader's reduction.
        func chain(_ chain: [Stage], at indices: [Int]) -> Double {
            let a = chain[0], b = chain[chain.count - 1]
            let full = a.outputUnits
            let ext = proportionalSplit(full, channels: true)
            c.partitions = zip(chain, indices).enumerated().map { k, s in
                let dim: Dimension = k == chain.count - 1 ? .inputChannels : .outputChannels
                return Partition(stage: s.1, layer: s.0.name, dimension: dim, extents: ext, fullExtent: full)
            }
            let flops = chain.dropLast().reduce(b.mainFlops) { $0 + $1.mainFlops + $1.postFlops }
            let participants = ext.filter { $0 > 0 }.count
            for d in 0..<n where ext[d] > 0 {
                compute[d] = computeMs(fraction(ext[d], full) * Double(flops), d)
                send(a.inputCount * F, from: leader, to: d)
                send(b.mainOutputCount * F, from: d, to: leader)
            }
            return computeMs(Double((participants - 1) * b.mainOutputCount + b.postFlops), leader)
        }

        /// A fused run by row bands (`columns` nil) or by a grid's tiles: each board computes its rectangle
        /// of every conv (the halos included) and its pools' share from its input rectangle, and sends back
        /// its tile of the last stage's output; nothing in between.
        func fused(_ run: [Stage], rows: [Int], columns: [Int]?, gridColumns: Int) {
            let end = run[run.count - 1]
            let tiles = Slicer.gridTiles(
                rows: rows, columns: columns ?? rows.map { _ in end.outputColumns }, gridColumns: gridColumns)
            for (d, tile) in tiles.enumerated() where !tile.rows.isEmpty && !tile.columns.isEmpty {
                let rowBands = Stage.bands(run, outputRows: tile.rows)
                let columnBands = columns == nil ? nil : Stage.columnBands(run, outputColumns: tile.columns)
                var flops = 0.0, inTile = 0
                for k in run.indices {
                    let s = run[k]
                    guard case .conv(let g) = s.main else { preconditionFailure("fused tiles over a non-conv stage") }
                    let down = s.rowsNeeded(outputRows: rowBands[k].lowerBound, rowBands[k].upperBound)
                    // Row bands span every column: their share across is 1.
                    var mainShare = fraction(down.main.count, g.outHeight)
                    var postShare = fraction(rowBands[k].count, s.outputRows), inColumns = g.inWidth
                    if let band = columnBands?[k] {
                        let across = s.columnsNeeded(outputColumns: band.lowerBound, band.upperBound)
                        mainShare *= fraction(across.main.count, g.outWidth)
                        postShare *= fraction(band.count, s.outputColumns)
                        inColumns = across.input.count
                    }
                    flops += mainShare * Double(s.mainFlops) + postShare * Double(s.postFlops)
                    if k == 0 { inTile = g.inChannels * down.input.count * inColumns }
                }
                compute[d] = computeMs(flops, d)
                send(inTile * F, from: leader, to: d)
                let perColumn = tile.rows.count * end.outputCount / (end.outputRows * end.outputColumns)
                send(perColumn * tile.columns.count * F, from: d, to: leader)
            }
        }

        /// A bottleneck (`Bottleneck.swift`): before the chain's scatter, the leader runs the head and the
        /// projection alone (serial with everything); the chain's scatter carries the head's output, not the
        /// block input; the shortcut stays on the leader, which adds it after the reduction. Returns the
        /// leader's own time, head and reduction.
        func bottleneck(_ si: Int) -> Double {
            let block = stages[si], branch = block.branch!, k = Planner.bottleneckHead(block)!
            let reduction = chain(Array(branch[k...]), at: branch[k...].map { _ in si })
            var head = branch[..<k].reduce(0) { $0 + $1.mainFlops + $1.postFlops }
            c.partitions.append(
                Partition(
                    stage: si, layer: branch[0].name, dimension: .none,
                    extents: (0..<n).map { $0 == leader ? branch[0].outputUnits : 0 },
                    fullExtent: branch[0].outputUnits))
            if let p = block.projection, case .conv(let g, _) = layers[p].kind {
                head += layers[p].flops
                c.partitions.append(
                    Partition(
                        stage: si, layer: layers[p].name, dimension: .none,
                        extents: (0..<n).map { $0 == leader ? g.outChannels : 0 }, fullExtent: g.outChannels))
            }
            return computeMs(Double(head + block.outputCount), leader) + reduction
        }

        switch segment {
        case .single(let si, let dim):
            let s = stages[si]
            let ext = extents(si, dim)
            let full = s.fullExtent(dim)
            c.partitions = [Partition(stage: si, layer: s.name, dimension: dim, extents: ext, fullExtent: full)]
            switch dim {
            case .none:
                compute[leader] = computeMs(Double(s.mainFlops + s.postFlops), leader)
            case .outputChannels:
                for d in 0..<n where ext[d] > 0 {
                    var flops = fraction(ext[d], full) * Double(s.mainFlops + s.postFlops)
                    if s.inception != nil {
                        // Whole branches: their own FLOPs, not a share of the block's.
                        let c0 = ext[..<d].reduce(0, +)
                        let part = Slicer.inceptionPart(s, layers, c0..<(c0 + ext[d]), board: d)
                        flops = Double(part.layers.reduce(0) { $0 + $1.flops })
                    }
                    compute[d] = computeMs(flops, d)
                    let outPart = ext[d] * s.outputUnitSize
                    send(s.inputCount * F, from: leader, to: d)
                    send(outPart * F, from: d, to: leader)
                }
            case .inputChannels:
                let participants = ext.filter { $0 > 0 }.count
                for d in 0..<n where ext[d] > 0 {
                    let f = fraction(ext[d], full)
                    let inPart = ext[d] * s.inputUnitSize
                    compute[d] = computeMs(f * Double(s.mainFlops), d)
                    send(inPart * F, from: leader, to: d)
                    send(s.mainOutputCount * F, from: d, to: leader)
                }
                leaderAfter = computeMs(Double((participants - 1) * s.mainOutputCount + s.postFlops), leader)
            case .rows, .tiles:
                guard let g = s.spatial else { preconditionFailure("h split of a stage that is not a conv") }
                var r0 = 0
                for d in 0..<n {
                    let r1 = r0 + ext[d]
                    defer { r0 = r1 }
                    guard ext[d] > 0 else { continue }
                    let need = s.rowsNeeded(outputRows: r0, r1)
                    let inBand = g.inChannels * need.input.count * g.inWidth
                    let outBand = ext[d] * s.outputCount / s.outputRows
                    let f = Double(need.main.count) / Double(g.outHeight), fp = fraction(ext[d], full)
                    compute[d] = computeMs(f * Double(s.mainFlops) + fp * Double(s.postFlops), d)
                    send(inBand * F, from: leader, to: d)
                    send(outBand * F, from: d, to: leader)
                }
            }
        case .chain(let first, let last):
            leaderAfter = chain(Array(stages[first...last]), at: Array(first...last))
        case .fusedTiles(let first, let last):
            let run = Array(stages[first...last]), end = run[run.count - 1]
            let ext = proportionalSplit(end.outputRows, channels: false)
            c.partitions = run.enumerated().map {
                Partition(
                    stage: first + $0, layer: $1.name, dimension: .tiles, extents: ext, fullExtent: end.outputRows)
            }
            fused(run, rows: ext, columns: nil, gridColumns: 1)
        case .fusedGrid(let first, let last, let gridColumns):
            let run = Array(stages[first...last]), end = run[run.count - 1]
            let ext = gridExtents(last, columns: gridColumns)
            c.partitions = run.enumerated().map {
                Partition(
                    stage: first + $0, layer: $1.name, dimension: .tiles, extents: ext.rows, fullExtent: end.outputRows,
                    columnExtents: ext.columns)
            }
            fused(run, rows: ext.rows, columns: ext.columns, gridColumns: gridColumns)
        case .residual(let si):
            let branch = stages[si].branch!
            leaderAfter = chain(branch, at: branch.map { _ in si })
            if let p = stages[si].projection, case .conv(let g, _) = layers[p].kind {
                // Every board holds the block's input: its input channels' share of the projection, and the
                // add into its partial sum, cost it compute and no bytes; the reduction sums both.
                let slices = Slicer.projectionChannels(
                    c.partitions[0].extents, total: branch[0].outputUnits, inputs: g.inChannels)
                c.partitions.append(
                    Partition(
                        stage: si, layer: layers[p].name, dimension: .inputChannels, extents: slices.map(\.count),
                        fullExtent: g.inChannels))
                for d in 0..<n where !slices[d].isEmpty {
                    let flops = fraction(slices[d].count, g.inChannels) * Double(layers[p].flops)
                    compute[d] += computeMs(flops + Double(layers[p].outputCount), d)
                }
            } else {
                // The shortcut never crosses a link: the leader keeps the block's input and adds it.
                leaderAfter += computeMs(Double(stages[si].outputCount), leader)
            }
        case .bottleneck(let si):
            leaderAfter = bottleneck(si)
        }
        c.computeMs = compute.max()! + leaderAfter
        if c.messagesSent.reduce(0, +) > 0 { c.wire = precision }
        let programs = Slicer.programs(
            segment, extents: c.partitions[0].extents, columns: c.partitions[0].columnExtents, leader: leader,
            layers: layers, stages: stages
        ).map { p in
            var p = p
            p.wire = c.wire
            return p
        }
        if cluster.isProfiled {
            // A segment of several programs (a bottleneck) is their timelines one after the other.
            var stretch = leaderStretch, quotas = quota
            c.computeMs = 0; c.commMs = 0
            for program in programs {
                let t = SegmentTimeline(cluster: cluster).time(
                    program, leaderStretch: stretch, quota: quotas)
                stretch = t.leaderAfter; quotas = t.quotaAfter
                c.computeMs += t.computeMs
                c.commMs += t.latencyMs - t.computeMs
                c.phases = c.phases.map { $0 + t.phases } ?? t.phases
                c.cpuMs = c.cpuMs.map { zip($0, t.cpuMs).map(+) } ?? t.cpuMs
            }
            c.leaderAfter = stretch
            c.quotaAfter = quotas
        }
        // Each program is a segment of the board's arena: parameters add up, buffers take the largest.
        for d in 0..<n {
            for program in programs {
                let (w, a) = BoardLayout.footprint(program, board: d, leader: leader)
                c.weightBytes[d] += w
                c.activationBytes[d] = max(c.activationBytes[d], a)
            }
        }
        return c
    }

}
