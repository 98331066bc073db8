import IOPCore

/// One inference through an engine, with fresh output storage.
public func run(_ engine: Engine, _ input: [Float]) -> [Float] {
    var out = [Float](repeating: .nan, count: engine.outputCount)
    input.withUnsafeBufferPointer { i in out.withUnsafeMutableBufferPointer { engine.run(input: i.baseAddress!, output: $0.baseAddress!) } }
    return out
}
