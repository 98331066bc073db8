import IOPAudio
import Testing

/// Hand-built RIFF/WAVE files: one chunk at a time, little-endian, so each test shows exactly what it feeds.
struct WAVBuilder {
    var bytes: [UInt8] = []

    static func u16(_ v: Int) -> [UInt8] { [UInt8(v & 0xff), UInt8((v >> 8) & 0xff)] }
    static func u32(_ v: Int) -> [UInt8] { u16(v & 0xffff) + u16((v >> 16) & 0xffff) }

    mutating func chunk(_ id: String, _ body: [UInt8], declaredSize: Int? = nil) {
        bytes += Array(id.utf8) + Self.u32(declaredSize ?? body.count) + body
        if body.count % 2 == 1 && declaredSize == nil { bytes.append(0) }  // a truncated chunk has no pad
    }

    static func fmt(tag: Int = 1, channels: Int = 1, rate: Int = 16000, bits: Int = 16) -> [UInt8] {
        let align = channels * bits / 8
        return u16(tag) + u16(channels) + u32(rate) + u32(rate * align) + u16(align) + u16(bits)
    }

    /// WAVE_FORMAT_EXTENSIBLE with the standard KSDATAFORMAT GUID for `subformat`.
    static func extensible(subformat: Int, channels: Int = 1, rate: Int = 16000, bits: Int = 16) -> [UInt8] {
        fmt(tag: 0xFFFE, channels: channels, rate: rate, bits: bits) + u16(22) + u16(bits) + u32(4)
            + u16(subformat) + [0, 0, 0, 0, 0x10, 0, 0x80, 0, 0, 0xAA, 0, 0x38, 0x9B, 0x71]
    }

    static func file(_ build: (inout WAVBuilder) -> Void) -> [UInt8] {
        var b = WAVBuilder()
        build(&b)
        return Array("RIFF".utf8) + u32(4 + b.bytes.count) + Array("WAVE".utf8) + b.bytes
    }
}

func samplesBody(_ values: [Int16]) -> [UInt8] {
    values.flatMap { [UInt8(truncatingIfNeeded: $0), UInt8(truncatingIfNeeded: $0 >> 8)] }
}

func parse(_ bytes: [UInt8], sampleRate: Int = 16000) -> Result<WAVSamples, AudioError> {
    bytes.withUnsafeBytes { raw in
        do throws(AudioError) { return .success(try WAV.parse(raw, sampleRate: sampleRate)) } catch {
            return .failure(error)
        }
    }
}

func failure(_ r: Result<WAVSamples, AudioError>) -> String {
    if case .failure(let e) = r { return e.message }
    return "no error"
}

@Suite struct WAVTests {
    @Test func monoPCMWithAListChunk() throws {
        let values: [Int16] = [0, 1, -1, 32767, -32768, 1234, -4321]
        let file = WAVBuilder.file {
            $0.chunk("fmt ", WAVBuilder.fmt())
            $0.chunk("LIST", Array("INFOISFT\u{3}\0\0\0iop".utf8))  // 15 bytes: padded to 16
            $0.chunk("data", samplesBody(values))
        }
        let found = try parse(file).get()
        #expect(found == WAVSamples(byteOffset: 12 + 24 + 8 + 16 + 8, count: 7, declaredCount: 7, truncated: false))
        let samples = file.withUnsafeBytes { Array(found.samples(in: $0)) }
        #expect(samples == values)
    }

