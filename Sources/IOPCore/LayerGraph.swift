/// The edges of a list of layers (`Layer.inputs`): which layers each one reads and who reads each
/// output. A list is in execution order, so every layer reads only layers before it; -1 is the
/// list's input.
public struct LayerGraph {
    /// For each layer, the layers it reads (-1: the list's input).
    public let producers: [[Int]]
    /// For each layer's output, and at index `count` for the list's input, the last layer reading it
    /// (-1 when none: the last layer's output is the list's output).
    let lastReader: [Int]
    /// For each k in 0...count, the oldest tensor any layer from k on reads.
    let oldestReadFrom: [Int]

    public init(_ layers: [Layer]) {
        producers = layers.indices.map { i in layers[i].inputs.isEmpty ? [i - 1] : layers[i].inputs }
        var last = [Int](repeating: -1, count: layers.count + 1)
        for (i, inputs) in producers.enumerated() {
            for p in inputs { last[p < 0 ? layers.count : p] = i }
        }
        lastReader = last
        var oldest = [Int](repeating: layers.count, count: layers.count + 1)
        for i in layers.indices.reversed() { oldest[i] = min(oldest[i + 1], producers[i].min() ?? i) }
        oldestReadFrom = oldest
    }

    public var count: Int { producers.count }

    /// Whether every layer reads only the one before it: a chain.
    public var isChain: Bool {
        for (i, p) in producers.enumerated() where p.count != 1 || p[0] != i - 1 { return false }
        return true
    }

    /// The last layer that reads tensor `t` (-1: the list's input).
    public func lastReader(of t: Int) -> Int { lastReader[t < 0 ? count : t] }

    /// Layers that read tensor `t`.
    public func readers(of t: Int) -> Int {
        var n = 0
        for inputs in producers { for p in inputs where p == t { n += 1 } }
        return n
    }

    /// Whether the list can be cut before layer `k`: no layer from `k` on reads anything older than
    /// layer `k - 1`'s output, so that output is all that crosses the cut.
    public func canCut(before k: Int) -> Bool { oldestReadFrom[k] >= k - 1 }

    /// Checks the edges: each layer reads earlier layers only, as many as its kind takes, of the sizes
    /// it expects, and a layer that works in place is its input's only reader (it overwrites it).
    public func validate(_ layers: [Layer], inputCount: Int) throws(CoreError) {
        for (i, layer) in layers.enumerated() {
            let inputs = producers[i]
            let wanted = layer.kind.otherInputCount > 0 ? 2 : 1
            if inputs.count != wanted {
                throw .invalidShape(
                    layer.name + " reads " + String(inputs.count) + " tensors, expected " + String(wanted))
            }
            for (k, p) in inputs.enumerated() {
                if p < -1 || p >= i { throw .invalidShape(layer.name + " reads a layer that does not run before it") }
                let given = p < 0 ? inputCount : layers[p].outputCount
                let expected = k == 0 ? layer.inputCount : layer.kind.otherInputCount
                let run = k == 0 ? layer.inputOffset : nil
                if let run {
                    if run < 0 || given < run + expected { throw .invalidShape(layer.name + " reads past its input") }
                } else if given != expected {
                    throw .invalidShape(
                        layer.name + " expects " + String(expected) + " inputs, the layer before gives "
                            + String(given))
                }
            }
            if layer.kind.isInPlace && readers(of: inputs[0]) > 1 {
                throw .invalidShape(layer.name + " works in place on a tensor other layers also read")
            }
        }
    }
}

extension Layer {
    /// Layers `range` of a list as a list of their own: edges renumbered, and a read from before the
    /// range becomes a read of the new list's input (valid for a region entered by one tensor).
    public static func region(_ layers: [Layer], _ range: Range<Int>) -> [Layer] {
        let graph = LayerGraph(layers)
        return range.map { i in
            var l = layers[i]
            if !l.inputs.isEmpty || i == range.lowerBound {
                l.inputs = graph.producers[i].map { $0 < range.lowerBound ? -1 : $0 - range.lowerBound }
                if l.inputs == [i - range.lowerBound - 1] { l.inputs = [] }
            }
            return l
        }
    }
}
