import IOPCore
import IOPModel

/// Runs a plan in one process: every board's part on its own engine, with the
/// leader's scatter, gather and reduction done by copies. It checks that the
/// slicing executes the plan exactly (outputs equal single-board inference),
/// and is what the cluster runtime does with messages instead of copies.
public final class LocalExecutor {
    struct Part { var spec: BoardPart; var engine: Engine }
    struct Program { var spec: SegmentProgram; var parts: [Part]; var reduce: Engine? }
    let programs: [Program]
    public let inputCount: Int
    public let outputCount: Int

    public init(plan: Plan, network: Network, threads: Int = 1) throws {
        let stages = Stage.split(network)
        programs = try Slicer.programs(plan, network: network, stages: stages).map { p in
            Program(spec: p, parts: try p.parts.map { Part(spec: $0, engine: try Engine(layers: $0.layers, threads: threads)) },
                    reduce: p.reduceLayers.isEmpty ? nil : try Engine(layers: p.reduceLayers, threads: threads))
        }
        inputCount = network.inputCount
        outputCount = network.outputCount
    }

    public func run(_ input: [Float]) -> [Float] {
        var x = input
        for p in programs {
            var out = [Float](repeating: 0, count: p.spec.partialCount > 0 ? p.spec.partialCount : p.spec.outputCount)
            for part in p.parts {
                let local = LocalExecutor.select(part.spec.input, from: x)
                var y = [Float](repeating: 0, count: part.engine.outputCount)
                local.withUnsafeBufferPointer { i in y.withUnsafeMutableBufferPointer { part.engine.run(input: i.baseAddress!, output: $0.baseAddress!) } }
                LocalExecutor.place(y, part.spec.output, into: &out)
            }
            if let reduce = p.reduce {
                var y = [Float](repeating: 0, count: reduce.outputCount)
                out.withUnsafeBufferPointer { i in y.withUnsafeMutableBufferPointer { reduce.run(input: i.baseAddress!, output: $0.baseAddress!) } }
                out = y
            }
            x = out
        }
        return x
    }

    /// The part of the leader's tensor a board receives.
    static func select(_ input: BoardPart.Input, from x: [Float]) -> [Float] {
        switch input {
        case .all: return x
        case .elements(let r): return Array(x[r])
        case .rows(let rows, let channels, let height, let width):
            var out: [Float] = []
            out.reserveCapacity(channels * rows.count * width)
            for c in 0..<channels { out += x[((c * height + rows.lowerBound) * width)..<((c * height + rows.upperBound) * width)] }
            return out
        }
    }

    /// Where a board's result goes in the leader's tensor (partial sums add up).
    static func place(_ y: [Float], _ output: BoardPart.Output, into out: inout [Float]) {
        switch output {
        case .all: out = y
        case .elements(let r): out.replaceSubrange(r, with: y)
        case .partialSum: for i in out.indices { out[i] += y[i] }
        case .rows(let rows, let channels, let height, let width):
            let band = rows.count * width
            for c in 0..<channels {
                out.replaceSubrange(((c * height + rows.lowerBound) * width)..<((c * height + rows.upperBound) * width), with: y[(c * band)..<((c + 1) * band)])
            }
        }
    }
}