    @Test func extensiblePCMIsAccepted() throws {
        let file = WAVBuilder.file {
            $0.chunk("fmt ", WAVBuilder.extensible(subformat: 1))
            $0.chunk("data", samplesBody([5, 6]))
        }
        #expect(
            try parse(file).get() == WAVSamples(byteOffset: 12 + 48 + 8, count: 2, declaredCount: 2, truncated: false))
    }

    @Test func truncatedDataChunkKeepsWhatIsThere() throws {
        let file = WAVBuilder.file {
            $0.chunk("fmt ", WAVBuilder.fmt())
            $0.chunk("data", samplesBody([1, 2, 3]) + [9], declaredSize: 32000)  // 3.5 samples of 16000
        }
        let found = try parse(file).get()
        #expect(found.truncated)
        #expect(found.count == 3 && found.declaredCount == 16000)
        #expect(found.byteOffset == 44)
    }

    @Test(arguments: [
        (
            WAVBuilder.file {
                $0.chunk("fmt ", WAVBuilder.fmt(rate: 44100)); $0.chunk("data", [0, 0])
            }, "expected 16000 Hz mono 16-bit PCM, found 44100 Hz mono 16-bit PCM"
        ),
        (
            WAVBuilder.file {
                $0.chunk("fmt ", WAVBuilder.fmt(channels: 2, rate: 44100)); $0.chunk("data", [0, 0, 0, 0])
            }, "expected 16000 Hz mono 16-bit PCM, found 44100 Hz stereo 16-bit PCM"
        ),
        (
            WAVBuilder.file {
                $0.chunk("fmt ", WAVBuilder.fmt(channels: 6)); $0.chunk("data", [])
            }, "found 16000 Hz 6-channel 16-bit PCM"
        ),
        (
            WAVBuilder.file {
                $0.chunk("fmt ", WAVBuilder.fmt(bits: 8)); $0.chunk("data", [128])
            }, "expected 16000 Hz mono 16-bit PCM, found 16000 Hz mono 8-bit PCM"
        ),
        (
            WAVBuilder.file {
                $0.chunk("fmt ", WAVBuilder.fmt(tag: 3, bits: 32)); $0.chunk("data", [0, 0, 0, 0])
            }, "expected 16000 Hz mono 16-bit PCM, found 16000 Hz mono 32-bit IEEE float"
        ),
        (
            WAVBuilder.file {
                $0.chunk("fmt ", WAVBuilder.extensible(subformat: 3, bits: 32)); $0.chunk("data", [0, 0, 0, 0])
            }, "found 16000 Hz mono 32-bit IEEE float (extensible)"
        ),
        (
            WAVBuilder.file {
                $0.chunk("fmt ", WAVBuilder.fmt(tag: 0x55)); $0.chunk("data", [0, 0])
            }, "found 16000 Hz mono 16-bit format 0x55"
        ),
        (
            Array("RIFX".utf8) + [0, 0, 0, 0] + Array("WAVE".utf8), "not a RIFF/WAVE file: starts with 'RIFX', 'WAVE'"
        ),
        ([0xFF, 0xFB, 0x90, 0x44, 0, 0, 0, 0, 0, 0, 0, 0], "starts with '\\xff\\xfb\\x90D'"),
        (Array("RIFF".utf8), "the file is 4 bytes, shorter than a RIFF header (12)"),
        (WAVBuilder.file { $0.chunk("data", [0, 0]) }, "WAVE file has no 'fmt ' chunk"),
        (WAVBuilder.file { $0.chunk("fmt ", WAVBuilder.fmt()) }, "WAVE file has no 'data' chunk"),
        (
            WAVBuilder.file {
                $0.chunk("fmt ", WAVBuilder.fmt()); $0.chunk("LIST", [1, 2, 3], declaredSize: 1000)
            }, "WAVE file has no 'data' chunk"
        ),
        (
            WAVBuilder.file { $0.chunk("fmt ", Array(WAVBuilder.fmt().prefix(14))) },
            "malformed WAVE file: 'fmt ' chunk has 14 bytes, expected at least 16"
        ),
        (
            WAVBuilder.file {
                $0.chunk("fmt ", WAVBuilder.fmt(tag: 0xFFFE)); $0.chunk("data", [0, 0])
            }, "extensible 'fmt ' chunk has 16 bytes, expected at least 40"
        ),
    ])
    func refusedWithWhatWasFound(file: [UInt8], message: String) {
        let got = failure(parse(file))
        #expect(got.contains(message), "\(got)")
    }

    @Test func otherSampleRatesWhenAsked() throws {
        let file = WAVBuilder.file {
            $0.chunk("fmt ", WAVBuilder.fmt(rate: 8000)); $0.chunk("data", [1, 0])
        }
        #expect(try parse(file, sampleRate: 8000).get().count == 1)
        #expect(failure(parse(file)) == "expected 16000 Hz mono 16-bit PCM, found 8000 Hz mono 16-bit PCM")
    }
}
