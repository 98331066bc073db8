import Foundation
import IOPCore
import IOPModel
import TestSupport

enum Fixtures {
    static let directory: URL = Bundle.module.resourceURL!.appendingPathComponent("Fixtures")
    static func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    /// Every ORT-checked case: NAME.onnx with NAME.input.npy and NAME.output.npy beside it.
    static var cases: [String] {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return files.filter { $0.hasSuffix(".output.npy") }.map { String($0.dropLast(".output.npy".count)) }.sorted()
    }
}

func infer(_ net: Network, _ input: [Float], threads: Int = 1) throws -> [Float] {
    try net.makeEngine(threads: threads).run(input)
}

func temporaryPath(_ name: String) -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("iop-tests-\(getpid())")
    try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir.appendingPathComponent(name).path
}
