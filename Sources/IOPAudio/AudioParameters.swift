/// The front end's parameters. Field for field the `Parameters` of examples/valve-leak/frontend.py, the NumPy
/// reference the model was trained with: a model only recognises features made exactly as in training, so these
/// travel with the model rather than being tuned per board.
public struct AudioParameters: Equatable, Sendable {
    public var sampleRate: Int
    /// Samples per frame (25 ms).
    public var frameLength: Int
    /// Samples between frame starts (10 ms).
    public var frameHop: Int
    /// Real FFT size; a frame is zero-padded to it.
    public var fftSize: Int
    public var melBins: Int
    /// Lower edge of the first mel band, Hz.
    public var fMin: Double
    /// Upper edge of the last mel band, Hz.
    public var fMax: Double
    /// Added before the log so silence gives log(logOffset), not -inf.
    public var logOffset: Double
    /// Frames per patch: the model's input is [patchFrames][melBins].
    public var patchFrames: Int
    /// Frames between patch starts.
    public var patchHop: Int

    public init(
        sampleRate: Int = 16000, frameLength: Int = 400, frameHop: Int = 160, fftSize: Int = 512, melBins: Int = 64,
        fMin: Double = 125, fMax: Double = 7500, logOffset: Double = 0.01, patchFrames: Int = 96, patchHop: Int = 50
    ) {
        self.sampleRate = sampleRate; self.frameLength = frameLength; self.frameHop = frameHop
        self.fftSize = fftSize; self.melBins = melBins; self.fMin = fMin; self.fMax = fMax
        self.logOffset = logOffset; self.patchFrames = patchFrames; self.patchHop = patchHop
    }

    /// Bound on every count, so the front end's memory arithmetic cannot overflow and band indices stay exact
    /// when stored as floats.
    public static let sizeLimit = 1 << 20

    /// Checks what the front end relies on, so a bad parameter file is refused at load rather than producing
    /// features the model silently misreads.
    public func validate() throws(AudioError) {
        func bad(_ m: String) -> AudioError { .invalidParameters(m) }
        let limit = AudioParameters.sizeLimit
        for (name, value) in [
            ("sampleRate", sampleRate), ("frameLength", frameLength), ("frameHop", frameHop), ("fftSize", fftSize),
            ("melBins", melBins), ("patchFrames", patchFrames), ("patchHop", patchHop),
        ] where value <= 0 || value > limit {
            throw bad(name + " is " + String(value) + ", expected 1 to " + String(limit))
        }
        // The FFT is radix-2 and its last two stages are one radix-4 pass over vectors of 4.
        guard fftSize >= 16, fftSize & (fftSize - 1) == 0 else {
            throw bad("fftSize is " + String(fftSize) + ", expected a power of two, at least 16")
        }
        guard fftSize >= frameLength else {
            throw bad(
                "fftSize " + String(fftSize) + " is shorter than frameLength " + String(frameLength)
                    + " (a frame is zero-padded to the FFT size, never cut)")
        }
        let nyquist = Double(sampleRate) / 2
        guard fMin.isFinite, fMax.isFinite, fMin >= 0, fMin < fMax, fMax <= nyquist else {
            throw bad(
                "mel range fMin " + describe(fMin) + " Hz to fMax " + describe(fMax)
                    + " Hz, expected 0 <= fMin < fMax <= sampleRate / 2 = " + describe(nyquist) + " Hz")
        }
        // The vectorised log takes positive normal floats only; mel + logOffset always is one when this holds.
        guard logOffset.isFinite, logOffset > 0, Float(logOffset).isNormal else {
            throw bad("logOffset is " + describe(logOffset) + ", expected a positive normal float")
        }
        guard patchHop <= patchFrames else {
            throw bad(
                "patchHop " + String(patchHop) + " exceeds patchFrames " + String(patchFrames)
                    + " (frames between patches would be dropped)")
        }
    }

    /// Frames in the first `samples` samples (what frontend.py's `log_mel_frames` returns for them).
    public func frameCount(samples: Int) -> Int {
        samples < frameLength ? 0 : 1 + (samples - frameLength) / frameHop
    }

    /// Whole patches in the first `samples` samples.
    public func patchCount(samples: Int) -> Int {
        let frames = frameCount(samples: samples)
        return frames < patchFrames ? 0 : 1 + (frames - patchFrames) / patchHop
    }

    /// End of patch k in seconds of audio: its time stamp (frontend.py's `patch_end_seconds`).
    public func patchEndSeconds(_ k: Int) -> Double {
        Double(frameHop * (patchHop * k + patchFrames - 1) + frameLength) / Double(sampleRate)
    }
}

/// A Double for a message without `description` (Embedded Swift cannot print floating point as text): integers
/// exactly, anything else to three decimals.
func describe(_ x: Double) -> String {
    guard x.isFinite else { return x.isNaN ? "nan" : (x < 0 ? "-inf" : "inf") }
    let a = x < 0 ? -x : x
    guard a < 1e15 else { return x < 0 ? "below -1e15" : "above 1e15" }
    let milli = Int(a * 1000 + 0.5)  // not rounded(): that is a libm call on x86 without SSE4.1
    if milli == 0 && a != 0 { return x < 0 ? "above -0.001" : "below 0.001" }
    var s = (x < 0 && milli != 0 ? "-" : "") + String(milli / 1000)
    var frac = milli % 1000, width = 3
    if frac != 0 {
        while frac % 10 == 0 { frac /= 10; width -= 1 }
        var digits = String(frac)
        var shown = frac < 10 ? 1 : (frac < 100 ? 2 : 3)
        while shown < width { digits = "0" + digits; shown += 1 }
        s += "." + digits
    }
    return s
}
