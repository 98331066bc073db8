import Foundation

/// Load-time constant folding: the shape arithmetic converters emit around Reshape and friends
/// (Shape, Gather, Unsqueeze, Squeeze, Concat, Cast, ConstantOfShape, and Add, Sub, Mul, Div on
/// constants) is computed once at load, so its results are initializers like any other and no layer
/// is made for it.
extension ONNXImporter.Builder {
    typealias Tensor = ONNXImporter.Tensor

    /// Operators folded when every input is a constant (Shape: when its input's shape is known).
    static let foldable: Set<String> = [
        "Shape", "Gather", "Unsqueeze", "Squeeze", "Concat", "Cast", "ConstantOfShape", "Add", "Sub", "Mul", "Div",
    ]

    /// Folds `node` into an initializer when it computes on constants only; false when it reads a tensor.
    mutating func fold(_ node: Onnx_NodeProto, name: String) throws -> Bool {
        guard Self.foldable.contains(node.opType), let out = node.output.first, !out.isEmpty else { return false }
        let attrs = Self.attributes(node)
        if node.opType == "Shape" {
            guard let input = node.input.first else { return false }
            guard let dims = values[input]?.shape ?? initializers[input]?.dims else { return false }
            let rank = dims.count
            func clamp(_ i: Int) -> Int { min(max(i < 0 ? i + rank : i, 0), rank) }
            let start = clamp(attrs["start"].map { Int($0.i) } ?? 0),
                end = clamp(attrs["end"].map { Int($0.i) } ?? rank)
            let picked = start < end ? Array(dims[start..<end]) : []
            initializers[out] = Tensor(dims: [picked.count], floats: [], ints: picked.map { Int64($0) })
            return true
        }
        let inputs = node.input.filter { !$0.isEmpty }
        guard !inputs.isEmpty, inputs.allSatisfy({ initializers[$0] != nil }) else { return false }
        let t = inputs.map { initializers[$0]! }
        let result: Tensor
        switch node.opType {
        case "Gather":
            let axis = attrs["axis"].map { Int($0.i) } ?? 0
            guard t.count == 2, t[0].dims.count == 1, axis == 0 || axis == -1 else {
                throw ModelError.invalidModel("Gather '\(name)': only 1-D constants are folded")
            }
            let n = t[0].dims[0]
            let picks = t[1].ints.map { Int($0) < 0 ? Int($0) + n : Int($0) }
            guard picks.allSatisfy({ $0 >= 0 && $0 < n }) else {
                throw ModelError.invalidModel("Gather '\(name)': index out of range")
            }
            result = Tensor(
                dims: t[1].dims, floats: t[0].floats.isEmpty ? [] : picks.map { t[0].floats[$0] },
                ints: t[0].ints.isEmpty ? [] : picks.map { t[0].ints[$0] })
        case "Unsqueeze", "Squeeze":
            let given = attrs["axes"]?.ints ?? (t.count > 1 ? t[1].ints : [])
            var dims = t[0].dims
            if node.opType == "Unsqueeze" {
                let rank = dims.count + given.count
                for a in given.map({ Int($0) < 0 ? Int($0) + rank : Int($0) }).sorted() {
                    dims.insert(1, at: min(max(a, 0), dims.count))
                }
            } else {
                let axes = Set(given.map { Int($0) < 0 ? Int($0) + dims.count : Int($0) })
                dims = dims.enumerated().filter { i, d in d != 1 || (!axes.isEmpty && !axes.contains(i)) }.map(\.1)
            }
            result = Tensor(dims: dims, floats: t[0].floats, ints: t[0].ints)
        case "Concat":
            guard t.allSatisfy({ $0.dims.count <= 1 }) else {
                throw ModelError.invalidModel("Concat '\(name)': only 1-D constants are folded")
            }
            let ints = t.allSatisfy { !$0.ints.isEmpty || $0.floats.isEmpty }
            let floats = t.flatMap { $0.floats.isEmpty ? $0.ints.map { Float($0) } : $0.floats }
            result = Tensor(
                dims: [floats.count], floats: ints ? [] : floats, ints: ints ? t.flatMap(\.ints) : [])
        case "Cast":
            // To float (1) or an integer type: shape arithmetic only needs the two.
            let to = attrs["to"].map { Int($0.i) } ?? 1
            if to == 1 {
                result = Tensor(
                    dims: t[0].dims, floats: t[0].floats.isEmpty ? t[0].ints.map { Float($0) } : t[0].floats, ints: [])
            } else {
                result = Tensor(
                    dims: t[0].dims, floats: [], ints: t[0].ints.isEmpty ? t[0].floats.map { Int64($0) } : t[0].ints)
            }
        case "ConstantOfShape":
            let dims = t[0].ints.map { Int($0) }
            let n = dims.reduce(1, *)
            var fill = Tensor(dims: [], floats: [0], ints: [])
            if let v = attrs["value"] { fill = try Self.decode(v.t) }
            result = Tensor(
                dims: dims, floats: fill.floats.isEmpty ? [] : [Float](repeating: fill.floats[0], count: n),
                ints: fill.ints.isEmpty ? [] : [Int64](repeating: fill.ints[0], count: n))
        default:  // Add, Sub, Mul, Div: one of the two may be a single value.
            guard t.count == 2 else { return false }
            let a = t[0], b = t[1]
            let n = max(a.floats.count + a.ints.count, b.floats.count + b.ints.count)
            guard [1, n].contains(a.floats.count + a.ints.count), [1, n].contains(b.floats.count + b.ints.count) else {
                throw ModelError.invalidModel(
                    "\(node.opType) '\(name)': constants of shapes \(a.dims) and \(b.dims) are not folded")
            }
            let dims = a.dims.reduce(1, *) >= b.dims.reduce(1, *) ? a.dims : b.dims
            if !a.ints.isEmpty && !b.ints.isEmpty {
                func at(_ x: [Int64], _ i: Int) -> Int64 { x.count == 1 ? x[0] : x[i] }
                let op: (Int64, Int64) -> Int64
                switch node.opType {
                case "Add": op = { $0 + $1 }
                case "Sub": op = { $0 - $1 }
                case "Mul": op = { $0 * $1 }
                default: op = { $1 == 0 ? 0 : $0 / $1 }
                }
                result = Tensor(dims: dims, floats: [], ints: (0..<n).map { op(at(a.ints, $0), at(b.ints, $0)) })
            } else if !a.floats.isEmpty && !b.floats.isEmpty {
                func at(_ x: [Float], _ i: Int) -> Float { x.count == 1 ? x[0] : x[i] }
                let op: (Float, Float) -> Float
                switch node.opType {
                case "Add": op = { $0 + $1 }
                case "Sub": op = { $0 - $1 }
                case "Mul": op = { $0 * $1 }
                default: op = { $0 / $1 }
                }
                result = Tensor(dims: dims, floats: (0..<n).map { op(at(a.floats, $0), at(b.floats, $0)) }, ints: [])
            } else {
                throw ModelError.invalidModel("\(node.opType) '\(name)': constants of different types")
            }
        }
        initializers[out] = result
        return true
    }
}
