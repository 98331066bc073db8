import IOPCore
import IOPModel
import IOPProgram

/// A residual block whose branch is no single IOP chain but ends in one (ResNet-50's bottleneck: 1x1, then
/// the pair 3x3 -> 1x1): `Segment.bottleneck`. It runs as two segment programs. The head: the leader runs
/// the branch's stages before the chain on the block input, and the projection shortcut when there is one,
/// and keeps the shortcut in front of the head's output (`[shortcut; head]`, one concat). The tail: the
/// boards run the chain on the head's output (the elements after the shortcut), and the leader's reduction
/// adds the shortcut, which sits at the start of its running tensor as the identity residual's block input
/// does (`SegmentProgram.addsShortcut`). The kept shortcut never crosses a link; it lives in the leader's
/// running tensor through both programs, so the arena layout, and with it the plan's memory figure, counts it.
extension Planner {
    /// The branch stages the leader runs before the chain of a residual block (stage i), the fewest that
    /// leave a chain to the branch's end; nil when no such chain exists.
    public func bottleneckHead(_ i: Int) -> Int? { Planner.bottleneckHead(stages[i]) }

    static func bottleneckHead(_ block: Stage) -> Int? {
        guard let branch = block.branch else { return nil }
        return (1..<branch.count).first { Planner.chainEnds(branch, from: $0).contains(branch.count - 1) }
    }
}

extension Slicer {
    /// A bottleneck's two programs: the leader's head, then the chain split by `extents` (its first stage's
    /// output channels per board) whose reduction adds the kept shortcut.
    static func bottleneck(_ block: Stage, extents: [Int], leader: Int, layers: [Layer]) -> [SegmentProgram] {
        let branch = block.branch!, k = Planner.bottleneckHead(block)!
        var head = branch[..<k].flatMap { s in
            Layer.region(layers, s.layers).map { l -> Layer in
                var l = l
                l.inputs = []
                return l
            }
        }
        let headEnd = head.count - 1, headCount = branch[k].inputCount
        var shortcut = -1, shortcutCount = block.inputCount
        if let p = block.projection {
            var projection = layers[p]
            projection.inputs = [-1]
            head.append(projection)
            shortcut = head.count - 1; shortcutCount = projection.outputCount
        }
        head.append(
            Layer(
                name: block.name + ".keep", kind: .concat(first: shortcutCount, second: headCount),
                inputs: [shortcut, headEnd]))
        let first = SegmentProgram(
            parts: [BoardPart(board: leader, layers: head, input: .all, output: .all)], reduceLayers: [],
            inputCount: block.inputCount, outputCount: shortcutCount + headCount, partialCount: 0)
        var tail = chain(Array(branch[k...]), extents: extents, layers: layers)
        for j in tail.parts.indices { tail.parts[j].input = .elements(shortcutCount..<(shortcutCount + headCount)) }
        tail.inputCount = shortcutCount + headCount
        var add = layers[block.layers.upperBound - 1]
        add.inputs = []
        tail.reduceLayers.append(add)
        tail.addsShortcut = true
        return [first, tail]
    }
}
