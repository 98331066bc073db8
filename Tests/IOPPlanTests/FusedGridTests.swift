import IOPCore
import IOPModel
import IOPPlan
import IOPProgram
import PlanTestSupport
import TestSupport
import Testing

/// Fused tiles by an R x C grid (`Segment.fusedGrid`): a run of convs by rectangles of the last one's output,
/// halos across as well as down.
@Suite struct FusedGridTests {
    /// A plan of one grid over the whole of `net` with the tiles given (rows and columns per board).
    static func gridPlan(_ net: Network, _ cluster: Cluster, gridColumns: Int, rows: [Int], columns: [Int]) -> Plan {
        let planner = Planner(network: net, cluster: cluster)
        let segment = Segment.fusedGrid(first: 0, last: planner.model.stages.count - 1, columns: gridColumns)
        var cost = planner.model.cost(segment)
        cost.partitions[0].extents = rows
        cost.partitions[0].columnExtents = columns
        return Plan(planner: .ftp, segments: [segment], costs: [cost], cluster: cluster)
    }

    /// `total` cut into `parts` random runs (some may be empty).
    static func composition(_ total: Int, _ parts: Int, _ rng: inout SplitMix64) -> [Int] {
        let cuts = ((0..<(parts - 1)).map { _ in Int(rng.next() % UInt64(total + 1)) } + [0, total]).sorted()
        return (0..<parts).map { cuts[$0 + 1] - cuts[$0] }
    }

    /// A random run of 1-3 conv stages (kernels 1-5, strides 1-2, dilation 2, uneven pads, a max or average
    /// pool after some), cut into a random 2x2, 1x4 or 4x1 grid of tiles of random sizes (some empty): each
    /// board computes its tile from its input rectangle with halos, and the tiles put together are the
    /// single-board engine's output.
    @Test func randomTilesOfRandomConvRunsEqualTheWhole() throws {
        var rng = SplitMix64(seed: 2024)
        func pick(_ n: Int) -> Int { Int(rng.next() % UInt64(n)) }
        func values(_ n: Int) -> [Float] { (0..<n).map { _ in Float(rng.nextUnit() - 0.5) } }
        let cluster = Examples.fourBoards(mbps: 100)
        var checked = 0
        while checked < 150 {
            var c = 1 + pick(3), h = 6 + pick(10), w = 6 + pick(10)
            let input = [1, c, h, w]
            var layers: [Layer] = []
            for k in 0..<(1 + pick(3)) {
                let kernel = [1, 3, 5][pick(3)], dilation = kernel == 3 && pick(4) == 0 ? 2 : 1
                let span = (kernel - 1) * dilation + 1
                let g = ConvGeometry(
                    inChannels: c, inHeight: h, inWidth: w, outChannels: 1 + pick(3), kernelH: kernel, kernelW: kernel,
                    strideH: 1 + pick(2), strideW: 1 + pick(2), dilationH: dilation, dilationW: dilation,
                    padTop: pick(span / 2 + 1), padLeft: pick(span / 2 + 1), padBottom: pick(span / 2 + 1),
                    padRight: pick(span / 2 + 1))
                guard g.outHeight >= 2, g.outWidth >= 2 else { break }
                layers.append(
                    Layer(
                        name: "c\(k)", kind: .conv(g, pick(2) == 0 ? .relu : .none), weights: values(g.weightCount),
                        bias: values(g.outChannels)))
                (c, h, w) = (g.outChannels, g.outHeight, g.outWidth)
                if pick(2) == 0 {
                    let kp = 2 + pick(2)
                    let p = PoolGeometry(
                        channels: c, inHeight: h, inWidth: w, kernelH: kp, kernelW: kp, strideH: 1 + pick(2),
                        strideW: 1 + pick(2), padTop: pick(kp / 2 + 1), padLeft: pick(kp / 2 + 1),
                        padBottom: pick(kp / 2 + 1), padRight: pick(kp / 2 + 1), countIncludePad: pick(2) == 0)
                    guard p.outHeight >= 2, p.outWidth >= 2 else { continue }
                    layers.append(Layer(name: "p\(k)", kind: pick(2) == 0 ? .maxPool(p) : .averagePool(p)))
                    (h, w) = (p.outHeight, p.outWidth)
                }
            }
            guard !layers.isEmpty else { continue }
            let net = Network(name: "run", inputShape: input, layers: layers)
            let gridColumns = [1, 2, 4][pick(3)], gridRows = 4 / gridColumns
            let bands = Self.composition(h, gridRows, &rng)
            let rows = (0..<4).map { bands[$0 / gridColumns] }
            let columns = (0..<gridRows).flatMap { _ in Self.composition(w, gridColumns, &rng) }
            let plan = Self.gridPlan(net, cluster, gridColumns: gridColumns, rows: rows, columns: columns)
            let x = values(net.inputCount)
            let err = scaledError(
                try LocalExecutor(plan: plan, network: net).run(x), try net.makeEngine(threads: 1).run(x))
            #expect(err <= 1e-5, "\(layers.map(\.kind)) grid \(gridRows)x\(gridColumns) \(rows) \(columns): \(err)")
            checked += 1
        }
    }

