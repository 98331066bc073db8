import IOPModel

public enum PlannerKind: String, CaseIterable, Sendable {
    /// The leader runs everything.
    case single
    /// Every partitionable operator by output channels.
    case oc
    /// Every conv by rows in proportion to capability (CoEdge); fully connected layers stay whole on the leader.
    case coedge
    /// The paper's greedy walk: pair i (oc) with i+1 (ic) when that beats CoEdge on the two; beyond the
    /// paper, chains through channel-local stages and residual blocks' branches (or their ends: bottlenecks) too.
    case iop
    /// Exact search over segments and dimensions under every board's memory budget.
    case optimal
    /// DeepThings' fused tile partitioning: runs of convs by rows with their halos, no exchange between
    /// their layers, each run's depth chosen on modelled latency; other stages on the leader.
    case ftp
}

public struct Plan: Sendable {
    public var planner: PlannerKind
    public var segments: [Segment]
    public var costs: [SegmentCost]
    public var cluster: Cluster
    /// Bytes per board that no segment accounts for: a stream's region in the leader's arena.
    public var fixedBytes: [Int]
    /// What serving a request adds to the segments (`CostModel.request`).
    public var request: RequestCost
    public var requestMs: Double { request.wallMs }

    public init(
        planner: PlannerKind, segments: [Segment], costs: [SegmentCost], cluster: Cluster, fixedBytes: [Int]? = nil,
        request: RequestCost = RequestCost(wallMs: 0, cpuMs: 0)
    ) {
        self.planner = planner; self.segments = segments; self.costs = costs; self.cluster = cluster
        self.fixedBytes = fixedBytes ?? Array(repeating: 0, count: cluster.devices.count)
        self.request = request
    }

    public var modeledLatencyMs: Double { requestMs + costs.reduce(0) { $0 + $1.latencyMs } }
    /// Peak bytes per board, its arena: all its weight slices, its largest segment's buffers, and its fixed bytes.
    public var peakMemoryBytes: [Int] {
        (0..<cluster.devices.count).map { d in
            fixedBytes[d] + costs.reduce(0) { $0 + $1.weightBytes[d] }
                + (costs.map { $0.activationBytes[d] }.max() ?? 0)
        }
    }
    public var bytesSentPerInference: [Int] {
        (0..<cluster.devices.count).map { d in costs.reduce(0) { $0 + $1.bytesSent[d] } }
    }
    public var messagesPerInference: [Int] {
        (0..<cluster.devices.count).map { d in costs.reduce(0) { $0 + $1.messagesSent[d] } }
    }
    public var partitions: [Partition] { costs.flatMap(\.partitions) }
    /// Full-speed CPU milliseconds per board per inference, the request's own on the leader included (calibrated
    /// model; nil for the nominal one).
    public var cpuMsPerInference: [Double]? {
        guard cluster.isProfiled else { return nil }
        var sum = [Double](repeating: 0, count: cluster.devices.count)
        for c in costs { for (d, ms) in (c.cpuMs ?? []).enumerated() { sum[d] += ms } }
        sum[cluster.leader] += request.cpuMs
        return sum
    }
}

public struct PlanError: Error, CustomStringConvertible, Equatable {
    public struct Overrun: Equatable, Sendable {
        public var board: String; public var needs: Int; public var budget: Int
    }
    public var planner: PlannerKind
    public var overruns: [Overrun]
    public var description: String {
        "the \(planner.rawValue) plan does not fit: "
            + overruns.map {
                "board '\($0.board)' needs \(formatBytes($0.needs)), \(formatBytes($0.needs - $0.budget)) over its "
                    + "\(formatBytes($0.budget)) budget (smallest budget that fits: \(formatBytes($0.needs)))"
            }.joined(separator: "; ")
    }
}

