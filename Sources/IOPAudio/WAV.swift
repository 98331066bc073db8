/// Where a WAVE file's samples are, found without copying them: the node maps the file and streams the data chunk
/// straight into the front end.
public struct WAVSamples: Equatable, Sendable {
    /// Byte offset of the first sample in the file.
    public var byteOffset: Int
    /// Whole samples present in the file.
    public var count: Int
    /// Samples the data chunk declares; more than `count` when the file is truncated.
    public var declaredCount: Int
    /// The data chunk runs past the end of the file (a recording cut short, or a writer that never went back to
    /// fix the size). Not an error: the samples present are usable, and the caller says so when it stops.
    public var truncated: Bool

    public init(byteOffset: Int, count: Int, declaredCount: Int, truncated: Bool) {
        self.byteOffset = byteOffset; self.count = count; self.declaredCount = declaredCount
        self.truncated = truncated
    }

    /// The samples as int16, for little-endian hosts (every board iop targets) when `byteOffset` is even in
    /// memory that is 2-byte aligned (a mapped file always is); otherwise use `FrontEnd.consume(littleEndian:)`.
    public func samples(in bytes: UnsafeRawBufferPointer) -> UnsafeBufferPointer<Int16> {
        guard let base = bytes.baseAddress, count > 0 else { return UnsafeBufferPointer(start: nil, count: 0) }
        let start = base + byteOffset
        precondition(Int(bitPattern: start) & 1 == 0, "WAV samples are not 2-byte aligned")
        #if _endian(big)
            preconditionFailure("WAV samples are little-endian; use FrontEnd.consume(littleEndian:)")
        #endif
        return UnsafeBufferPointer(start: start.assumingMemoryBound(to: Int16.self), count: count)
    }
}

/// RIFF/WAVE parsing: 16-bit PCM mono at the model's sample rate only, since resampling or mixing on the board
/// would make features the model was not trained on; anything else is refused with what was found.
public enum WAV {
    /// Finds the samples of a RIFF/WAVE file held in `bytes`. Walks the chunks in order (skipping LIST, fact, cue
    /// and any other), requires a 'fmt ' chunk saying PCM (format 1, or WAVE_FORMAT_EXTENSIBLE with the PCM
    /// subformat), one channel, 16 bits and `sampleRate`, then a 'data' chunk. The RIFF size field is not trusted:
    /// streaming writers leave it 0 or 0xFFFFFFFF.
    public static func parse(_ bytes: UnsafeRawBufferPointer, sampleRate: Int = 16000) throws(AudioError)
        -> WAVSamples
    {
        let size = bytes.count
        guard size >= 12 else {
            throw .notWAV("the file is " + String(size) + " bytes, shorter than a RIFF header (12)")
        }
        guard fourCC(bytes, 0) == fourCC("RIFF"), fourCC(bytes, 8) == fourCC("WAVE") else {
            throw .notWAV(
                "starts with '" + printable(bytes, 0) + "', '" + printable(bytes, 8) + "', expected 'RIFF', 'WAVE'")
        }
        var format: Format?
        var at = 12
        while at + 8 <= size {
            let id = fourCC(bytes, at)
            let length = Int(exactly: u32(bytes, at + 4)) ?? Int.max
            let body = at + 8
            if id == fourCC("data") {
                guard let f = format else { throw .missingChunk("fmt ") }  // 'fmt ' must precede 'data'
                try f.check(sampleRate: sampleRate)
                let present = min(length, size - body)
                return WAVSamples(
                    byteOffset: body, count: present / 2, declaredCount: length / 2, truncated: present < length)
            }
            if id == fourCC("fmt ") {
                guard length >= 16, body + 16 <= size else {
                    throw .malformedWAV(
                        "'fmt ' chunk has " + String(min(length, size - body)) + " bytes, expected at least 16")
                }
                format = try Format(bytes, body, length: min(length, size - body))
            }
            if length > size - body { break }  // a chunk cut short before any data: nothing more to find
            at = body + length + (length & 1)  // chunks are padded to an even size
        }
        throw .missingChunk(format == nil ? "fmt " : "data")
    }

