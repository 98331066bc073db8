import IOPCore
import IOPModel
import IOPProgram

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
            Program(
                spec: p,
                parts: try p.parts.map { Part(spec: $0, engine: try Engine(layers: $0.layers, threads: threads)) },
                reduce: p.reduceLayers.isEmpty
                    ? nil
                    : try Engine(
                        layers: p.addsShortcut ? Array(p.reduceLayers.dropLast()) : p.reduceLayers, threads: threads))
        }
        inputCount = network.inputCount
        outputCount = network.outputCount
    }

    public func run(_ input: [Float]) -> [Float] {
        var x = input
        for p in programs {
            var out = [Float](repeating: 0, count: p.spec.assembledCount)
            for part in p.parts {
                var local = [Float](repeating: 0, count: part.engine.inputCount)
                let n = x.withUnsafeBufferPointer { xp in
                    local.withUnsafeMutableBufferPointer {
                        part.spec.input.select(from: xp.baseAddress!, count: xp.count, into: $0.baseAddress!)
                    }
                }
                precondition(n == part.engine.inputCount, "part input size")
                let y = part.engine.run(local)
                y.withUnsafeBufferPointer { yp in
                    out.withUnsafeMutableBufferPointer {
                        part.spec.output.place(yp.baseAddress!, count: yp.count, into: $0.baseAddress!)
                    }
                }
            }
            if let reduce = p.reduce { out = reduce.run(out) }
            if p.spec.addsShortcut, case .add(_, let act) = p.spec.reduceLayers.last?.kind {
                out = zip(out, x).map { min(max($0 + $1, act.low), act.high) }
            }
            x = out
        }
        return x
    }
}
