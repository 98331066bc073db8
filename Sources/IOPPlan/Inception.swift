import IOPCore
import IOPModel
import IOPProgram

/// An Inception block: three or more branches, each a chain of layers reading the region's input (a 1x1; a
/// 1x1 then a 3x3; a pool then a 1x1), concatenated along channels. Split by output channels as a unit,
/// every board gets the whole input and runs a run of whole branches, whose output is a contiguous run of
/// the concat's channels (`BoardPart.Output.elements`): the gather is the concat, nothing is reduced, and
/// no branch's inner tensor crosses a link. A branch is the grain: the split follows the boards'
/// capability only as closely as the branches' FLOPs allow (`CostModel.branchExtents`).
extension Stage {
    /// The branches of `range` when it ends in a fold of binary concats (as ONNX's Concat is imported) of
    /// three or more chains, each reading only the region's input at its head and read only by the next of
    /// its layers or by the concat; nil otherwise.
    static func inceptionBranches(_ layers: [Layer], _ range: Range<Int>, graph: LayerGraph, outputShape: [Int])
        -> [(layers: [Int], channels: Int)]?
    {
        let entry = range.lowerBound - 1
        guard outputShape.count == 4, case .concat = layers[range.upperBound - 1].kind else { return nil }
        var ends: [Int] = [], k = range.upperBound - 1, concats = 0
        while case .concat = layers[k].kind, range.contains(k), graph.producers[k].count == 2 {
            ends.insert(graph.producers[k][1], at: 0)
            k = graph.producers[k][0]; concats += 1
            guard range.contains(k) else { return nil }
        }
        ends.insert(k, at: 0)
        guard ends.count >= 3 else { return nil }
        let plane = outputShape[2] * outputShape[3]
        var branches: [(layers: [Int], channels: Int)] = []
        for end in ends {
            var chain = [end], k = end
            while graph.producers[k] != [entry] {
                guard graph.producers[k].count == 1, let p = graph.producers[k].first, range.contains(p),
                    graph.readers(of: p) == 1
                else { return nil }
                chain.insert(p, at: 0); k = p
            }
            guard layers[end].outputCount % plane == 0 else { return nil }
            branches.append((chain, layers[end].outputCount / plane))
        }
        // Every layer of the region is in one branch or is one of the concats.
        guard branches.reduce(concats, { $0 + $1.layers.count }) == range.count,
            Set(branches.flatMap(\.layers)).count == range.count - concats
        else { return nil }
        return branches
    }
}

extension CostModel {
    /// An Inception block's output channels per board: a run of whole branches each, in cluster order,
    /// chosen to make the slowest board's branches (FLOPs over capability) as fast as can be, exactly (a
    /// dynamic program over the branches and the boards).
    public func branchExtents(_ stage: Int) -> [Int] {
        let branches = stages[stage].inception!
        let flops = branches.map { b in Double(b.layers.reduce(0) { $0 + layers[$1].flops }) }
        let m = branches.count
        // best[d][j]: the least slowest time when boards d... run branches j...; cut: where board d's run ends.
        var best = [[Double]](repeating: [Double](repeating: .infinity, count: m + 1), count: n + 1)
        var cut = [[Int]](repeating: [Int](repeating: m, count: m + 1), count: n + 1)
        best[n][m] = 0
        for d in stride(from: n - 1, through: 0, by: -1) {
            for j in 0...m {
                var work = 0.0
                for e in j...m {
                    if e > j { work += flops[e - 1] }
                    let t = max(work / capability(d), best[d + 1][e])
                    if t < best[d][j] { best[d][j] = t; cut[d][j] = e }
                }
            }
        }
        var extents: [Int] = [], j = 0
        for d in 0..<n {
            let e = cut[d][j]
            extents.append(branches[j..<e].reduce(0) { $0 + $1.channels })
            j = e
        }
        return extents
    }
}

extension Slicer {
    /// The whole branches of an Inception block whose channels are `channels` of the concat: each branch's
    /// layers reading the block's input, then their concat; the part's output is their run of the concat.
    static func inceptionPart(_ s: Stage, _ layers: [Layer], _ channels: Range<Int>, board: Int) -> BoardPart {
        var part: [Layer] = [], joined: (layer: Int, count: Int)? = nil, start = 0
        for b in s.inception! {
            defer { start += b.channels }
            guard channels.contains(start) else { continue }
            precondition(start + b.channels <= channels.upperBound, "an Inception split runs whole branches")
            for (k, i) in b.layers.enumerated() {
                var l = layers[i]
                l.inputs = k == 0 ? [-1] : [part.count - 1]
                part.append(l)
            }
            let end = (layer: part.count - 1, count: layers[b.layers[b.layers.count - 1]].outputCount)
            if let j = joined {
                part.append(
                    Layer(
                        name: layers[s.layers.upperBound - 1].name, kind: .concat(first: j.count, second: end.count),
                        inputs: [j.layer, end.layer]))
                joined = (part.count - 1, j.count + end.count)
            } else {
                joined = end
            }
        }
        return BoardPart(
            board: board, layers: part, input: .all,
            output: .elements((channels.lowerBound * s.outputUnitSize)..<(channels.upperBound * s.outputUnitSize)))
    }
}
