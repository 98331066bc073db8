import IOPCore
import IOPModel

/// A partitionable operator: one conv or linear layer with the channel-local
/// layers after it (activation, pooling), or a layer only the leader runs
/// (global pooling, softmax, a pool with no conv before it). In a graph, a
/// region between two cuts that only its entry tensor crosses (a residual
/// block, a fire module) is one stage the leader runs whole, unless it is a
/// residual block whose branch is a chain of stages (`branch`), which a
/// `Segment.residual` splits across the boards.
public struct Stage: Sendable {
    public enum Main: Sendable {
        case conv(ConvGeometry)
        /// Split by output channels only: a slice of output channels needs every input channel, as a conv's.
        case convTranspose(ConvTransposeGeometry)
        case linear(LinearGeometry)
        case leaderOnly
    }

    public var name: String
    /// Indices into the network's layers.
    public var layers: Range<Int>
    public var main: Main
    /// Spatial layers after the main one (pools), for mapping H bands back to input rows.
    public var pools: [PoolGeometry]

    /// Elements of the stage's input, of the main layer's output, and of the stage's output.
    public var inputCount: Int
    public var mainOutputCount: Int
    public var outputCount: Int
    /// Input channels as an IC split sees them, and elements per channel
    /// (a linear layer after a conv reads C channels of H*W features).
    public var inputUnits: Int
    public var inputUnitSize: Int
    /// Output channels (OC extent) and elements per channel of the stage output.
    public var outputUnits: Int
    public var outputUnitSize: Int
    public var mainFlops: Int
    public var postFlops: Int
    public var weightCount: Int
    public var biasCount: Int
    /// In a residual block `x + f(x)` (or `p(x) + f(x)`) with a chain of layers as `f`: `f`'s stages
    /// (network layer indices).
    public var branch: [Stage]? = nil
    /// In a residual block whose shortcut is a projection `p(x)` (ResNet's downsample: a strided 1x1 conv
    /// with its batch norm folded in), the network index of that conv; nil for an identity shortcut.
    public var projection: Int? = nil
    /// In a region that concatenates along channels two ungrouped convs of equal width that both read the
    /// region's input (a fire module's expands): their network indices, in the concat's order. Split by
    /// output channels as a unit, an extent is a run of each conv's channels (`outputUnits` is one conv's
    /// width, a unit two channels of the concat), so a board's slice of the concat is two runs.
    public var concatenated: [Int]? = nil
    /// In a region of three or more branches concatenated along channels (an Inception block), each a chain
    /// of layers reading the region's input: each branch's network indices, in the concat's order, and its
    /// output channels (`Inception.swift`). Split by output channels as a unit, a board runs whole branches.
    public var inception: [(layers: [Int], channels: Int)]? = nil

    /// Whether every layer works on each channel alone (a depthwise conv, a per-channel scale, a clamp,
    /// pools), so a board holding some channels of its input can compute the same channels of its output.
    public var isChannelLocal: Bool { channelLocalWidth != nil }

    /// The channels a channel-local stage keeps apart (0: any, a clamp alone), nil for other stages.
    public var channelLocalWidth: Int? {
        switch main {
        case .conv(let g): return g.isDepthwise && g.inChannels == g.outChannels ? g.outChannels : nil
        case .linear, .convTranspose: return nil
        case .leaderOnly: return perChannelWidth
        }
    }
    /// Set by `split` for a leader-only stage made of scales and clamps only.
    var perChannelWidth: Int? = nil

    public var outputRows: Int {
        if let p = pools.last { return p.outHeight }
        return spatial?.outHeight ?? 0
    }

    /// The main layer's channels and sizes, for row bands: a conv's or a ConvTranspose's.
    public var spatial:
        (
            inChannels: Int, inHeight: Int, inWidth: Int, outChannels: Int, outHeight: Int, outWidth: Int
        )?
    {
        switch main {
        case .conv(let g): return (g.inChannels, g.inHeight, g.inWidth, g.outChannels, g.outHeight, g.outWidth)
        case .convTranspose(let g):
            return (g.inChannels, g.inHeight, g.inWidth, g.outChannels, g.outHeight, g.outWidth)
        case .linear, .leaderOnly: return nil
        }
    }

