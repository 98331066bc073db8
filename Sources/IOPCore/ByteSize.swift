/// `512MiB`, `1GiB`, `1.5GiB`, `300MB`, `4096KiB`, `64B` or a plain byte count;
/// nil when it is not a positive size or overflows 64 bits. Worked in Int64, so a 32-bit board
/// parses `1.5GiB` too; a size beyond its Int (more than its address space) becomes Int.max: a
/// budget that large is no limit there. No Foundation, so boards parse their own flags.
public func parseByteSize(_ text: String) -> Int? {
    let units: [(String, Int64)] = [
        ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10), ("GB", 1_000_000_000), ("MB", 1_000_000), ("KB", 1000),
        ("B", 1),
    ]
    var number = Substring(text)
    var scale: Int64 = 1
    for (suffix, s) in units where text.hasSuffix(suffix) {
        number = text.dropLast(suffix.count)
        scale = s
        break
    }
    number = number.drop(while: { $0 == " " })
    while number.last == " " { number = number.dropLast() }
    let parts = number.split(separator: ".", omittingEmptySubsequences: false)
    guard !number.isEmpty, parts.count <= 2, let whole = Int64(parts[0].isEmpty ? "0" : String(parts[0])), whole >= 0
    else { return nil }
    var (value, overflow) = whole.multipliedReportingOverflow(by: scale)
    if overflow { return nil }
    if parts.count == 2 {
        let digits = parts[1]
        guard !digits.isEmpty, digits.count <= 9, let frac = Int64(String(digits)) else { return nil }
        var divisor: Int64 = 1
        for _ in 0..<digits.count { divisor *= 10 }
        // frac < 10^9 and scale <= 2^30: the product fits in 64 bits.
        (value, overflow) = value.addingReportingOverflow(frac * scale / divisor)
        if overflow { return nil }
    }
    return value > 0 ? Int(clamping: value) : nil
}
