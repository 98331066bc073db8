import Foundation
import IOPModel
import TestSupport
import Testing

@Suite struct NPYTests {
    @Test func readsNumPyWrittenFiles() throws {
        // Written by numpy.save in make_fixtures.py.
        let a = try NPY.read(path: Fixtures.path("conv_pad1.input.npy"))
        #expect(a.shape == [1, 5, 9, 9])
        #expect(a.values.count == 405)
        #expect(a.values.allSatisfy { $0 >= -1 && $0 < 1 })
    }

    @Test func roundTripsAndAlignsThePayload() throws {
        for shape in [[3], [2, 3], [1, 3, 4, 5], []] {
            let n = shape.reduce(1, *)
            let a = NPY.Array(shape: shape, values: (0..<n).map { Float($0) * 0.5 - 1 })
            let data = NPY.encode(a)
            #expect(try NPY.decode(data) == a)
            let headerLength = Int(data[8]) | Int(data[9]) << 8
            #expect((10 + headerLength) % 64 == 0)
        }
    }

    /// A hand-built version 1.0 header (numpy's documented layout).
    static func file(descr: String, fortran: String = "False", shape: String = "(2,)", payload: Int = 8) -> Data {
        let header = "{'descr': '\(descr)', 'fortran_order': \(fortran), 'shape': \(shape), }\n"
        var d = Data([0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(header.utf8.count), 0])
        d.append(contentsOf: Array(header.utf8))
        d.append(Data(count: payload))
        return d
    }

    @Test func acceptsAHandBuiltHeader() throws {
        let a = try NPY.decode(Self.file(descr: "<f4"))
        #expect(a.shape == [2] && a.values == [0, 0])
    }

    @Test(arguments: [
        ("<f8", "False", "(2,)", 16, "dtype is <f8"),
        (">f4", "False", "(2,)", 8, "dtype is >f4"),
        ("<i4", "False", "(2,)", 8, "dtype is <i4"),
        ("<f4", "True", "(2,)", 8, "Fortran order"),
        ("<f4", "False", "(3,)", 8, "payload has 8 bytes"),
    ])
    func rejectsOtherDtypesOrdersAndSizes(descr: String, fortran: String, shape: String, payload: Int, message: String)
    {
        do {
            _ = try NPY.decode(Self.file(descr: descr, fortran: fortran, shape: shape, payload: payload), path: "x.npy")
            Issue.record("accepted \(descr) \(fortran) \(shape)")
        } catch {
            #expect("\(error)".contains(message), "got: \(error)")
        }
    }

    @Test func rejectsBadMagicAndTruncatedHeaders() {
        #expect(throws: ModelError.self) { try NPY.decode(Data("not an npy file".utf8)) }
        #expect(throws: ModelError.self) { try NPY.decode(Self.file(descr: "<f4").prefix(20)) }
        #expect(throws: ModelError.self) { try NPY.decode(Data()) }
    }
}
