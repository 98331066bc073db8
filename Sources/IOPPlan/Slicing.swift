import IOPCore
import IOPModel
import IOPProgram

public enum Slicer {
    /// Per-segment programs for a plan over a network with weights.
    /// A bottleneck segment gives two programs (`Segment.bottleneck`), every other segment one.
    public static func programs(_ plan: Plan, network: Network, stages: [Stage]) -> [SegmentProgram] {
        plan.segments.enumerated().flatMap { i, segment in
            let partition = plan.costs[i].partitions[0]
            return programs(
                segment, extents: partition.extents, columns: partition.columnExtents, leader: plan.cluster.leader,
                layers: network.layers, stages: stages
            ).map { p in
                var p = p
                p.wire = plan.costs[i].wire
                return p
            }
        }
    }

    /// One segment's programs, in the order the leader runs them.
    static func programs(
        _ segment: Segment, extents: [Int], columns: [Int]?, leader: Int, layers: [Layer], stages: [Stage]
    ) -> [SegmentProgram] {
        guard case .bottleneck(let si) = segment else {
            return [program(segment, extents: extents, columns: columns, layers: layers, stages: stages)]
        }
        return bottleneck(stages[si], extents: extents, leader: leader, layers: layers)
    }

    /// One segment's parts and reduction. Layers without weights slice to
    /// layers without weights: the cost model lays those out for its memory figure.
    /// `columns`: a fused grid's columns per board (`Partition.columnExtents`).
    static func program(
        _ segment: Segment, extents: [Int], columns: [Int]? = nil, layers: [Layer], stages: [Stage]
    ) -> SegmentProgram {
        switch segment {
        case .single(let si, let dim):
            let s = stages[si]
            let stageLayers = Layer.region(layers, s.layers)
            let ext = extents
            var program = SegmentProgram(
                parts: [], reduceLayers: [], inputCount: s.inputCount,
                outputCount: s.outputCount, partialCount: 0)
            var start = 0
            for (d, e) in ext.enumerated() {
                defer { start += e }
                guard e > 0 else { continue }
                switch dim {
                case .none:
                    program.parts.append(BoardPart(board: d, layers: stageLayers, input: .all, output: .all))
                case .outputChannels where s.concatenated != nil:
                    program.parts.append(concatSlice(s, stageLayers, start..<(start + e), board: d))
                case .outputChannels where s.inception != nil:
                    program.parts.append(inceptionPart(s, layers, start..<(start + e), board: d))
                case .outputChannels:
                    program.parts.append(
                        BoardPart(
                            board: d, layers: outputSlice(stageLayers, start..<(start + e)), input: .all,
                            output: .elements((start * s.outputUnitSize)..<((start + e) * s.outputUnitSize))))
                case .inputChannels:
                    program.parts.append(
                        BoardPart(
                            board: d,
                            layers: [inputSlice(stageLayers[0], start..<(start + e), unitSize: s.inputUnitSize)],
                            input: .elements((start * s.inputUnitSize)..<((start + e) * s.inputUnitSize)),
                            output: .partialSum))
                case .rows, .tiles:
                    program.parts.append(rowBand(s, stageLayers, start..<(start + e), board: d))
                }
            }
            if dim == .inputChannels {
                program.reduceLayers = reduction(stageLayers)
                program.partialCount = s.mainOutputCount
            }
            return program
        case .chain(let first, let last):
            return chain(Array(stages[first...last]), extents: extents, layers: layers)
        case .fusedTiles(let first, let last):
            return fusedParts(
                Array(stages[first...last]), extents: extents, columns: nil, gridColumns: 1, layers: layers)
        case .fusedGrid(let first, let last, let gridColumns):
            return fusedParts(
                Array(stages[first...last]), extents: extents, columns: columns, gridColumns: gridColumns,
                layers: layers)
        case .residual(let si):
            let block = stages[si]
            var program = chain(block.branch!, extents: extents, layers: layers)
            var shortcut = layers[block.layers.upperBound - 1]
            if let p = block.projection {
                projection(&program, layers[p], add: shortcut, extents: extents, total: block.branch![0].outputUnits)
                return program
            }
            shortcut.inputs = []
            program.reduceLayers.append(shortcut)
            program.addsShortcut = true
            return program
        case .bottleneck:
            preconditionFailure("a bottleneck is two programs (Slicer.programs)")
        }
    }