/// No plan that fits the budgets meets a stream's deadline.
public struct DeadlineError: Error, CustomStringConvertible, Equatable {
    public var deadlineMs: Double
    /// The fastest modelled latency of a plan that fits every budget.
    public var fastestMs: Double
    public init(deadlineMs: Double, fastestMs: Double) { self.deadlineMs = deadlineMs; self.fastestMs = fastestMs }
    public var description: String {
        "no plan meets the \(formatMs(deadlineMs)) deadline: the fastest plan that fits every budget is modelled at "
            + "\(formatMs(fastestMs)) (iop plan --planner optimal shows it); "
            + "add boards, faster links or a longer deadline"
    }
}

func formatMs(_ ms: Double) -> String { ms >= 100 ? "\(Int(ms.rounded())) ms" : "\((ms * 10).rounded() / 10) ms" }

public struct Planner: Sendable {
    public let model: CostModel
    public init(network: Network, cluster: Cluster, wire: WireChoice = .fp32) {
        model = CostModel(cluster: cluster, network: network, wire: wire)
    }
    var stages: [Stage] { model.stages }

    public func canPair(_ i: Int) -> Bool { chainEnds(i).contains(i + 1) }

    /// The last stages of every IOP chain that may start at stage i: an OC-splittable stage, any number
    /// of channel-local stages on the same channels, then an IC-splittable stage that reads them.
    public func chainEnds(_ i: Int) -> [Int] { Planner.chainEnds(stages, from: i) }

    static func chainEnds(_ stages: [Stage], from i: Int) -> [Int] {
        // A concat's extent is a run of each of its convs' channels, not a run of its output's, and an Inception
        // block's a run of whole branches: neither heads a chain.
        guard stages[i].allowedDimensions.contains(.outputChannels), stages[i].concatenated == nil,
            stages[i].inception == nil
        else { return [] }
        let channels = stages[i].outputUnits
        var ends: [Int] = []
        var j = i + 1
        while j < stages.count {
            let s = stages[j]
            if s.allowedDimensions.contains(.inputChannels) && s.inputUnits == channels { ends.append(j) }
            guard let width = s.channelLocalWidth, width == 0 || width == channels else { break }
            j += 1
        }
        return ends
    }

    /// The longest run of convs one fused-tile segment covers: halos grow with depth, and the search's
    /// options with it.
    public static let maxFusedStages = 8

    /// Every fused-tile segment that may start at stage i: two or more consecutive conv stages.
    public func fusedRuns(_ i: Int) -> [Segment] {
        var runs: [Segment] = []
        var j = i
        while j < stages.count, j - i < Planner.maxFusedStages, case .conv = stages[j].main {
            if j > i { runs.append(.fusedTiles(first: i, last: j)) }
            j += 1
        }
        return runs
    }

    /// Every fused grid that may start at stage i: one or more consecutive conv stages (up to
    /// `maxFusedStages`) by an R x C grid of tiles for every C > 1 that divides the boards (R = n / C; the
    /// R x 1 grids are `fusedRuns`' row bands).
    public func fusedGrids(_ i: Int) -> [Segment] {
        let n = model.cluster.devices.count
        var grids: [Segment] = []
        var j = i
        while j < stages.count, j - i < Planner.maxFusedStages, case .conv = stages[j].main {
            for c in 2...max(2, n) where n % c == 0 { grids.append(.fusedGrid(first: i, last: j, columns: c)) }
            j += 1
        }
        return grids
    }

    /// The `ftp` plan: by dynamic programming on modelled latency, every stage either in a fused run of
    /// convs by row bands or by a grid, or alone by rows (a run of one), or on the leader when it is no conv.
    func fusedTilePlan() -> [Segment] {
        var best = [(Double, Segment?)](repeating: (.infinity, nil), count: stages.count + 1)
        best[stages.count] = (0, nil)
        for i in stages.indices.reversed() {
            let own: Segment = .single(stage: i, stages[i].allowedDimensions.contains(.rows) ? .rows : .none)
            for s in [own] + fusedRuns(i) + fusedGrids(i) {
                let t = model.cost(s).latencyMs + best[i + s.stages.count].0
                if t < best[i].0 { best[i] = (t, s) }
            }
        }
        var segments: [Segment] = []
        var i = 0
        while i < stages.count { let s = best[i].1!; segments.append(s); i += s.stages.count }
        return segments
    }