    /// Two 3x3 pad-1 convs (1 -> 2 -> 1 channels) on an 8x8 input, four equal boards as a 2x2 grid: each
    /// board's 4x4 tile of c2 needs a 5x5 tile of c1 and a 6x6 tile of the input, the halo a row and a
    /// column per conv on the tile's inner sides.
    @Test func aTwoByTwoGridCountsHaloRowsAndColumns() throws {
        let c1 = ConvGeometry(
            inChannels: 1, inHeight: 8, inWidth: 8, outChannels: 2, kernelH: 3, kernelW: 3, padTop: 1, padLeft: 1,
            padBottom: 1, padRight: 1)
        let c2 = ConvGeometry(
            inChannels: 2, inHeight: 8, inWidth: 8, outChannels: 1, kernelH: 3, kernelW: 3, padTop: 1, padLeft: 1,
            padBottom: 1, padRight: 1)
        let net = Network(
            name: "two-convs", inputShape: [1, 1, 8, 8],
            layers: [Layer(name: "c1", kind: .conv(c1, .relu)), Layer(name: "c2", kind: .conv(c2, .none))])
        let planner = Planner(network: net, cluster: Examples.fourBoards(mbps: 8))
        let stages = planner.model.stages
        #expect(Stage.columnBands(stages, outputColumns: 4..<8) == [3..<8, 4..<8])
        #expect(stages[0].columnsNeeded(outputColumns: 3, 8).input == 2..<8)
        #expect(
            planner.fusedGrids(0) == [
                .fusedGrid(first: 0, last: 0, columns: 2), .fusedGrid(first: 0, last: 0, columns: 4),
                .fusedGrid(first: 0, last: 1, columns: 2), .fusedGrid(first: 0, last: 1, columns: 4),
            ])
        let cost = planner.model.cost(.fusedGrid(first: 0, last: 1, columns: 2))
        #expect(cost.partitions[0].extents == [4, 4, 4, 4] && cost.partitions[0].columnExtents == [4, 4, 4, 4])
        // The leader (board 0) sends boards 1-3 their 6x6 input tiles (36 floats, 144 B: 0.5 + 0.144 ms at
        // 8 Mbit/s) and each sends back its 4x4 tile (16 floats, 64 B: 0.5 + 0.064 ms); its own tile stays.
        #expect(cost.bytesSent == [432, 64, 64, 64] && cost.messagesSent == [3, 1, 1, 1])
        #expect(abs(cost.commMs - 3 * (0.644 + 0.564)) < 1e-12)
        // FLOPs: c1 2*128*9 = 2304 over 64 positions, 25 of them 900; c2 2*64*18 = 2304, 16 of them 576:
        // 1476 on each board at 6 GFLOP/s.
        #expect(abs(cost.computeMs - 1476 / 6e6) < 1e-15)
        // Four row bands of two rows instead: a band needs 4 or 6 input rows of all 8 columns.
        let rows = planner.model.cost(.fusedTiles(first: 0, last: 1))
        #expect(rows.bytesSent == [4 * 8 * (6 + 6 + 4), 2 * 8 * 4, 2 * 8 * 4, 2 * 8 * 4])
    }

    /// The planner's 2x2 grids over the longest runs, forced from every stage where one starts, on four
    /// unequal boards (unequal tiles), run exactly: pools and strides (VGG-11), depthwise convs (MobileNetV2).
    @Test(arguments: ["vgg11", "mobilenet_v2"])
    func forcedTwoByTwoGridsExecuteExactly(_ model: String) throws {
        let net = try Zoo.make(model, inputSize: 32)
        // A Pi 4 and a Pi 3 in each grid row: unequal columns.
        let mixed = try Examples.cluster("mixed-pi4-pi3").devices
        let cluster = Cluster(devices: [mixed[0], mixed[2], mixed[1], mixed[3]], leader: 0)
        let planner = Planner(network: net, cluster: cluster)
        let stages = planner.model.stages
        var segments: [Segment] = []
        var i = 0
        while i < stages.count {
            segments.append(
                planner.fusedGrids(i).last { if case .fusedGrid(_, _, 2) = $0 { true } else { false } }
                    ?? .single(stage: i, .none))
            i += segments.last!.stages.count
        }
        #expect(segments.contains { $0.stages.count >= (model == "vgg11" ? Planner.maxFusedStages : 6) })
        let plan = Plan(planner: .ftp, segments: segments, costs: segments.map(planner.model.cost), cluster: cluster)
        let grid = try #require(plan.costs.first { $0.partitions[0].columnExtents != nil }?.partitions[0])
        #expect(Set(grid.columnExtents!).count > 1, "unequal boards get unequal columns: \(grid.columnExtents!)")
        var rng = SplitMix64(seed: 17)
        let x = (0..<net.inputCount).map { _ in Float(rng.nextUnit() * 2 - 1) }
        let err = scaledError(try LocalExecutor(plan: plan, network: net).run(x), try net.makeEngine(threads: 1).run(x))
        #expect(err <= 1e-4, "scaled error \(err)")
    }

    /// A tile region reads and writes the rectangle, channel by channel and row by row, in fp32 and through
    /// fp16 (values exact in fp16), against indices computed by hand.
    @Test func aTileSelectsAndPlacesItsRectangleInBothPrecisions() {
        let (c, h, w) = (2, 5, 6)
        let x = (0..<(c * h * w)).map { Float($0) / 8 }
        let tile = BoardPart.Input.tile(1..<4, columns: 2..<5, channels: c, height: h, width: w)
        let expected = (0..<c).flatMap { ch in (1..<4).flatMap { r in (2..<5).map { x[(ch * h + r) * w + $0] } } }
        #expect(tile.count(ofWhole: x.count) == expected.count)
        var got = [Float](repeating: 0, count: expected.count)
        var halves = [UInt16](repeating: 0, count: expected.count)
        var widened = [Float](repeating: 0, count: expected.count)
        #expect(tile.select(from: x, count: x.count, into: &got) == expected.count && got == expected)
        _ = halves.withUnsafeMutableBytes { tile.selectNarrowing(from: x, count: x.count, into: $0.baseAddress!) }
        halves.withUnsafeBytes { h in
            widened.withUnsafeMutableBytes { Half.widen(h.baseAddress!, count: h.count / 2, into: $0.baseAddress!) }
        }
        #expect(widened == expected)
        let out = BoardPart.Output.tile(1..<4, columns: 2..<5, channels: c, height: h, width: w)
        var whole = [Float](repeating: -1, count: x.count), wholeHalf = whole
        out.place(expected, count: expected.count, into: &whole)
        halves.withUnsafeBytes { out.placeWidening($0.baseAddress!, count: expected.count, into: &wholeHalf) }
        let inside = { (i: Int) in (1..<4).contains(i / w % h) && (2..<5).contains(i % w) }
        #expect(whole.indices.allSatisfy { whole[$0] == (inside($0) ? x[$0] : -1) } && wholeHalf == whole)
    }
}