    /// Channels `channels` of each conv of a concat region (`Stage.concatenated`): the board reads the
    /// whole input, runs its slice of both convs and concatenates them; its result is two runs of the
    /// region's output, placed as rows `channels` of a 2 x width x plane tensor.
    static func concatSlice(_ s: Stage, _ region: [Layer], _ channels: Range<Int>, board: Int) -> BoardPart {
        var second = outputSlice([region[1]], channels)[0]
        second.inputs = [-1]
        let first = outputSlice([region[0]], channels)[0], e = first.outputCount
        let concat = Layer(name: region[2].name, kind: .concat(first: e, second: e), inputs: [0, 1])
        let plane = s.outputUnitSize / 2
        return BoardPart(
            board: board, layers: [first, second, concat], input: .all,
            output: .rows(channels, channels: 2, height: s.outputUnits, width: plane))
    }

    /// A projection's input channels on each board: the branch's channel split (`extents` of its first
    /// stage's `total` output channels) in proportion, each board's run ending at the floor of its share.
    static func projectionChannels(_ extents: [Int], total: Int, inputs: Int) -> [Range<Int>] {
        var start = 0
        return extents.map { e in
            defer { start += e }
            return (start * inputs / total)..<((start + e) * inputs / total)
        }
    }

    /// A residual block's projection split by input channels inside a chain's parts: each board, which
    /// holds the whole block input, runs the projection on its channels of it and adds that partial sum
    /// to its branch's, so the one reduction sums both; the leader then adds both biases once and
    /// applies the block's `add`'s activation. No byte beyond the chain's scatter and gather.
    static func projection(_ program: inout SegmentProgram, _ proj: Layer, add: Layer, extents: [Int], total: Int) {
        guard case .conv(let g, _) = proj.kind, case .add(let count, let act) = add.kind,
            case .addBias(let channels, let plane, _) = program.reduceLayers[0].kind
        else { preconditionFailure("a projection is a conv added to the branch (Stage.residualBranch)") }
        let plane0 = g.inHeight * g.inWidth
        let slices = projectionChannels(extents, total: total, inputs: g.inChannels)
        for k in program.parts.indices where !slices[program.parts[k].board].isEmpty {
            let c = slices[program.parts[k].board], branchEnd = program.parts[k].layers.count - 1
            var conv = inputSlice(proj, c, unitSize: plane0)
            conv.inputs = [-1]
            conv.inputOffset = c.lowerBound * plane0
            program.parts[k].layers += [
                conv, Layer(name: add.name, kind: .add(count: count, .none), inputs: [branchEnd, branchEnd + 1]),
            ]
        }
        program.reduceLayers[0].kind = .addBias(channels: channels, plane: plane, act)
        if !proj.bias.isEmpty { program.reduceLayers[0].bias = zip(program.reduceLayers[0].bias, proj.bias).map(+) }
    }

    /// A chain's parts: on each board, the first stage's output channels, the middle stages on those
    /// channels, and the last stage's input channels, whose partial sum the leader reduces.
    static func chain(_ chain: [Stage], extents: [Int], layers: [Layer]) -> SegmentProgram {
        let regions = chain.map { s in
            Layer.region(layers, s.layers).map { l -> Layer in
                var l = l
                l.inputs = []
                return l
            }
        }
        let a = chain[0], b = chain[chain.count - 1], total = a.outputUnits
        var program = SegmentProgram(
            parts: [], reduceLayers: reduction(regions[regions.count - 1]), inputCount: a.inputCount,
            outputCount: b.outputCount, partialCount: b.mainOutputCount)
        var start = 0
        for (d, e) in extents.enumerated() {
            defer { start += e }
            guard e > 0 else { continue }
            let channels = start..<(start + e)
            // The OC slice's output is exactly what the middle stages and the IC slice read: no message between.
            let middle = regions.dropFirst().dropLast().flatMap { $0.map { onChannels($0, channels, total: total) } }
            let part =
                outputSlice(regions[0], channels) + middle + [
                    inputSlice(regions[regions.count - 1][0], channels, unitSize: b.inputUnitSize)
                ]
            program.parts.append(BoardPart(board: d, layers: part, input: .all, output: .partialSum))
        }
        return program
    }