    /// Whether stage i is a residual block whose branch can run as a chain across the boards.
    public func canSplitResidual(_ i: Int) -> Bool {
        guard let branch = stages[i].branch else { return false }
        return Planner.chainEnds(branch, from: 0).contains(branch.count - 1)
    }

    /// CoEdge's choice for one stage: rows for convs, the leader for the rest.
    func baseline(_ i: Int) -> Segment {
        .single(stage: i, stages[i].allowedDimensions.contains(.rows) ? .rows : .none)
    }

    public func plan(_ kind: PlannerKind) throws -> Plan {
        var segments: [Segment] = []
        switch kind {
        case .single:
            segments = stages.indices.map { .single(stage: $0, .none) }
        case .oc:
            segments = stages.indices.map {
                .single(stage: $0, stages[$0].allowedDimensions.contains(.outputChannels) ? .outputChannels : .none)
            }
        case .coedge:
            segments = stages.indices.map(baseline)
        case .iop:
            // The paper's greedy walk, over chains as well as pairs, residual blocks and fire modules: at each
            // stage, the IOP segment that saves the most against CoEdge on the stages it covers, if any saves.
            var i = 0
            while i < stages.count {
                var best = (saving: 0.0, segment: baseline(i))
                var candidates = chainEnds(i).map { Segment.chain(first: i, last: $0) }
                if canSplitResidual(i) { candidates.append(.residual(stage: i)) }
                if bottleneckHead(i) != nil { candidates.append(.bottleneck(stage: i)) }
                // A fire module's expands as a unit: one scatter of the squeeze's output, the gather its concat.
                // An Inception block's branches as a unit, likewise.
                if stages[i].concatenated != nil || stages[i].inception != nil {
                    candidates.append(.single(stage: i, .outputChannels))
                }
                for c in candidates {
                    let saving =
                        c.stages.reduce(0) { $0 + model.cost(baseline($1)).latencyMs } - model.cost(c).latencyMs
                    if saving > best.saving { best = (saving, c) }
                }
                segments.append(best.segment); i += best.segment.stages.count
            }
        case .optimal:
            return try optimal()
        case .ftp:
            segments = fusedTilePlan()
        }
        return try checked(
            Plan(
                planner: kind, segments: segments, costs: model.costs(segments), cluster: model.cluster,
                fixedBytes: model.fixedBytes, request: model.request))
    }

    func checked(_ p: Plan) throws -> Plan {
        let over = overruns(p.peakMemoryBytes)
        if !over.isEmpty { throw PlanError(planner: p.planner, overruns: over) }
        return p
    }

    func overruns(_ peaks: [Int]) -> [PlanError.Overrun] {
        zip(model.cluster.devices, peaks).filter { $1 > $0.memoryBudgetBytes }.map {
            .init(board: $0.name, needs: $1, budget: $0.memoryBudgetBytes)
        }
    }

    /// Every segment that may start at stage i.
    func options(_ i: Int) -> [Segment] {
        stages[i].allowedDimensions.map { .single(stage: i, $0) } + chainEnds(i).map { .chain(first: i, last: $0) }
            + (canSplitResidual(i) ? [.residual(stage: i)] : [])
            + (bottleneckHead(i) != nil ? [.bottleneck(stage: i)] : [])
            + fusedRuns(i) + fusedGrids(i)
    }

    /// A partial plan up to a stage boundary. Later segments only add latency
    /// and weights and raise the activation peak, so a state that is no better
    /// than another in latency and in every board's weights and peak can never
    /// end better: dropping it keeps the search exact.
    struct State {
        var latency: Double
        var weights: [Int]
        var peak: [Int]
        var segments: [Segment]
        func dominates(_ o: State) -> Bool {
            latency <= o.latency && zip(weights, o.weights).allSatisfy { $0 <= $1 }
                && zip(peak, o.peak).allSatisfy { $0 <= $1 }
        }
    }

    /// Every segment option at every stage, with its cost.
    var optionCosts: [[(Segment, SegmentCost)]] { stages.indices.map { i in options(i).map { ($0, model.cost($0)) } } }

