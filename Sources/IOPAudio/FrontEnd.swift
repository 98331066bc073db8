/// The valve model's audio front end, streaming: int16 samples in, log-mel patches out, equal to
/// examples/valve-leak/frontend.py's `patches` (see IOPAudioTests for the measured difference).
///
/// It lives entirely in memory the caller owns (the node puts it in its arena, beside the model), sized by
/// `floatCount`: tables, sample buffer, FFT scratch and the last `patchFrames` log-mel frames. After `init`,
/// nothing allocates, so a board can stream audio for months with a fixed footprint. Samples may arrive in any
/// chunking; a frame is computed as soon as its last sample arrives and a patch as soon as its last frame is done,
/// so a patch is ready `patchEndSeconds(k)` into the audio.
public struct FrontEnd {
    public let parameters: AudioParameters
    let fftSize: Int
    let weightCount: Int
    let window: UnsafeMutablePointer<Float>
    let stageTwiddles: UnsafeMutablePointer<Float>
    let splitTwiddles: UnsafeMutablePointer<Float>
    /// Per band: its first FFT bin and its bin count, as exact integer floats (so all state is one float array).
    let melBands: UnsafeMutablePointer<Float>
    let melWeights: UnsafeMutablePointer<Float>
    let samples: UnsafeMutablePointer<Float>
    let re: UnsafeMutablePointer<Float>
    let im: UnsafeMutablePointer<Float>
    let zr: UnsafeMutablePointer<Float>
    let zi: UnsafeMutablePointer<Float>
    let spectrum: UnsafeMutablePointer<Float>
    /// Ring of the last `patchFrames` log-mel frames; frame i sits in row i % patchFrames.
    let frames: UnsafeMutablePointer<Float>

    /// Samples in `samples` (the current frame's start is at index 0).
    var filled = 0
    /// Samples still to drop before the next frame starts (only when frameHop > frameLength).
    var skip = 0
    /// Samples consumed since init or `reset`.
    public private(set) var sampleCount = 0
    /// Frames computed since init or `reset`.
    public private(set) var frameCount = 0
    /// Patches written since init or `reset`; the next patch's index.
    public private(set) var patchCount = 0

    /// What one `consume` call did: how many samples it took, and the index of the patch it wrote, if any.
    public struct Progress: Equatable, Sendable {
        public var consumed: Int
        public var patch: Int?
        public init(consumed: Int, patch: Int?) { self.consumed = consumed; self.patch = patch }
    }

    /// Floats of a patch: [patchFrames][melBins], frame-major, the model's input.
    public var patchFloatCount: Int { parameters.patchFrames * parameters.melBins }

    /// Offsets of each region in the caller's memory. Every region starts on a multiple of 8 floats (32 bytes),
    /// so when the memory is aligned the vector loads never straddle a cache line needlessly.
    struct Layout {
        var window = 0, stageTwiddles = 0, splitTwiddles = 0, melBands = 0, melWeights = 0, samples = 0
        var re = 0, im = 0, zr = 0, zi = 0, spectrum = 0, frames = 0, total = 0

        init(_ p: AudioParameters, weightCount: Int) {
            let n = p.fftSize, m = n / 2
            var at = 0
            func take(_ count: Int) -> Int {
                let start = at
                at += (count + 7) / 8 * 8
                return start
            }
            window = take(p.frameLength)
            stageTwiddles = take(RealFFT.stageTwiddleCount(n))
            splitTwiddles = take(RealFFT.splitTwiddleCount(n))
            melBands = take(2 * p.melBins)
            melWeights = take(weightCount)
            samples = take(p.frameLength)
            re = take(m)
            im = take(m)
            zr = take(m + 1)
            zi = take(m + 1)
            spectrum = take(m + 1)
            frames = take(p.patchFrames * p.melBins)
            total = at
        }
    }

    /// Every float the front end needs for these parameters (0 if they do not validate): allocate this many in the
    /// arena and pass them to `init`. For the defaults, 9600 floats (37.5 KiB); two thirds of it is the 96 x 64
    /// frame ring.
    public static func floatCount(_ p: AudioParameters) -> Int {
        do { try p.validate() } catch { return 0 }
        return Layout(p, weightCount: MelScale(p).weightCount()).total
    }

