import Foundation
import IOPAudio
import TestSupport

/// A little-endian, C-order .npy file (format 1.0-3.0), int16 or float32: just what the audio fixtures are, so the
/// audio tests need not depend on IOPModel (host code) for its float-only reader.
struct NPYFile {
    var descr: String
    var shape: [Int]
    var payload: [UInt8]

    init(path: String) throws {
        struct Bad: Error { var reason: String }
        guard let data = FileManager.default.contents(atPath: path) else { throw Bad(reason: "cannot read " + path) }
        let bytes = [UInt8](data)
        guard bytes.count >= 10, bytes[0] == 0x93, bytes[1..<6].elementsEqual("NUMPY".utf8) else {
            throw Bad(reason: "not .npy: " + path)
        }
        let wide = bytes[6] >= 2
        let length =
            wide
            ? Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
            : Int(bytes[8]) | Int(bytes[9]) << 8
        let start = wide ? 12 : 10
        let header = String(decoding: bytes[start..<(start + length)], as: UTF8.self)
        func value(_ key: String) -> String {
            guard let r = header.range(of: "'" + key + "': ") else { return "" }
            let rest = header[r.upperBound...]
            let end = rest.hasPrefix("(") ? rest.firstIndex(of: ")")! : rest.firstIndex(of: ",")!
            return String(rest[..<end]).trimmingCharacters(in: CharacterSet(charactersIn: "'( "))
        }
        guard value("fortran_order") == "False" else { throw Bad(reason: "Fortran order: " + path) }
        descr = value("descr")
        shape = value("shape").split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        payload = Array(bytes[(start + length)...])
        let size = descr == "<i2" ? 2 : descr == "<f4" ? 4 : 0
        guard size > 0, payload.count == shape.reduce(1, *) * size else {
            throw Bad(reason: "unexpected dtype \(descr) or size in " + path)
        }
    }

    var int16s: [Int16] {
        precondition(descr == "<i2")
        return stride(from: 0, to: payload.count, by: 2).map {
            Int16(bitPattern: UInt16(payload[$0]) | UInt16(payload[$0 + 1]) << 8)
        }
    }

    var floats: [Float] {
        precondition(descr == "<f4")
        return stride(from: 0, to: payload.count, by: 4).map {
            Float(
                bitPattern: UInt32(payload[$0]) | UInt32(payload[$0 + 1]) << 8 | UInt32(payload[$0 + 2]) << 16
                    | UInt32(payload[$0 + 3]) << 24)
        }
    }
}

/// The committed NumPy fixture (Tests/TestSupport/Fixtures/make_audio_fixtures.py): input samples and the patches
/// examples/valve-leak/frontend.py makes of them.
struct AudioFixture {
    let samples: [Int16]
    let patchCount: Int
    let patches: [Float]

    static let shared: AudioFixture = {
        let input = try! NPYFile(path: Fixtures.path("audio_frontend.input.npy"))
        let output = try! NPYFile(path: Fixtures.path("audio_frontend.patches.npy"))
        return AudioFixture(samples: input.int16s, patchCount: output.shape[0], patches: output.floats)
    }()
}

/// A front end in memory of exactly `floatCount` floats with sentinels on both sides, so a test also proves the
/// front end stays inside what it asked for.
final class FrontEndHarness {
    static let guardFloats = 64
    static let sentinel = Float(bitPattern: 0x7FC0_1234)
    let memory: UnsafeMutablePointer<Float>
    let count: Int
    let output: UnsafeMutablePointer<Float>
    var frontEnd: FrontEnd

    init(_ p: AudioParameters) throws {
        count = FrontEnd.floatCount(p)
        memory = .allocate(capacity: count + 2 * Self.guardFloats)
        memory.initialize(repeating: Self.sentinel, count: count + 2 * Self.guardFloats)
        frontEnd = try FrontEnd(parameters: p, memory: memory + Self.guardFloats)
        output = .allocate(capacity: frontEnd.patchFloatCount)
    }

    deinit { memory.deallocate(); output.deallocate() }

    var guardsIntact: Bool {
        (0..<Self.guardFloats).allSatisfy {
            memory[$0].bitPattern == Self.sentinel.bitPattern
                && memory[Self.guardFloats + count + $0].bitPattern == Self.sentinel.bitPattern
        }
    }

