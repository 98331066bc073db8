import IOPCore
import IOPModel

/// A partitionable operator: one conv or linear layer with the channel-local
/// layers after it (activation, pooling), or a layer only the leader runs
/// (global pooling, softmax, a pool with no conv before it). In a graph, a
/// region between two cuts that only its entry tensor crosses (a residual
/// block, a fire module) is one stage the leader runs whole.
public struct Stage: Sendable {
    public enum Main: Sendable {
        case conv(ConvGeometry)
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

    public var outputRows: Int {
        if let p = pools.last { return p.outHeight }
        if case .conv(let g) = main { return g.outHeight }
        return 0
    }

    public var allowedDimensions: [Dimension] {
        switch main {
        case .leaderOnly: return [.none]
        case .linear: return [.none, .outputChannels, .inputChannels]
        case .conv(let g): return g.groups == 1 ? [.none, .outputChannels, .inputChannels, .rows] : [.none, .rows]
        }
    }

    func fullExtent(_ d: Dimension) -> Int {
        switch d {
        case .none, .outputChannels: return outputUnits
        case .inputChannels: return inputUnits
        case .rows: return outputRows
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
        guard case .conv(let g) = main else { return (lo..<hi, lo..<hi) }
        let inLo = max(0, lo * g.strideH - g.padTop)
        let inHi = min(g.inHeight, (hi - 1) * g.strideH - g.padTop + (g.kernelH - 1) * g.dilationH + 1)
        return (lo..<hi, inLo..<inHi)
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
            shape = outShapes[i - 1]
            let outCount = layers[i - 1].outputCount
            let outUnits: Int, outUnitSize: Int
            switch main {
            case .conv(let g): outUnits = g.outChannels; outUnitSize = outCount / g.outChannels
            case .linear(let g): outUnits = g.outFeatures; outUnitSize = 1
            case .leaderOnly: outUnits = 1; outUnitSize = outCount
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
                    postFlops: post, weightCount: weights, biasCount: bias))
        }
        return stages
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
}