    /// Output channels [c0, c1) of a stage: the main layer's weight rows and
    /// bias, its activation, and the channel-local layers after it on those channels.
    static func outputSlice(_ stage: [Layer], _ channels: Range<Int>) -> [Layer] {
        let main = stage[0], e = channels.count
        var out: [Layer] = []
        // Both kinds keep each output channel's weights together: the slice is a run of `per`-sized rows.
        func rows(_ kind: LayerKind, per: Int) -> Layer {
            Layer(
                name: main.name, kind: kind,
                weights: slice(main.weights, (channels.lowerBound * per)..<(channels.upperBound * per)),
                bias: slice(main.bias, channels))
        }
        switch main.kind {
        case .conv(let g, let act):
            precondition(g.groups == 1, "grouped convs are not split by channels (Stage.allowedDimensions)")
            out.append(rows(.conv(g.sliced(outChannels: e), act), per: g.weightCount / g.outChannels))
        case .convTranspose(let g, let act):
            precondition(g.groups == 1, "grouped ConvTransposes are not split by channels (Stage.allowedDimensions)")
            out.append(rows(.convTranspose(g.sliced(outChannels: e), act), per: g.weightCount / g.outChannels))
        case .linear(let g, let act):
            let k = g.inFeatures
            out.append(
                Layer(
                    name: main.name, kind: .linear(LinearGeometry(inFeatures: k, outFeatures: e), act),
                    weights: slice(main.weights, (channels.lowerBound * k)..<(channels.upperBound * k)),
                    bias: slice(main.bias, channels)))
        default: preconditionFailure("only conv, ConvTranspose and linear stages split by output channels")
        }
        for l in stage.dropFirst() { out.append(onChannels(l, channels, total: stageChannels(main))) }
        return out
    }

    static func slice(_ values: [Float], _ range: Range<Int>) -> [Float] { values.isEmpty ? [] : Array(values[range]) }

    static func stageChannels(_ main: Layer) -> Int {
        switch main.kind {
        case .conv(let g, _): return g.outChannels
        case .convTranspose(let g, _): return g.outChannels
        case .linear(let g, _): return g.outFeatures
        default: return 1
        }
    }

    /// A channel-local layer restricted to channels `channels` of its `total`.
    static func onChannels(_ l: Layer, _ channels: Range<Int>, total: Int) -> Layer {
        var l = l
        let e = channels.count
        switch l.kind {
        case .clamp(let n, let act): l.kind = .clamp(count: n / total * e, act)
        case .maxPool(var p): p.channels = e; l.kind = .maxPool(p)
        case .averagePool(var p): p.channels = e; l.kind = .averagePool(p)
        case .scale(_, let plane, let act):
            l.kind = .scale(channels: e, plane: plane, act)
            l.weights = slice(l.weights, channels); l.bias = slice(l.bias, channels)
        case .conv(let g, let act) where g.isDepthwise && g.inChannels == total && g.outChannels == total:
            let taps = g.kernelH * g.kernelW
            l.kind = .conv(
                ConvGeometry(
                    inChannels: e, inHeight: g.inHeight, inWidth: g.inWidth, outChannels: e, kernelH: g.kernelH,
                    kernelW: g.kernelW, strideH: g.strideH, strideW: g.strideW, dilationH: g.dilationH,
                    dilationW: g.dilationW, padTop: g.padTop, padLeft: g.padLeft, padBottom: g.padBottom,
                    padRight: g.padRight, groups: e), act)
            l.weights = slice(l.weights, (channels.lowerBound * taps)..<(channels.upperBound * taps))
            l.bias = slice(l.bias, channels)
        case .pointwise(_, let plane, let f):
            l.kind = .pointwise(channels: e, plane: plane, f)
            l.weights = slice(l.weights, channels)
        default: preconditionFailure("not a channel-local layer: \(l.opName)")
        }
        return l
    }

