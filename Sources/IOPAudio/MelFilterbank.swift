/// The triangular HTK mel weights of frontend.py's `mel_matrix`, computed in Double the way NumPy does (same
/// linspace formula, same min/max), so the float32 weights equal NumPy's rounded ones. Each band is nonzero on one
/// run of FFT bins only (about 2 to 20 of 257), so the board keeps just that run: a dense [257][64] matrix would be
/// 16k multiply-adds per frame for about 500 nonzero products.
struct MelScale {
    let bins: Int
    let melBins: Int
    let binStep: Double
    let nyquist: Double
    let lowMel: Double
    let highMel: Double
    let edgeStep: Double

    init(_ p: AudioParameters) {
        bins = p.fftSize / 2 + 1
        melBins = p.melBins
        nyquist = Double(p.sampleRate) / 2
        binStep = nyquist / Double(bins - 1)
        lowMel = MelScale.mel(p.fMin)
        highMel = MelScale.mel(p.fMax)
        edgeStep = (highMel - lowMel) / Double(p.melBins + 1)
    }

    /// HTK mel scale, frontend.py's `hz_to_mel`.
    static func mel(_ hz: Double) -> Double { 1127.0 * AudioMath.log1p(hz / 700.0) }

    /// np.linspace(0, sampleRate / 2, bins)[b] on the mel scale: i * step + start, the last one exact.
    func binMel(_ b: Int) -> Double { MelScale.mel(b == bins - 1 ? nyquist : Double(b) * binStep) }

    /// np.linspace(mel(fMin), mel(fMax), melBins + 2)[i].
    func edge(_ i: Int) -> Double { i == melBins + 1 ? highMel : Double(i) * edgeStep + lowMel }

    /// Weight of FFT bin b in band j, given the bin's mel value; the DC bin is zero as in frontend.py.
    func weight(binMel m: Double, bin b: Int, band j: Int) -> Double {
        if b == 0 { return 0 }
        let lo = edge(j), center = edge(j + 1), hi = edge(j + 2)
        let rising = (m - lo) / (center - lo), falling = (hi - m) / (hi - center)
        return max(0.0, min(rising, falling))
    }

    /// The run of bins with nonzero weight in band j (count 0 when the band falls between bins). Triangles are
    /// convex and bin mels increase, so the nonzero bins are contiguous.
    func band(_ j: Int) -> (first: Int, count: Int) {
        let lo = edge(j), hi = edge(j + 2)
        var first = -1, last = -2
        for b in 1..<bins {
            let m = binMel(b)
            if m <= lo { continue }
            if m >= hi { break }
            if weight(binMel: m, bin: b, band: j) > 0 {
                if first < 0 { first = b }
                last = b
            }
        }
        return first < 0 ? (0, 0) : (first, last - first + 1)
    }

    /// Nonzero weights over every band: the size of the sparse weight table.
    func weightCount() -> Int {
        var total = 0
        for j in 0..<melBins { total += band(j).count }
        return total
    }
}
