/// `512MiB`, `1GiB`, `1.5GiB`, `300MB`, `4096KiB`, `64B` or a plain byte count;
/// nil when it is not a positive size. No Foundation, so boards parse their own flags.
public func parseByteSize(_ text: String) -> Int? {
    let units: [(String, Int)] = [
        ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10), ("GB", 1_000_000_000), ("MB", 1_000_000), ("KB", 1000),
        ("B", 1),
    ]
    var number = Substring(text)
    var scale = 1
    for (suffix, s) in units where text.hasSuffix(suffix) {
        number = text.dropLast(suffix.count)
        scale = s
        break
    }
    number = number.drop(while: { $0 == " " })
    while number.last == " " { number = number.dropLast() }
    let parts = number.split(separator: ".", omittingEmptySubsequences: false)
    guard !number.isEmpty, parts.count <= 2, let whole = Int(parts[0].isEmpty ? "0" : String(parts[0])), whole >= 0
    else { return nil }
    var value = whole * scale
    if parts.count == 2 {
        let digits = parts[1]
        guard !digits.isEmpty, digits.count <= 9, let frac = Int(String(digits)) else { return nil }
        var divisor = 1
        for _ in 0..<digits.count { divisor *= 10 }
        value += frac * scale / divisor
    }
    return value > 0 ? value : nil
}