    /// Builds every table in `memory`, which must hold `floatCount(parameters)` floats and outlive the front end
    /// (it is not retained, copied or freed). The memory need not be aligned.
    /// Carries on where `other` was (its samples, frames and counts), in `memory`, which must already hold a copy of
    /// `other`'s whole region: the leader moved to a new arena.
    public init(continuing other: FrontEnd, memory: UnsafeMutablePointer<Float>) throws(AudioError) {
        let saved = UnsafeMutablePointer<Float>.allocate(capacity: FrontEnd.floatCount(other.parameters))
        defer { saved.deallocate() }
        saved.update(from: memory, count: FrontEnd.floatCount(other.parameters))
        try self.init(parameters: other.parameters, memory: memory)
        memory.update(from: saved, count: FrontEnd.floatCount(other.parameters))
        filled = other.filled; skip = other.skip
        sampleCount = other.sampleCount; frameCount = other.frameCount; patchCount = other.patchCount
    }

    public init(parameters: AudioParameters, memory: UnsafeMutablePointer<Float>) throws(AudioError) {
        try parameters.validate()
        self.parameters = parameters
        let mel = MelScale(parameters)
        let weightCount = mel.weightCount()
        let layout = Layout(parameters, weightCount: weightCount)
        memory.initialize(repeating: 0, count: layout.total)
        self.fftSize = parameters.fftSize
        self.weightCount = weightCount
        window = memory + layout.window
        stageTwiddles = memory + layout.stageTwiddles
        splitTwiddles = memory + layout.splitTwiddles
        melBands = memory + layout.melBands
        melWeights = memory + layout.melWeights
        samples = memory + layout.samples
        re = memory + layout.re
        im = memory + layout.im
        zr = memory + layout.zr
        zi = memory + layout.zi
        spectrum = memory + layout.spectrum
        frames = memory + layout.frames

        // Periodic Hann, with the int16 scale 1/32768 folded in: a power of two, so it changes no rounding.
        let length = parameters.frameLength
        for i in 0..<length {
            let hann = 0.5 - 0.5 * AudioMath.cos(2 * Double.pi * Double(i) / Double(length))
            window[i] = Float(hann / 32768)
        }
        RealFFT.makeTables(n: parameters.fftSize, stage: stageTwiddles, split: splitTwiddles)
        var w = 0
        for j in 0..<parameters.melBins {
            let (first, count) = mel.band(j)
            melBands[2 * j] = Float(first); melBands[2 * j + 1] = Float(count)
            for b in first..<(first + count) {
                melWeights[w] = Float(mel.weight(binMel: mel.binMel(b), bin: b, band: j))
                w += 1
            }
        }
        reset()
    }

    /// Starts a new stream (a new file): forgets buffered samples and frames, keeps the tables.
    public mutating func reset() {
        filled = 0; skip = 0; sampleCount = 0; frameCount = 0; patchCount = 0
    }

    /// Takes samples until a patch is complete or the input runs out. When a patch completes it is written to
    /// `output` (`patchFloatCount` floats) and the call returns at once, before overwriting it with the next: the
    /// caller runs the model on it, then calls again with the samples not yet consumed. Allocates nothing.
    public mutating func consume(_ input: UnsafeBufferPointer<Int16>, patch output: UnsafeMutablePointer<Float>)
        -> Progress
    {
        guard let base = input.baseAddress else { return Progress(consumed: 0, patch: nil) }
        return consume(count: input.count, patch: output) { base[$0] }
    }

    /// `consume` for little-endian 16-bit samples straight from a file's bytes (any alignment, any host byte
    /// order), e.g. a mapped WAV file's data chunk; a trailing odd byte is ignored. `consumed` counts samples.
    public mutating func consume(littleEndian bytes: UnsafeRawBufferPointer, patch output: UnsafeMutablePointer<Float>)
        -> Progress
    {
        guard let base = bytes.baseAddress else { return Progress(consumed: 0, patch: nil) }
        return consume(count: bytes.count / 2, patch: output) {
            Int16(littleEndian: base.loadUnaligned(fromByteOffset: 2 * $0, as: Int16.self))
        }
    }

    /// Feeds every sample, calling `onPatch(k)` each time patch k is in `output`; the model runs inside the
    /// callback. Allocates nothing (the callback is not escaping).
    public mutating func push<E: Error>(
        _ input: UnsafeBufferPointer<Int16>, into output: UnsafeMutablePointer<Float>,
        onPatch: (_ index: Int) throws(E) -> Void
    ) throws(E) {
        var done = 0
        while done < input.count {
            let step = consume(UnsafeBufferPointer(rebasing: input[done...]), patch: output)
            done += step.consumed
            if let k = step.patch { try onPatch(k) }
        }
    }

