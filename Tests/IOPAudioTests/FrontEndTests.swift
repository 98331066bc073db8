import IOPAudio
import Testing

/// The Swift front end against examples/valve-leak/frontend.py.
///
/// Tolerance: max |Swift - NumPy| <= 1e-3 on log-mel values. NumPy computes in float64; the board in float32, where
/// the FFT of a frame is exact to about 1e-7 of the frame's largest bin. log(mel + 0.01) turns an absolute mel
/// error e into at most e / 0.01, so the quietest band of the loudest frame can move by ~1e-4; 1e-3 leaves a
/// tenfold margin and is 1e-4 of the features' range (log 0.01 = -4.6 up to about 5), far finer than anything the
/// model (trained in float32) resolves. Measured: 1.6e-4, in a near-silent band (log-mel -4.56, next to log 0.01)
/// of a frame just after the fixture's stretch of digital silence, as the argument predicts; the direct-DFT
/// comparisons below, on audio with no quiet bands, stay within 3e-6.
@Suite struct FrontEndTests {
    static let tolerance: Float = 1e-3

    @Test(arguments: [[1], [7], [160], [4001], [1, 7, 160, 4001, 3, 399, 401], [48000]])
    func patchesEqualNumPy(chunks: [Int]) throws {
        let fixture = AudioFixture.shared
        let h = try FrontEndHarness(AudioParameters())
        let patches = h.run(fixture.samples, chunks: chunks)
        #expect(patches.map(\.index) == Array(0..<fixture.patchCount))
        let size = h.frontEnd.patchFloatCount
        var worst: Float = 0, at = (patch: 0, frame: 0, band: 0)
        for (k, patch) in patches {
            for i in 0..<size where abs(patch[i] - fixture.patches[k * size + i]) > worst {
                worst = abs(patch[i] - fixture.patches[k * size + i]); at = (k, i / 64, i % 64)
            }
        }
        print(
            "IOPAudio: max |Swift - NumPy| = \(worst) at patch \(at.patch) frame \(at.frame) band \(at.band)"
                + " (NumPy \(fixture.patches[(at.patch * 96 + at.frame) * 64 + at.band])), chunks \(chunks)")
        #expect(worst <= Self.tolerance)
        #expect(h.guardsIntact)
        #expect(h.frontEnd.sampleCount == fixture.samples.count)
        #expect(h.frontEnd.frameCount == AudioParameters().frameCount(samples: fixture.samples.count))
    }

    /// The byte path (what a mapped WAV file feeds), from an odd address so nothing relies on alignment.
    @Test func littleEndianBytesEqualSamples() throws {
        let fixture = AudioFixture.shared
        var bytes = [UInt8](repeating: 0, count: 1)
        for s in fixture.samples { bytes += [UInt8(truncatingIfNeeded: s), UInt8(truncatingIfNeeded: s >> 8)] }
        let h = try FrontEndHarness(AudioParameters())
        var byBytes: [[Float]] = []
        bytes.withUnsafeBytes { raw in
            var rest = UnsafeRawBufferPointer(rebasing: raw[1...])
            while !rest.isEmpty {
                let step = h.frontEnd.consume(
                    littleEndian: UnsafeRawBufferPointer(rebasing: rest.prefix(1001)), patch: h.output)
                rest = UnsafeRawBufferPointer(rebasing: rest[(2 * step.consumed)...])
                if step.patch != nil {
                    byBytes.append(Array(UnsafeBufferPointer(start: h.output, count: h.frontEnd.patchFloatCount)))
                }
            }
        }
        let bySamples = try FrontEndHarness(AudioParameters()).run(fixture.samples, chunks: [1000])
        #expect(byBytes == bySamples.map(\.values))
    }

    /// `consume` stops at each patch so the caller can run the model before the next patch overwrites the input.
    @Test func consumeStopsAtEachPatch() throws {
        let fixture = AudioFixture.shared
        let h = try FrontEndHarness(AudioParameters())
        var steps: [FrontEnd.Progress] = []
        fixture.samples.withUnsafeBufferPointer { all in
            var at = 0
            while at < all.count {
                let step = h.frontEnd.consume(UnsafeBufferPointer(rebasing: all[at...]), patch: h.output)
                steps.append(step); at += step.consumed
            }
        }
        let p = AudioParameters()
        // Patch k is ready at its last sample: patchEndSeconds(k) * sampleRate.
        let ends = (0..<fixture.patchCount).map { Int(p.patchEndSeconds($0) * Double(p.sampleRate)) }
        var consumed = 0
        for (i, step) in steps.enumerated() {
            consumed += step.consumed
            if i < ends.count {
                #expect(step.patch == i); #expect(consumed == ends[i])
            } else {
                #expect(step.patch == nil); #expect(consumed == fixture.samples.count)
            }
        }
        #expect(steps.count == ends.count + 1)
    }

    @Test func resetStartsANewStream() throws {
        let fixture = AudioFixture.shared
        let h = try FrontEndHarness(AudioParameters())
        let first = h.run(Array(fixture.samples[..<30000]), chunks: [777])
        h.frontEnd.reset()
        #expect(h.frontEnd.sampleCount == 0 && h.frontEnd.patchCount == 0)
        let again = h.run(fixture.samples, chunks: [333])
        let fresh = try FrontEndHarness(AudioParameters()).run(fixture.samples, chunks: [333])
        #expect(first.count == 2)
        #expect(again.map(\.index) == fresh.map(\.index))
        #expect(again.map(\.values) == fresh.map(\.values))
    }