    public var allowedDimensions: [Dimension] {
        switch main {
        case .leaderOnly: return concatenated == nil && inception == nil ? [.none] : [.none, .outputChannels]
        case .linear: return [.none, .outputChannels, .inputChannels]
        case .conv(let g): return g.groups == 1 ? [.none, .outputChannels, .inputChannels, .rows] : [.none, .rows]
        case .convTranspose(let g):
            return g.groups == 1 ? [.none, .outputChannels, .inputChannels, .rows] : [.none, .rows]
        }
    }

    func fullExtent(_ d: Dimension) -> Int {
        switch d {
        case .none, .outputChannels: return outputUnits
        case .inputChannels: return inputUnits
        case .rows, .tiles: return outputRows
        }
    }

    /// Rows of the main layer's output and of the stage input that an H band
    /// `[r0, r1)` of stage-output rows needs (halo included).
    public func rowsNeeded(outputRows r0: Int, _ r1: Int) -> (main: Range<Int>, input: Range<Int>) {
        var lo = r0, hi = r1
        for p in pools.reversed() {
            let inLo = max(0, lo * p.strideH - p.padTop)
            let inHi = min(p.inHeight, (hi - 1) * p.strideH - p.padTop + p.kernelH)
            lo = inLo; hi = inHi
        }
        if case .convTranspose(let g) = main { return (lo..<hi, g.inputRows(forOutputRows: lo..<hi)) }
        guard case .conv(let g) = main else { return (lo..<hi, lo..<hi) }
        let inLo = max(0, lo * g.strideH - g.padTop)
        let inHi = min(g.inHeight, (hi - 1) * g.strideH - g.padTop + (g.kernelH - 1) * g.dilationH + 1)
        return (lo..<hi, inLo..<inHi)
    }

    /// Columns of the stage output (0 for a stage with no spatial output).
    public var outputColumns: Int {
        if let p = pools.last { return p.outWidth }
        return spatial?.outWidth ?? 0
    }

    /// `rowsNeeded`'s twin across: the columns of a conv stage's main output and input that output
    /// columns `[c0, c1)` need (halo included), for the tiles of a fused grid.
    public func columnsNeeded(outputColumns c0: Int, _ c1: Int) -> (main: Range<Int>, input: Range<Int>) {
        var lo = c0, hi = c1
        for p in pools.reversed() {
            let inLo = max(0, lo * p.strideW - p.padLeft)
            let inHi = min(p.inWidth, (hi - 1) * p.strideW - p.padLeft + p.kernelW)
            lo = inLo; hi = inHi
        }
        guard case .conv(let g) = main else { preconditionFailure("a column split of a stage that is not a conv") }
        let inLo = max(0, lo * g.strideW - g.padLeft)
        let inHi = min(g.inWidth, (hi - 1) * g.strideW - g.padLeft + (g.kernelW - 1) * g.dilationW + 1)
        return (lo..<hi, inLo..<inHi)
    }

    /// For fused tiles over `run` (consecutive conv stages): the output rows of each stage that output rows
    /// `rows` of the last one need, halos included; the first stage's input rows follow from its own band.
    public static func bands(_ run: [Stage], outputRows rows: Range<Int>) -> [Range<Int>] {
        var bands = [rows]
        for s in run.dropFirst().reversed() {
            bands.insert(s.rowsNeeded(outputRows: bands[0].lowerBound, bands[0].upperBound).input, at: 0)
        }
        return bands
    }

    /// `bands`' twin across: each stage's output columns that output columns `columns` of the last one need.
    public static func columnBands(_ run: [Stage], outputColumns columns: Range<Int>) -> [Range<Int>] {
        var bands = [columns]
        for s in run.dropFirst().reversed() {
            bands.insert(s.columnsNeeded(outputColumns: bands[0].lowerBound, bands[0].upperBound).input, at: 0)
        }
        return bands
    }