    /// Input channels [c0, c1) of a conv, ConvTranspose or linear layer: its weight columns,
    /// no bias and no activation (they follow the reduction).
    static func inputSlice(_ main: Layer, _ channels: Range<Int>, unitSize: Int) -> Layer {
        let e = channels.count
        // Both kinds of conv hold their weights as [out][in][kh][kw] (ungrouped): `taps`-sized runs per input.
        func columns(outChannels: Int, inChannels: Int, taps: Int) -> [Float] {
            var w = [Float](); w.reserveCapacity(outChannels * e * taps)
            for o in 0..<outChannels where !main.weights.isEmpty {
                let row = o * inChannels
                w += main.weights[((row + channels.lowerBound) * taps)..<((row + channels.upperBound) * taps)]
            }
            return w
        }
        switch main.kind {
        case .conv(let g, _):
            precondition(g.groups == 1, "grouped convs are not split by channels (Stage.allowedDimensions)")
            let w = columns(outChannels: g.outChannels, inChannels: g.inChannels, taps: g.kernelH * g.kernelW)
            return Layer(name: main.name, kind: .conv(g.sliced(inChannels: e), .none), weights: w)
        case .convTranspose(let g, _):
            precondition(g.groups == 1, "grouped ConvTransposes are not split by channels (Stage.allowedDimensions)")
            let w = columns(outChannels: g.outChannels, inChannels: g.inChannels, taps: g.kernelH * g.kernelW)
            return Layer(name: main.name, kind: .convTranspose(g.sliced(inChannels: e), .none), weights: w)
        case .linear(let g, _):
            let k = g.inFeatures, c0 = channels.lowerBound * unitSize, c1 = channels.upperBound * unitSize
            var w = [Float](); w.reserveCapacity(g.outFeatures * (c1 - c0))
            for o in 0..<g.outFeatures where !main.weights.isEmpty { w += main.weights[(o * k + c0)..<(o * k + c1)] }
            return Layer(
                name: main.name,
                kind: .linear(LinearGeometry(inFeatures: e * unitSize, outFeatures: g.outFeatures), .none), weights: w)
        default: preconditionFailure("only conv, ConvTranspose and linear stages split by input channels")
        }
    }

    /// What the leader runs on the summed partials: bias and activation, then the stage's other layers.
    static func reduction(_ stage: [Layer]) -> [Layer] {
        let main = stage[0]
        let channels: Int, plane: Int, act: Activation
        switch main.kind {
        case .conv(let g, let a): channels = g.outChannels; plane = g.outHeight * g.outWidth; act = a
        case .convTranspose(let g, let a): channels = g.outChannels; plane = g.outHeight * g.outWidth; act = a
        case .linear(let g, let a): channels = g.outFeatures; plane = 1; act = a
        default: preconditionFailure("only conv, ConvTranspose and linear stages reduce")
        }
        let bias = main.bias.isEmpty ? [Float](repeating: 0, count: channels) : main.bias
        return [Layer(name: main.name + ".reduce", kind: .addBias(channels: channels, plane: plane, act), bias: bias)]
            + stage.dropFirst()
    }

