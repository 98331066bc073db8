import IOPCore
import IOPModel

func infer(_ net: Network, _ input: [Float], threads: Int = 1) throws -> [Float] {
    try net.makeEngine(threads: threads).run(input)
}