    public static func split(_ net: Network) -> [Stage] {
        var stages: [Stage] = []
        var shape = net.inputShape
        var i = 0
        let layers = net.layers
        let outShapes = net.layerOutputShapes
        let graph = LayerGraph(layers)
        while i < layers.count {
            let start = i
            let l = layers[i]
            let inCount = l.inputCount
            let spatial = shape.count == 4
            var units = spatial ? shape[1] : inCount, unitSize = spatial ? shape[2] * shape[3] : 1
            var main = Main.leaderOnly
            var weights = 0, bias = 0
            var region = i + 1
            while !graph.canCut(before: region) { region += 1 }
            switch l.kind {
            case .conv(let g, _) where region == i + 1: main = .conv(g); weights = g.weightCount; bias = g.outChannels
            case .convTranspose(let g, _) where region == i + 1:
                main = .convTranspose(g); weights = g.weightCount; bias = g.outChannels
            case .linear(let g, _) where region == i + 1:
                main = .linear(g); weights = g.inFeatures * g.outFeatures; bias = g.outFeatures
            default: break
            }
            i = region
            var pools: [PoolGeometry] = []
            var post = 0
            if case .leaderOnly = main {
                units = 1; unitSize = inCount
            } else {
                // Channel-local layers ride along: clamps and other pointwise functions, and pools after a conv
                // (where a cut after them is valid).
                while i < layers.count && graph.canCut(before: i + 1) && graph.producers[i] == [i - 1] {
                    switch layers[i].kind {
                    case .clamp, .pointwise: post += layers[i].flops; i += 1; continue
                    case .maxPool(let p), .averagePool(let p):
                        if case .conv = main, !p.isDilated {
                            pools.append(p); post += layers[i].flops; i += 1; continue
                        }
                    default: break
                    }
                    break
                }
            }
            var branch: [Stage]? = nil, projection: Int? = nil
            if region > start + 1,
                let r = residualBranch(net, layers: start..<region, graph: graph, inputShape: shape)
            {
                (branch, projection) = r
            }
            var concatenated: Int? = nil
            if region > start + 1, branch == nil { concatenated = concatWidth(layers, start..<region, graph: graph) }
            var inception: [(layers: [Int], channels: Int)]? = nil
            if region > start + 1, branch == nil, concatenated == nil {
                inception = inceptionBranches(layers, start..<region, graph: graph, outputShape: outShapes[region - 1])
            }
            var perChannel: Int? = nil
            if case .leaderOnly = main, region == start + 1 { perChannel = Stage.perChannelWidth(layers[start]) }
            shape = outShapes[i - 1]
            let outCount = layers[i - 1].outputCount
            let outUnits: Int, outUnitSize: Int
            switch main {
            case .conv(let g): outUnits = g.outChannels; outUnitSize = outCount / g.outChannels
            case .convTranspose(let g): outUnits = g.outChannels; outUnitSize = outCount / g.outChannels
            case .linear(let g): outUnits = g.outFeatures; outUnitSize = 1
            case .leaderOnly:
                // A concat of two convs of width w: w units of two channels each; of branches: channels.
                outUnits = concatenated ?? inception.map { $0.reduce(0) { $0 + $1.channels } } ?? 1
                outUnitSize = outCount / outUnits
            }
            // A region is named by what its layers' names share (`layer1.0`, `features.3`).
            var name = l.name
            if region > start + 1 {
                let common = zip(l.name, layers[region - 1].name).prefix { $0 == $1 }.map { $0.0 }
                if let dot = common.lastIndex(of: "."), dot > 0 { name = String(common[..<dot]) }
            }
            stages.append(
                Stage(
                    name: name, layers: start..<i, main: main, pools: pools, inputCount: inCount,
                    mainOutputCount: layers[region - 1].outputCount, outputCount: outCount, inputUnits: units,
                    inputUnitSize: unitSize,
                    outputUnits: outUnits, outputUnitSize: outUnitSize,
                    mainFlops: layers[start..<(region)].reduce(0) { $0 + $1.flops },
                    postFlops: post, weightCount: weights, biasCount: bias, branch: branch, projection: projection,
                    concatenated: concatenated.map { _ in [start, start + 1] }, inception: inception,
                    perChannelWidth: perChannel))
        }
        return stages
    }