    /// Output rows [r0, r1) of a conv stage (and, for a fused grid's tile, only its output columns
    /// `columns`): the input band with its halo, and the conv and pools re-padded so they see exactly the
    /// rows and columns they would in the whole.
    static func rowBand(
        _ s: Stage, _ stage: [Layer], _ rows: Range<Int>, columns: Range<Int>? = nil, board: Int
    ) -> BoardPart {
        guard let g = s.spatial else { preconditionFailure("h split of a stage that is not a conv") }
        let need = s.rowsNeeded(outputRows: rows.lowerBound, rows.upperBound)
        let across = columns.map { s.columnsNeeded(outputColumns: $0.lowerBound, $0.upperBound) }
        // Output rows need.main from input rows need.input, padding where the band meets the edge.
        let kind: LayerKind
        switch stage[0].kind {
        case .conv(let c, let act):
            let top = need.main.lowerBound * c.strideH - c.padTop
            let bottom = (need.main.upperBound - 1) * c.strideH - c.padTop + (c.kernelH - 1) * c.dilationH + 1
            var conv = c.sliced(
                inHeight: need.input.count, padTop: max(0, -top), padBottom: max(0, bottom - c.inHeight))
            if let across {
                let left = across.main.lowerBound * c.strideW - c.padLeft
                let right = (across.main.upperBound - 1) * c.strideW - c.padLeft + (c.kernelW - 1) * c.dilationW + 1
                conv = conv.sliced(
                    inWidth: across.input.count, padLeft: max(0, -left), padRight: max(0, right - c.inWidth))
                precondition(conv.outWidth == across.main.count, "tile geometry")
            }
            precondition(conv.outHeight == need.main.count, "row band geometry")
            kind = .conv(conv, act)
        case .convTranspose(let c, let act) where columns == nil:
            let band = c.band(outputRows: need.main)
            precondition(band.outHeight == need.main.count && band.inHeight == need.input.count, "row band geometry")
            kind = .convTranspose(band, act)
        default: preconditionFailure("h split of a stage that is not a conv")
        }
        var layers = [Layer(name: stage[0].name, kind: kind, weights: stage[0].weights, bias: stage[0].bias)]
        // Pools: map the band forward, re-padding at the edges of the whole.
        var bandRows = need.main, height = g.outHeight, width = g.outWidth
        var bandColumns = across?.main ?? 0..<width
        var poolIndex = 0
        let pools = s.pools
        for l in stage.dropFirst() {
            // Elements per channel of the band against the whole plane.
            let plane = height * width, band = bandRows.count * bandColumns.count
            switch l.kind {
            case .clamp(let n, let a):
                layers.append(Layer(name: l.name, kind: .clamp(count: n / plane * band, a)))
            case .pointwise(let c, let p, let f):
                layers.append(
                    Layer(name: l.name, kind: .pointwise(channels: c, plane: p / plane * band, f), weights: l.weights))
            case .maxPool, .averagePool:
                let p = pools[poolIndex]; poolIndex += 1
                // This pool's output rows: those of the next stage down, or the stage output band.
                let outRows = poolIndex == pools.count ? rows : forwardRows(pools[poolIndex...], rows)
                let first = outRows.lowerBound * p.strideH - p.padTop
                let last = (outRows.upperBound - 1) * p.strideH - p.padTop + p.kernelH
                var q = p
                q.inHeight = bandRows.count
                q.padTop = max(0, -first)
                // A band that reaches the bottom keeps the whole's bottom padding (average pools count it).
                q.padBottom = last > p.inHeight ? p.padBottom : 0
                q.outHeight = outRows.count
                precondition(max(0, first) == bandRows.lowerBound, "pool band start")
                if let columns {
                    let outColumns = poolIndex == pools.count ? columns : forwardColumns(pools[poolIndex...], columns)
                    let left = outColumns.lowerBound * p.strideW - p.padLeft
                    let right = (outColumns.upperBound - 1) * p.strideW - p.padLeft + p.kernelW
                    q.inWidth = bandColumns.count
                    q.padLeft = max(0, -left)
                    q.padRight = right > p.inWidth ? p.padRight : 0
                    q.outWidth = outColumns.count
                    precondition(max(0, left) == bandColumns.lowerBound, "pool tile start")
                    bandColumns = outColumns
                } else {
                    bandColumns = 0..<p.outWidth
                }
                if case .maxPool = l.kind {
                    layers.append(Layer(name: l.name, kind: .maxPool(q)))
                } else {
                    layers.append(Layer(name: l.name, kind: .averagePool(q)))
                }
                bandRows = outRows; height = p.outHeight; width = p.outWidth
            default: preconditionFailure("unexpected layer in a conv stage")
            }
        }
        if let columns, let across {
            return BoardPart(
                board: board, layers: layers,
                input: .tile(
                    need.input, columns: across.input, channels: g.inChannels, height: g.inHeight, width: g.inWidth),
                output: .tile(
                    rows, columns: columns, channels: g.outChannels, height: s.outputRows, width: s.outputColumns))
        }
        return BoardPart(
            board: board, layers: layers,
            input: .rows(need.input, channels: g.inChannels, height: g.inHeight, width: g.inWidth),
            output: .rows(
                rows, channels: g.outChannels, height: s.outputRows,
                width: s.outputCount / (g.outChannels * s.outputRows)))
    }