    /// The fields of a 'fmt ' chunk the front end cares about.
    struct Format {
        var tag: Int
        /// The extensible format's subformat code, -1 for a GUID outside the standard family, 0 otherwise.
        var subformat: Int
        var channels: Int
        var rate: Int
        var bits: Int

        init(_ bytes: UnsafeRawBufferPointer, _ at: Int, length: Int) throws(AudioError) {
            tag = Int(u16(bytes, at))
            channels = Int(u16(bytes, at + 2))
            rate = Int(u32(bytes, at + 4))
            bits = Int(u16(bytes, at + 14))
            subformat = 0
            if tag == 0xFFFE {
                // WAVE_FORMAT_EXTENSIBLE: cbSize (22), valid bits, channel mask, then the subformat GUID, whose
                // first two bytes are the format code and the rest the fixed KSDATAFORMAT suffix.
                guard length >= 40 else {
                    throw .malformedWAV(
                        "extensible 'fmt ' chunk has " + String(length) + " bytes, expected at least 40")
                }
                let suffix: [UInt8] = [0, 0, 0, 0, 0x10, 0, 0x80, 0, 0, 0xAA, 0, 0x38, 0x9B, 0x71]
                var standard = true
                for i in 0..<14 where bytes[at + 26 + i] != suffix[i] { standard = false }
                subformat = standard ? Int(u16(bytes, at + 24)) : -1
            }
        }

        var isPCM: Bool { tag == 1 || (tag == 0xFFFE && subformat == 1) }

        func check(sampleRate: Int) throws(AudioError) {
            guard isPCM, channels == 1, bits == 16, rate == sampleRate else {
                throw .unsupportedFormat(
                    found: String(rate) + " Hz " + channelText + " " + String(bits) + "-bit " + formatText,
                    expected: String(sampleRate) + " Hz mono 16-bit PCM")
            }
        }

        var channelText: String {
            switch channels {
            case 1: return "mono"
            case 2: return "stereo"
            default: return String(channels) + "-channel"
            }
        }

        var formatText: String {
            func name(_ code: Int) -> String {
                switch code {
                case 1: return "PCM"
                case 3: return "IEEE float"
                case 6: return "A-law"
                case 7: return "mu-law"
                default: return "format 0x" + String(code, radix: 16)
                }
            }
            guard tag == 0xFFFE else { return name(tag) }
            guard subformat >= 0 else { return "extensible with a non-standard subformat" }
            return name(subformat) + " (extensible)"
        }
    }

    static func u16(_ b: UnsafeRawBufferPointer, _ at: Int) -> UInt16 { UInt16(b[at]) | UInt16(b[at + 1]) << 8 }

    static func u32(_ b: UnsafeRawBufferPointer, _ at: Int) -> UInt32 {
        UInt32(b[at]) | UInt32(b[at + 1]) << 8 | UInt32(b[at + 2]) << 16 | UInt32(b[at + 3]) << 24
    }

    static func fourCC(_ b: UnsafeRawBufferPointer, _ at: Int) -> UInt32 {
        UInt32(b[at]) << 24 | UInt32(b[at + 1]) << 16 | UInt32(b[at + 2]) << 8 | UInt32(b[at + 3])
    }

    static func fourCC(_ s: StaticString) -> UInt32 {
        let p = s.utf8Start
        return UInt32(p[0]) << 24 | UInt32(p[1]) << 16 | UInt32(p[2]) << 8 | UInt32(p[3])
    }

    /// Four bytes for a message: printable ASCII as is, anything else as \xNN.
    static func printable(_ b: UnsafeRawBufferPointer, _ at: Int) -> String {
        let hex: StaticString = "0123456789abcdef"
        var out: [UInt8] = []
        for i in at..<(at + 4) {
            let c = b[i]
            if c >= 0x20 && c < 0x7F {
                out.append(c)
            } else {
                out += [0x5C, 0x78, hex.utf8Start[Int(c >> 4)], hex.utf8Start[Int(c & 15)]]
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