    /// The fastest completion from each stage boundary, memory ignored (a lower bound for the
    /// search), and the option that achieves it.
    func fastestCompletion(_ costs: [[(Segment, SegmentCost)]]) -> (rest: [Double], choice: [Int]) {
        var rest = [Double](repeating: .infinity, count: stages.count + 1)
        var restChoice = [Int](repeating: 0, count: stages.count + 1)
        rest[stages.count] = 0
        for i in stages.indices.reversed() {
            for (k, (segment, cost)) in costs[i].enumerated()
            where cost.latencyMs + rest[i + segment.stages.count] < rest[i] {
                rest[i] = cost.latencyMs + rest[i + segment.stages.count]; restChoice[i] = k
            }
        }
        return (rest, restChoice)
    }

    /// For a stream with a deadline: among the plans that fit every budget and whose modelled
    /// latency meets `deadlineMs`, the one with the most memory headroom on its fullest board
    /// (the smallest largest arena-to-budget ratio), so a board that must also buffer audio, or a
    /// model that grows, has room. Exact: the search keeps every plan no other beats in latency and
    /// in every board's memory, and the best headroom is among those.
    public func plan(deadlineMs: Double) throws -> Plan {
        let budgets = model.cluster.devices.map(\.memoryBudgetBytes)
        let costs = optionCosts
        let (rest, _) = fastestCompletion(costs)
        func fill(_ s: State) -> Double {
            (0..<budgets.count).map { Double(s.weights[$0] + s.peak[$0]) / Double(budgets[$0]) }.max() ?? 0
        }
        let meeting = search(costs: costs, budgets: budgets, bound: rest, limit: (deadlineMs - model.requestMs).nextUp)
        guard let best = meeting.min(by: { (fill($0), $0.latency) < (fill($1), $1.latency) }) else {
            let fastest = try optimal()
            throw DeadlineError(deadlineMs: deadlineMs, fastestMs: fastest.modeledLatencyMs)
        }
        return Plan(
            planner: .optimal, segments: best.segments, costs: model.costs(best.segments), cluster: model.cluster,
            fixedBytes: model.fixedBytes, request: model.request)
    }

    func optimal() throws -> Plan {
        let budgets = model.cluster.devices.map(\.memoryBudgetBytes)
        let costs = optionCosts
        let (rest, restChoice) = fastestCompletion(costs)
        func plan(_ segments: [Segment]) -> Plan {
            Plan(
                planner: .optimal, segments: segments, costs: model.costs(segments), cluster: model.cluster,
                fixedBytes: model.fixedBytes, request: model.request)
        }
        var fastest: [Segment] = []
        var i = 0
        while i < stages.count { let seg = costs[i][restChoice[i]].0; fastest.append(seg); i += seg.stages.count }
        let unconstrained = plan(fastest)
        if overruns(unconstrained.peakMemoryBytes).isEmpty { return unconstrained }

        // Budgets bind: branch and bound, seeded with the best plan the other planners can offer.
        let incumbent =
            ([repaired(fastest, costs: costs)].compactMap { $0.map(plan) }
            + [PlannerKind.single, .oc, .coedge, .iop, .ftp].compactMap { try? self.plan($0) }).min {
                $0.modeledLatencyMs < $1.modeledLatencyMs
            }
        if let best = search(
            costs: costs, budgets: budgets, bound: rest, limit: incumbent?.modeledLatencyMs ?? .infinity
        )
        .min(by: { $0.latency < $1.latency }) {
            return plan(best.segments)
        }
        if let incumbent {
            return Plan(
                planner: .optimal, segments: incumbent.segments, costs: incumbent.costs, cluster: model.cluster,
                fixedBytes: model.fixedBytes, request: model.request)
        }
        // Nothing fits: report the plan that overshoots the budgets least.
        func overshoot(_ s: State) -> Int {
            (0..<budgets.count).reduce(0) { $0 + max(0, s.weights[$1] + s.peak[$1] - budgets[$1]) }
        }
        let least = search(costs: costs, budgets: nil, bound: rest, limit: .infinity).min {
            overshoot($0) < overshoot($1)
        }!
        throw PlanError(
            planner: .optimal, overruns: overruns((0..<budgets.count).map { least.weights[$0] + least.peak[$0] }))
    }