    /// Other shapes against a float64 direct DFT: the smallest FFT (one vector stage), a large one, frames with
    /// gaps between them (hop > length), a frame shorter than the FFT by an odd count, patches that do not overlap.
    @Test(arguments: [
        AudioParameters(
            sampleRate: 8000, frameLength: 13, frameHop: 5, fftSize: 16, melBins: 3, fMin: 300, fMax: 3900,
            logOffset: 0.001, patchFrames: 4, patchHop: 3),
        AudioParameters(
            sampleRate: 16000, frameLength: 57, frameHop: 70, fftSize: 64, melBins: 10, fMin: 0, fMax: 8000,
            patchFrames: 5, patchHop: 5),
        AudioParameters(
            sampleRate: 22050, frameLength: 1000, frameHop: 441, fftSize: 1024, melBins: 40, fMin: 50, fMax: 11025,
            logOffset: 1e-6, patchFrames: 6, patchHop: 2),
        AudioParameters(frameLength: 512, frameHop: 256, melBins: 17, patchFrames: 3, patchHop: 1),
    ])
    func otherParametersEqualReference(p: AudioParameters) throws {
        let x = testSignal(count: 12000, seed: UInt64(p.fftSize))
        let expected = referencePatches(x, p)
        let h = try FrontEndHarness(p)
        let got = h.run(x, chunks: [1, 2, 3, 500, 31])
        #expect(!expected.isEmpty)
        #expect(got.map(\.index) == Array(0..<expected.count))
        var worst: Float = 0
        for (k, patch) in got { worst = max(worst, maxAbsDiff(patch, expected[k])) }
        let bound = Self.tolerance
        print("IOPAudio: fftSize \(p.fftSize): max |Swift - float64 DFT| = \(worst) (bound \(bound))")
        #expect(worst <= bound)
        #expect(h.guardsIntact)
    }

    /// Not a pass/fail figure (the host is not a board): how much of real time the front end takes, for the report.
    @Test func throughput() throws {
        let fixture = AudioFixture.shared
        let h = try FrontEndHarness(AudioParameters())
        let clock = ContinuousClock()
        let rounds = 20
        let elapsed = clock.measure {
            for _ in 0..<rounds { h.frontEnd.reset(); _ = h.run(fixture.samples, chunks: [160]) }
        }
        let audio = Double(rounds * fixture.samples.count) / 16000
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
        print("IOPAudio: \(audio) s of audio in \(seconds) s (\(Int(audio / seconds))x real time)")
    }

    @Test func floatCountForTheDefaults() {
        // window 400 + stage twiddles 504 + split twiddles 256 + band table 128 + 461 weights (as in NumPy's
        // mel_matrix) + samples 400 + FFT scratch 256 + 256 + 257 + 257 + spectrum 257 + 96 x 64 frame ring, each
        // rounded up to 8 floats.
        #expect(FrontEnd.floatCount(AudioParameters()) == 9600)
        #expect(FrontEnd.floatCount(AudioParameters(fftSize: 500)) == 0)
    }

    @Test func patchEndSecondsMatchesFrontendPy() {
        let p = AudioParameters()
        #expect(p.patchEndSeconds(0) == 0.975)
        #expect(p.patchEndSeconds(1) == 1.475)
        #expect(p.patchEndSeconds(4) == 2.975)
        #expect(p.patchCount(samples: 48000) == 5)
        #expect(p.frameCount(samples: 399) == 0 && p.frameCount(samples: 400) == 1 && p.frameCount(samples: 560) == 2)
    }

    @Test(arguments: [
        (AudioParameters(fftSize: 500), "fftSize is 500, expected a power of two, at least 16"),
        (AudioParameters(fftSize: 256), "fftSize 256 is shorter than frameLength 400"),
        (AudioParameters(fftSize: 8, melBins: 2), "fftSize is 8, expected a power of two, at least 16"),
        (AudioParameters(frameHop: 0), "frameHop is 0, expected 1 to 1048576"),
        (AudioParameters(melBins: -3), "melBins is -3"),
        (AudioParameters(fMax: 8000.5), "mel range fMin 125 Hz to fMax 8000.5 Hz, expected 0 <= fMin < fMax"),
        (AudioParameters(fMin: 7500), "fMin 7500 Hz to fMax 7500 Hz"),
        (AudioParameters(fMin: -1), "fMin -1 Hz"),
        (AudioParameters(logOffset: 0), "logOffset is 0, expected a positive normal float"),
        (AudioParameters(logOffset: 1e-300), "logOffset is below 0.001, expected a positive normal float"),
        (AudioParameters(patchFrames: 10, patchHop: 11), "patchHop 11 exceeds patchFrames 10"),
    ])
    func invalidParametersAreRefused(p: AudioParameters, message: String) {
        var caught: AudioError?
        do { try p.validate() } catch { caught = error }
        #expect(caught?.message.contains(message) == true, "\(caught?.message ?? "no error")")
        let memory = UnsafeMutablePointer<Float>.allocate(capacity: 16)
        defer { memory.deallocate() }
        #expect(throws: AudioError.self) { try FrontEnd(parameters: p, memory: memory) }
        #expect(FrontEnd.floatCount(p) == 0)
    }

    @Test func defaultsValidate() throws {
        try AudioParameters().validate()
        #expect(AudioParameters() == AudioParameters(sampleRate: 16000, frameLength: 400, frameHop: 160, fftSize: 512))
    }
}
