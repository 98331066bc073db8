import Foundation

/// NumPy `.npy` files, float32 little-endian C order only (format 1.0–3.0).
public enum NPY {
    public struct Array: Equatable {
        public var shape: [Int]
        public var values: [Float]
        public init(shape: [Int], values: [Float]) { self.shape = shape; self.values = values }
    }

    public static func read(path: String) throws -> Array {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ModelError.io(path: path, reason: "cannot read file")
        }
        return try decode(data, path: path)
    }

    public static func decode(_ data: Data, path: String = "<npy>") throws -> Array {
        func bad(_ r: String) -> ModelError { .invalidTensorFile(path: path, reason: "not a float32 .npy file: " + r) }
        let bytes = [UInt8](data)
        guard bytes.count >= 10, bytes[0] == 0x93, Array.magicTail.elementsEqual(bytes[1..<6]) else {
            throw bad("missing \\x93NUMPY magic")
        }
        let major = bytes[6]
        let headerLength: Int, headerStart: Int
        switch major {
        case 1: headerLength = Int(bytes[8]) | Int(bytes[9]) << 8; headerStart = 10
        case 2, 3:
            guard bytes.count >= 12 else { throw bad("truncated header") }
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
            headerStart = 12
        default: throw bad("unknown format version \(major)")
        }
        guard headerStart + headerLength <= bytes.count,
            let header = String(bytes: bytes[headerStart..<(headerStart + headerLength)], encoding: .utf8)
        else {
            throw bad("truncated header")
        }
        guard let descr = field("descr", in: header) else { throw bad("header has no 'descr'") }
        let dtype = descr.trimmingCharacters(in: CharacterSet(charactersIn: "'\" "))
        guard dtype == "<f4" else {
            throw bad("dtype is \(dtype), expected '<f4' (float32, little-endian)")
        }
        guard let fortran = field("fortran_order", in: header) else { throw bad("header has no 'fortran_order'") }
        guard fortran.trimmingCharacters(in: .whitespaces) == "False" else {
            throw bad("Fortran order is not supported; save with C order")
        }
        guard let shapeText = field("shape", in: header) else { throw bad("header has no 'shape'") }
        let inner = shapeText.trimmingCharacters(in: CharacterSet(charactersIn: "() "))
        var shape: [Int] = []
        for part in inner.split(separator: ",") {
            let t = part.trimmingCharacters(in: .whitespaces)
            if t.isEmpty { continue }
            guard let d = Int(t), d >= 0 else { throw bad("bad shape \(shapeText)") }
            shape.append(d)
        }
        let count = shape.reduce(1, *)
        let payload = headerStart + headerLength
        guard bytes.count - payload == count * 4 else {
            throw bad("payload has \(bytes.count - payload) bytes, shape \(shape) needs \(count * 4)")
        }
        var values = [Float](repeating: 0, count: count)
        values.withUnsafeMutableBytes { dst in
            bytes.withUnsafeBytes { src in dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[payload...])) }
        }
        #if _endian(big)
            values = values.map { Float(bitPattern: $0.bitPattern.byteSwapped) }
        #endif
        return Array(shape: shape, values: values)
    }

    /// The text of one key's value in the header dict (up to the next top-level comma).
    static func field(_ key: String, in header: String) -> String? {
        guard let r = header.range(of: "'\(key)'") ?? header.range(of: "\"\(key)\"") else { return nil }
        var rest = header[r.upperBound...].drop(while: { $0 == " " })
        guard rest.first == ":" else { return nil }
        rest = rest.dropFirst()
        var depth = 0, out = ""
        for ch in rest {
            if ch == "(" { depth += 1 }
            if ch == ")" { depth -= 1 }
            if (ch == "," && depth == 0) || ch == "}" { break }
            out.append(ch)
        }
        return out.trimmingCharacters(in: .whitespaces)
    }

    public static func encode(_ a: Array) -> Data {
        let dims = a.shape.map(String.init).joined(separator: ", ")
        let shapeText = a.shape.count == 1 ? "(\(dims),)" : "(\(dims))"
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': \(shapeText), }"
        // Pad so the payload starts on a 64-byte boundary, newline-terminated.
        let total = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - total % 64) % 64) + "\n"
        var out = Data([0x93] + Array.magicTail + [1, 0])
        let n = header.utf8.count
        out.append(contentsOf: [UInt8(n & 0xff), UInt8(n >> 8)])
        out.append(contentsOf: Swift.Array(header.utf8))
        a.values.withUnsafeBytes { out.append(contentsOf: $0) }
        return out
    }

    /// Writes through a temporary file and a rename, so a failure leaves no half-written file.
    public static func write(_ a: Array, path: String) throws {
        try writeAtomically(encode(a), to: path)
    }
}

extension NPY.Array {
    static let magicTail: [UInt8] = Swift.Array("NUMPY".utf8)
}

func writeAtomically(_ data: Data, to path: String) throws {
    do { try data.write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
        throw ModelError.io(path: path, reason: "cannot write: \(error.localizedDescription)")
    }
}