    /// Rows of the input of `pools.first` that produce `rows` at the output of `pools.last`.
    static func forwardRows(_ pools: ArraySlice<PoolGeometry>, _ rows: Range<Int>) -> Range<Int> {
        var lo = rows.lowerBound, hi = rows.upperBound
        for p in pools.reversed() {
            lo = max(0, lo * p.strideH - p.padTop)
            hi = min(p.inHeight, (hi - 1) * p.strideH - p.padTop + p.kernelH)
        }
        return lo..<hi
    }

    /// `forwardRows`' twin across.
    static func forwardColumns(_ pools: ArraySlice<PoolGeometry>, _ columns: Range<Int>) -> Range<Int> {
        var lo = columns.lowerBound, hi = columns.upperBound
        for p in pools.reversed() {
            lo = max(0, lo * p.strideW - p.padLeft)
            hi = min(p.inWidth, (hi - 1) * p.strideW - p.padLeft + p.kernelW)
        }
        return lo..<hi
    }

    /// The rectangles of a fused grid of `gridColumns` columns: board d sits in grid row d / gridColumns,
    /// whose output rows are `rows[d]` of them after the grid rows above; its columns are `columns[d]` of
    /// them after those of the boards before it in its grid row.
    public static func gridTiles(rows: [Int], columns: [Int], gridColumns: Int) -> [(
        rows: Range<Int>, columns: Range<Int>
    )] {
        var tiles: [(rows: Range<Int>, columns: Range<Int>)] = []
        var r0 = 0, c0 = 0
        for d in rows.indices {
            if d > 0, d % gridColumns == 0 { r0 += rows[d - 1]; c0 = 0 }
            tiles.append((r0..<(r0 + rows[d]), c0..<(c0 + columns[d])))
            c0 += columns[d]
        }
        return tiles
    }

    /// A fused run's parts, by row bands (`columns` nil) or by a grid's tiles: each stage's band is exactly
    /// the rows (and columns) the next one's band reads, so nothing is exchanged in between.
    static func fusedParts(
        _ run: [Stage], extents: [Int], columns: [Int]?, gridColumns: Int, layers: [Layer]
    ) -> SegmentProgram {
        var program = SegmentProgram(
            parts: [], reduceLayers: [], inputCount: run[0].inputCount, outputCount: run[run.count - 1].outputCount,
            partialCount: 0)
        let full = run[run.count - 1].outputColumns
        let tiles = gridTiles(rows: extents, columns: columns ?? extents.map { _ in full }, gridColumns: gridColumns)
        for (d, tile) in tiles.enumerated() where !tile.rows.isEmpty && !tile.columns.isEmpty {
            let rowBands = Stage.bands(run, outputRows: tile.rows)
            let columnBands = columns == nil ? nil : Stage.columnBands(run, outputColumns: tile.columns)
            let bands = run.indices.map { k in
                rowBand(
                    run[k], Layer.region(layers, run[k].layers), rowBands[k], columns: columnBands?[k], board: d)
            }
            program.parts.append(
                BoardPart(
                    board: d, layers: bands.flatMap(\.layers), input: bands[0].input,
                    output: bands[bands.count - 1].output))
        }
        return program
    }
}

extension ProgramBundle {
    /// The bundle `iop compile` writes: the cluster's boards, every board's
    /// program laid out in its arena, and the weight shards.
    public static func compile(_ plan: Plan, network: Network) -> [UInt8] {
        ProgramBundle.encode(
            boards: plan.cluster.devices.map {
                .init(name: $0.name, endpoint: $0.endpoint, budgetBytes: $0.memoryBudgetBytes)
            },
            leaderIndex: plan.cluster.leader,
            segments: Slicer.programs(plan, network: network, stages: Stage.split(network)), stream: network.stream)
    }
}