    /// A good feasible plan, fast: from `segments`, keep replacing one stage's
    /// choice (a pair counts as its two stages) by the option that frees the
    /// most over-budget bytes per millisecond it adds, until everything fits.
    func repaired(_ segments: [Segment], costs: [[(Segment, SegmentCost)]]) -> [Segment]? {
        let budgets = model.cluster.devices.map(\.memoryBudgetBytes)
        var current = segments
        // Every segment tried here is an option of its first stage: costed once, in `costs`, not per try
        // (costing them again was 69 % of planning VGG16 on `small-memory`).
        func cost(_ s: Segment) -> SegmentCost { costs[s.stages[0]].first { $0.0 == s }?.1 ?? model.cost(s) }
        func excess(_ segs: [Segment]) -> Int {
            let p = Plan(
                planner: .optimal, segments: segs, costs: segs.map(cost), cluster: model.cluster,
                fixedBytes: model.fixedBytes, request: model.request)
            return zip(p.peakMemoryBytes, budgets).reduce(0) { $0 + max(0, $1.0 - $1.1) }
        }
        var over = excess(current)
        while over > 0 {
            var best: (score: Double, segs: [Segment], over: Int)?
            let latency = current.reduce(0) { $0 + cost($1).latencyMs }
            for (k, seg) in current.enumerated() {
                let first = seg.stages[0]
                // Alternatives covering exactly this segment's stages.
                var alternatives: [[Segment]] = costs[first].map { [$0.0] }.filter { $0[0].stages == seg.stages }
                if seg.stages.count > 1 {
                    // Every stage of the chain or run on its own, in every dimension it allows.
                    alternatives += seg.stages.reduce([[]] as [[Segment]]) { heads, si in
                        heads.flatMap { h in stages[si].allowedDimensions.map { h + [.single(stage: si, $0)] } }
                    }
                }
                for alt in alternatives where alt != [seg] {
                    let candidate = Array(current[..<k]) + alt + Array(current[(k + 1)...])
                    let o = excess(candidate)
                    guard o < over else { continue }
                    let added = candidate.reduce(0) { $0 + cost($1).latencyMs } - latency
                    let score = Double(over - o) / max(added, 1e-6)
                    if best == nil || score > best!.score { best = (score, candidate, o) }
                }
            }
            guard let b = best else { return nil }
            current = b.segs; over = b.over
        }
        return current
    }

    /// Plans that fit `budgets` (all plans when nil) and could beat `limit`;
    /// `bound[i]` is a lower bound on the latency from stage boundary i on.
    func search(costs: [[(Segment, SegmentCost)]], budgets: [Int]?, bound: [Double], limit: Double) -> [State] {
        let n = model.cluster.devices.count
        var frontier = [[State]](repeating: [], count: stages.count + 1)
        frontier[0] = [
            State(latency: 0, weights: model.fixedBytes, peak: Array(repeating: 0, count: n), segments: [])
        ]
        for i in stages.indices {
            for state in frontier[i] {
                for (segment, cost) in costs[i] {
                    var next = state
                    next.latency += cost.latencyMs
                    for d in 0..<n {
                        next.weights[d] += cost.weightBytes[d]
                        next.peak[d] = max(next.peak[d], cost.activationBytes[d])
                    }
                    let end = i + segment.stages.count
                    if next.latency + bound[end] >= limit { continue }
                    if let budgets, (0..<n).contains(where: { next.weights[$0] + next.peak[$0] > budgets[$0] }) {
                        continue
                    }
                    next.segments.append(segment)
                    if frontier[end].contains(where: { $0.dominates(next) }) { continue }
                    frontier[end].removeAll { next.dominates($0) }
                    frontier[end].append(next)
                }
            }
            frontier[i] = []
        }
        return frontier[stages.count]
    }
}
