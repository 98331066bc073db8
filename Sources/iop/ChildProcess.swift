import Foundation

/// A child process whose stdout is read line by line in the background.
final class Child: @unchecked Sendable {
    let name: String
    let process = Process()
    private let lock = NSLock()
    private var lines: [String] = []
    private var errorText = ""
    private let newLine = DispatchSemaphore(value: 0)
    /// Signalled once stderr has been read to its end (the process closed it).
    private let stderrDrained = DispatchSemaphore(value: 0)

    init(name: String, executable: String, arguments: [String]) throws {
        self.name = name
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out; process.standardError = err
        try process.run()
        Thread.detachNewThread { [self] in
            var pending = ""
            while true {
                let data = out.fileHandleForReading.availableData
                if data.isEmpty { break }
                pending += String(decoding: data, as: UTF8.self)
                while let r = pending.range(of: "\n") {
                    let line = String(pending[..<r.lowerBound]); pending = String(pending[r.upperBound...])
                    lock.lock(); lines.append(line); lock.unlock(); newLine.signal()
                }
            }
            newLine.signal()
        }
        Thread.detachNewThread { [self] in
            let data = err.fileHandleForReading.readDataToEndOfFile()
            lock.lock(); errorText = String(decoding: data, as: UTF8.self); lock.unlock()
            stderrDrained.signal()
        }
    }

    /// The text after `prefix` on the first stdout line that starts with it.
    func waitLine(prefix: String, seconds: Double) -> String? {
        let deadline = Date().addingTimeInterval(seconds)
        while true {
            lock.lock(); let hit = lines.first { $0.hasPrefix(prefix) }; lock.unlock()
            if let hit { return String(hit.dropFirst(prefix.count)) }
            if !process.isRunning && Date() > deadline.addingTimeInterval(-seconds + 0.5) {
                lock.lock(); let again = lines.first { $0.hasPrefix(prefix) }; lock.unlock()
                return again.map { String($0.dropFirst(prefix.count)) }
            }
            if Date() > deadline { return nil }
            _ = newLine.wait(timeout: .now() + 0.2)
        }
    }

    var outputLines: [String] { lock.lock(); defer { lock.unlock() }; return lines }
    /// The last error line the node logged (without its priority prefix); waits
    /// briefly for the node to finish writing it.
    var lastError: String {
        if stderrDrained.wait(timeout: .now() + 5) == .success { stderrDrained.signal() }
        lock.lock(); defer { lock.unlock() }
        let l =
            errorText.split(separator: "\n").last { $0.hasPrefix("<3>") || $0.hasPrefix("<4>") }
            ?? Substring(errorText.split(separator: "\n").last ?? "")
        return String(l.drop { $0 != ">" }.dropFirst())
    }

    func wait(seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        return !process.isRunning
    }

    func stop() {
        if process.isRunning { process.terminate() }
        if !wait(seconds: 2) { kill(process.processIdentifier, SIGKILL) }
    }
}

/// The node processes of one run, stopped on every way out (success, failure, Ctrl-C).
final class ChildGroup: @unchecked Sendable {
    private let lock = NSLock()
    private var children: [Child] = []
    func add(_ c: Child) { lock.lock(); children.append(c); lock.unlock() }
    var all: [Child] { lock.lock(); defer { lock.unlock() }; return children }
    func stopAll() { for c in all { c.stop() } }
}

/// The group the Ctrl-C handler stops.
nonisolated(unsafe) var runningChildren = ChildGroup()
/// `iop cluster`'s work directory (keys, bundles), for the signal handler to remove.
nonisolated(unsafe) var runningClusterDirectory: String?

/// A command line split on spaces, its program found on PATH as a shell would.
func resolveCommand(_ command: String) throws -> (executable: String, arguments: [String]) {
    let words = command.split(separator: " ").map(String.init)
    guard let program = words.first else { throw CommandFailure(description: "--worker-command is empty") }
    let candidates =
        program.contains("/")
        ? [program]
        : (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":").map {
            "\($0)/\(program)"
        }
    guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
        throw CommandFailure(
            description: "--worker-command: '\(program)' is not an executable file or a program on PATH")
    }
    return (found, Array(words.dropFirst()))
}

/// "; stopped nodes: 'a', 'b'" for the nodes that are no longer running, or "".
func stoppedNodes(_ children: ChildGroup) -> String {
    var names: [String] = []
    for c in children.all where !c.process.isRunning { names.append("'" + c.name + "'") }
    return names.isEmpty ? "" : "; stopped nodes: " + names.joined(separator: ", ")
}