    /// Channels of a layer that works on each channel alone with no conv before it (0 for a clamp,
    /// which works on any), nil for any other layer.
    static func perChannelWidth(_ l: Layer) -> Int? {
        switch l.kind {
        case .scale(let c, _, _): return c
        case .clamp: return 0
        default: return nil
        }
    }

    /// The width of each conv when `range` is two ungrouped convs of equal output shape, both reading the
    /// region's input, then their concat along channels (a fire module's expands); nil otherwise.
    static func concatWidth(_ layers: [Layer], _ range: Range<Int>, graph: LayerGraph) -> Int? {
        let entry = range.lowerBound - 1, a = range.lowerBound, b = a + 1
        guard range.count == 3, case .concat = layers[b + 1].kind, graph.producers[b + 1] == [a, b],
            graph.producers[a] == [entry], graph.producers[b] == [entry],
            case .conv(let ga, _) = layers[a].kind, case .conv(let gb, _) = layers[b].kind,
            ga.groups == 1, gb.groups == 1, ga.outChannels == gb.outChannels, ga.outputCount == gb.outputCount
        else { return nil }
        return ga.outChannels
    }

    /// The stages of a residual block's branch: `layers` end with an `add` of the output of a chain that
    /// starts at the block's input and is itself stages (no inner region), and of the block's input or of
    /// one layer reading it (a projection, returned as its network index), which runs after the chain.
    static func residualBranch(_ net: Network, layers range: Range<Int>, graph: LayerGraph, inputShape: [Int])
        -> (branch: [Stage], projection: Int?)?
    {
        let layers = net.layers, last = range.upperBound - 1, entry = range.lowerBound - 1
        guard case .add = layers[last].kind, range.count >= 3 else { return nil }
        var chainEnd = last, projection: Int? = nil
        if Set(graph.producers[last]) != [last - 1, entry] {
            guard range.count >= 4, graph.producers[last - 1] == [entry],
                Set(graph.producers[last]) == [last - 2, last - 1]
            else { return nil }
            chainEnd = last - 1; projection = last - 1
        }
        for k in range.lowerBound..<chainEnd where graph.producers[k] != [k - 1] { return nil }
        var chain = Layer.region(layers, range.lowerBound..<chainEnd)
        for k in chain.indices { chain[k].inputs = [] }
        let sub = Stage.split(Network(name: net.name, inputShape: inputShape, layers: chain))
        guard sub.count >= 2, sub.allSatisfy({ $0.branch == nil }) else { return nil }
        let branch = sub.map { s in
            var s = s
            s.layers = (s.layers.lowerBound + range.lowerBound)..<(s.layers.upperBound + range.lowerBound)
            return s
        }
        if let p = projection {
            // Split, the projection adds its partial sum to the branch's before the one reduction: both must
            // be ungrouped convs ending in nothing the sum would have to pass first (no activation, no pool).
            guard case .conv(let pg, let pa) = layers[p].kind, pg.groups == 1, pa == .none,
                let end = branch.last, end.layers.count == 1,
                case .conv(let bg, let ba) = layers[end.layers.lowerBound].kind,
                bg.groups == 1, ba == .none, pg.outChannels == bg.outChannels, layers[p].outputCount == end.outputCount
            else { return nil }
        }
        return (branch, projection)
    }
}

/// How one stage is split across the boards.
public enum Dimension: String, Sendable, CaseIterable {
    /// The leader runs it alone.
    case none
    /// Output channels: each board holds a slice of the weights, needs the whole input.
    case outputChannels = "oc"
    /// Input channels: each board convolves a slice of the input channels; partial sums are reduced.
    case inputChannels = "ic"
    /// Output rows (CoEdge): each board computes a band, needs the input rows plus a halo and all weights.
    case rows = "h"
    /// Fused tiles (DeepThings' FTP): a run of convs by rows of the last one's output, each board computing
    /// its band through the whole run from the input rows it needs (the halos of every layer), with no
    /// exchange between the layers (`Segment.fusedTiles`); or by the rectangles of an R x C grid
    /// (`Segment.fusedGrid`), halos across as well as down.
    case tiles = "ftp"
}
