/// max |a - b| divided by the reference's largest magnitude (at least 1): the
/// tolerance is relative to the output's scale, since accumulation order differs
/// between implementations. A length or NaN mismatch is infinitely wrong.
public func scaledError(_ a: [Float], _ b: [Float]) -> Float {
    guard a.count == b.count else { return .infinity }
    var worst: Float = 0, scale: Float = 1
    for i in 0..<a.count {
        if a[i].isNaN != b[i].isNaN { return .infinity }
        worst = max(worst, abs(a[i] - b[i])); scale = max(scale, abs(b[i]))
    }
    return worst / scale
}
