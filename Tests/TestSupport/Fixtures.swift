import Foundation

/// The committed ONNX Runtime fixtures (Fixtures/make_fixtures.py), shared by the model, plan and CLI tests.
public enum Fixtures {
    public static let directory: URL = Bundle.module.resourceURL!.appendingPathComponent("Fixtures")
    public static func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    /// Every ORT-checked case: NAME.onnx with NAME.input.npy and NAME.output.npy beside it.
    public static var cases: [String] {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return files.filter { $0.hasSuffix(".output.npy") }.map { String($0.dropLast(".output.npy".count)) }.sorted()
    }
}

/// This test process's own temporary directory, removed when the process exits: a run writes gigabytes of
/// bundles there, and 38 runs had left 76 GB behind and filled the disk.
private let testDirectory: URL = {
    func directory() -> URL { FileManager.default.temporaryDirectory.appendingPathComponent("iop-tests-\(getpid())") }
    try? FileManager.default.createDirectory(at: directory(), withIntermediateDirectories: true)
    atexit { try? FileManager.default.removeItem(at: directory()) }
    return directory()
}()

/// A path in this test process's own temporary directory.
public func temporaryPath(_ name: String) -> String { testDirectory.appendingPathComponent(name).path }