    @inline(__always) mutating func consume(
        count: Int, patch output: UnsafeMutablePointer<Float>, sample: (Int) -> Int16
    ) -> Progress {
        let length = parameters.frameLength, hop = parameters.frameHop
        var i = 0
        while i < count {
            if skip > 0 {
                let n = min(skip, count - i)
                skip -= n; i += n; sampleCount += n
                continue
            }
            let n = min(length - filled, count - i)
            let dst = samples + filled
            for t in 0..<n { dst[t] = Float(sample(i + t)) }
            filled += n; i += n; sampleCount += n
            if filled < length { break }
            computeFrame()
            if hop < length {
                samples.update(from: samples + hop, count: length - hop)
                filled = length - hop
            } else {
                filled = 0; skip = hop - length
            }
            if let k = finishedPatch() {
                writePatch(to: output)
                return Progress(consumed: i, patch: k)
            }
        }
        return Progress(consumed: i, patch: nil)
    }

    /// Window, real FFT, magnitude, mel, log: the frame in `samples` becomes row frameCount % patchFrames.
    mutating func computeFrame() {
        let length = parameters.frameLength, m = fftSize / 2
        // Window and split even/odd samples into the complex FFT's real/imaginary parts, zero-padding to n.
        var n = 0
        while 2 * n + 8 <= length {
            let v = load(SIMD8<Float>.self, samples + 2 * n) * load(SIMD8<Float>.self, window + 2 * n)
            store(v.evenHalf, re + n); store(v.oddHalf, im + n)
            n += 4
        }
        while n < m {
            re[n] = 2 * n < length ? samples[2 * n] * window[2 * n] : 0
            im[n] = 2 * n + 1 < length ? samples[2 * n + 1] * window[2 * n + 1] : 0
            n += 1
        }
        RealFFT.complexForward(m: m, re: re, im: im, stage: stageTwiddles, zr: zr, zi: zi)
        RealFFT.magnitudes(m: m, zr: zr, zi: zi, split: splitTwiddles, into: spectrum)

        let bands = parameters.melBins
        let row = frames + (frameCount % parameters.patchFrames) * bands
        var w = melWeights
        for j in 0..<bands {
            let first = Int(melBands[2 * j]), count = Int(melBands[2 * j + 1])
            row[j] = dot(spectrum + first, w, count)
            w += count
        }
        let offset = Float(parameters.logOffset)
        var j = 0
        while j + 8 <= bands {
            store(AudioMath.log(load(SIMD8<Float>.self, row + j) + offset), row + j)
            j += 8
        }
        while j < bands { row[j] = AudioMath.log(row[j] + offset); j += 1 }
        frameCount += 1
    }

    /// The index of the patch the frame just computed completes, if it completes one.
    mutating func finishedPatch() -> Int? {
        let last = frameCount - 1, size = parameters.patchFrames, hop = parameters.patchHop
        guard last >= size - 1, (last - (size - 1)) % hop == 0 else { return nil }
        let k = patchCount
        patchCount += 1
        return k
    }

    /// The last patchFrames rows of the ring, oldest first.
    func writePatch(to output: UnsafeMutablePointer<Float>) {
        let size = parameters.patchFrames, bands = parameters.melBins
        let oldest = frameCount % size
        let tail = (size - oldest) * bands
        output.update(from: frames + oldest * bands, count: tail)
        (output + tail).update(from: frames, count: oldest * bands)
    }
}

/// Sum of a[i] * b[i]: one mel band's weighted bins.
@inline(__always) func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ count: Int) -> Float {
    var acc = SIMD8<Float>()
    var i = 0
    while i + 8 <= count {
        acc += load(SIMD8<Float>.self, a + i) * load(SIMD8<Float>.self, b + i)
        i += 8
    }
    var s = acc.sum()
    while i < count { s += a[i] * b[i]; i += 1 }
    return s
}

@inline(__always) func dot(_ a: UnsafeMutablePointer<Float>, _ b: UnsafeMutablePointer<Float>, _ count: Int) -> Float {
    dot(UnsafePointer(a), UnsafePointer(b), count)
}