    /// Pushes `samples` in chunks of the given sizes (cycled); returns every patch with its index.
    func run(_ samples: [Int16], chunks: [Int]) -> [(index: Int, values: [Float])] {
        var patches: [(index: Int, values: [Float])] = []
        var at = 0, c = 0
        let size = frontEnd.patchFloatCount, output = output
        samples.withUnsafeBufferPointer { all in
            while at < all.count {
                let n = min(chunks[c % chunks.count], all.count - at)
                frontEnd.push(UnsafeBufferPointer(rebasing: all[at..<(at + n)]), into: output) { k in
                    patches.append((k, Array(UnsafeBufferPointer(start: output, count: size))))
                }
                at += n; c += 1
            }
        }
        return patches
    }
}

func maxAbsDiff(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count)
    var worst: Float = 0
    for i in 0..<a.count { worst = max(worst, abs(a[i] - b[i])) }
    return worst
}

/// frontend.py in Swift, in Double with a direct DFT and Foundation's libm: the reference for parameters the
/// NumPy fixture does not cover (other FFT sizes, hops longer than frames, few bands).
func referencePatches(_ x: [Int16], _ p: AudioParameters) -> [[Float]] {
    let n = p.fftSize, bins = n / 2 + 1
    func mel(_ f: Double) -> Double { 1127.0 * Foundation.log1p(f / 700.0) }
    let nyquist = Double(p.sampleRate) / 2
    let binMel = (0..<bins).map { mel($0 == bins - 1 ? nyquist : Double($0) * (nyquist / Double(bins - 1))) }
    let lo = mel(p.fMin), hi = mel(p.fMax), step = (hi - lo) / Double(p.melBins + 1)
    let edges = (0..<(p.melBins + 2)).map { $0 == p.melBins + 1 ? hi : Double($0) * step + lo }
    var weights = [[Double]](repeating: [Double](repeating: 0, count: p.melBins), count: bins)
    for j in 0..<p.melBins {
        for b in 1..<bins {
            let rising = (binMel[b] - edges[j]) / (edges[j + 1] - edges[j])
            let falling = (edges[j + 2] - binMel[b]) / (edges[j + 2] - edges[j + 1])
            weights[b][j] = max(0, min(rising, falling))
        }
    }
    let window = (0..<p.frameLength).map {
        0.5 - 0.5 * Foundation.cos(2 * Double.pi * Double($0) / Double(p.frameLength))
    }
    let cosTable = (0..<n).map { Foundation.cos(2 * Double.pi * Double($0) / Double(n)) }
    let sinTable = (0..<n).map { Foundation.sin(2 * Double.pi * Double($0) / Double(n)) }
    let frameCount = p.frameCount(samples: x.count)
    var frames: [[Double]] = []
    for i in 0..<frameCount {
        let frame = (0..<p.frameLength).map { Double(x[i * p.frameHop + $0]) / 32768 * window[$0] }
        var row = [Double](repeating: 0, count: p.melBins)
        for k in 0..<bins {
            var re = 0.0, im = 0.0
            for t in 0..<p.frameLength {
                re += frame[t] * cosTable[(k * t) % n]; im -= frame[t] * sinTable[(k * t) % n]
            }
            let magnitude = (re * re + im * im).squareRoot()
            for j in 0..<p.melBins { row[j] += magnitude * weights[k][j] }
        }
        frames.append(row.map { Foundation.log($0 + p.logOffset) })
    }
    return (0..<p.patchCount(samples: x.count)).map { k in
        (0..<p.patchFrames).flatMap { f in frames[k * p.patchHop + f].map(Float.init) }
    }
}

/// Deterministic audio for the reference tests: two tones, a sweep and noise, some of it clipped.
func testSignal(count: Int, seed: UInt64) -> [Int16] {
    var state = seed
    return (0..<count).map { i in
        state = state &* 6364136223846793005 &+ 1442695040888963407
        let noise = Double(Int64(bitPattern: state) >> 40) / Double(1 << 23)
        let t = Double(i)
        let v = 0.4 * Foundation.sin(0.05 * t) + 0.3 * Foundation.sin(0.9 * t + 1e-5 * t * t) + 0.05 * noise
        return Int16(max(-32768, min(32767, (v * 32768).rounded())))
    }
}
