import Foundation
import IOPPlan

/// `iop profile --ssh`: the boards measure themselves where they run. Each board runs `iop-node profile`
/// (under its own CPU and memory, beside its idle agent), then the leader probes each worker's link over
/// CURVE with the cluster's keys, so encryption is in what a byte costs. The raw outputs land in
/// `--stage` as `--from` reads them, and are read back the same way.
extension ProfileCommand {
    func measuredOnBoards(_ c: Cluster) throws -> [[String: Any]?] {
        try FileManager.default.createDirectory(atPath: stage, withIntermediateDirectories: true)
        for d in c.devices {
            let n = threads ?? d.threads
            note("\(d.name): profiling its kernels with \(n) thread(s) (ssh \(d.sshDestination(user)))...")
            let output = try onBoard(d, ["profile", "--threads", String(n)], doing: "iop-node profile")
            try writeAtomically(output, to: staged("\(d.name).json"))
        }
        let leader = c.devices[c.leader]
        for (i, d) in c.devices.enumerated() where i != c.leader {
            note("\(d.name): probing its link from \(leader.name)...")
            let log = staged("\(d.name).serve.log")
            let server = try startOnBoard(
                d, ["probe", "--serve", "--once", "--listen", "tcp://\(d.host):\(probePort)"] + keyFlags(d), log: log)
            let output: Data
            do {
                output = try onBoard(
                    leader,
                    ["probe", "--connect", "tcp://\(d.host):\(probePort)", "--listen", "tcp://\(leader.host):*"]
                        + keyFlags(leader) + (insecure ? [] : ["--peer", d.name]),
                    doing: "iop-node probe of \(d.name)")
            } catch let failure as CommandFailure {
                server.terminate()
                let said = (try? String(contentsOfFile: log, encoding: .utf8))?.split(separator: "\n").first
                throw CommandFailure(
                    description: failure.description + (said.map { "; \(d.name)'s probe server said: \($0)" } ?? ""))
            }
            server.waitUntilExit()
            try writeAtomically(output, to: staged("\(d.name).probe.json"))
        }
        note("the boards' raw profiles and probes are in \(stage)")
        return try gathered(from: stage, cluster: c)
    }

    func staged(_ file: String) -> String { (stage as NSString).appendingPathComponent(file) }

    /// Where `iop deploy --keys` put the board's own keys; none with --insecure.
    func keyFlags(_ d: DeviceSpec) -> [String] {
        insecure ? [] : ["--keys", (remoteKeys as NSString).appendingPathComponent(d.name)]
    }

    func sshProcess(_ d: DeviceSpec, _ arguments: [String]) -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        let command = ([nodeCommand] + arguments.map(shellQuoted)).joined(separator: " ")
        p.arguments = ["ssh", "-o", "BatchMode=yes", d.sshDestination(user), command]
        return p
    }

    /// Starts `iop-node ARGUMENTS` on board `d`, its messages going to the file `log`: not to our own
    /// pipes, which a server that outlived its client would hold open.
    func startOnBoard(_ d: DeviceSpec, _ arguments: [String], log: String) throws -> Process {
        let p = sshProcess(d, arguments)
        FileManager.default.createFile(atPath: log, contents: nil)
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle(forWritingAtPath: log)
        do { try p.run() } catch { throw CommandFailure(description: "cannot run ssh: \(error.localizedDescription)") }
        return p
    }

    /// Runs `iop-node ARGUMENTS` on board `d` and returns what it printed; a failure names the board and
    /// quotes the board's last line of error.
    func onBoard(_ d: DeviceSpec, _ arguments: [String], doing what: String) throws -> Data {
        let p = sshProcess(d, arguments)
        let out = Pipe(), err = Pipe()
        p.standardOutput = out; p.standardError = err
        do { try p.run() } catch { throw CommandFailure(description: "cannot run ssh: \(error.localizedDescription)") }
        // stderr is drained on its own thread: a chatty board must not stall on a full pipe.
        let errors = Drained(err.fileHandleForReading)
        let output = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            let last = String(decoding: errors.wait(), as: UTF8.self).split(separator: "\n").first { !$0.isEmpty } ?? ""
            throw CommandFailure(
                description:
                    "board '\(d.name)' (\(d.sshDestination(user))): \(what) failed with exit status "
                    + "\(p.terminationStatus)" + (last.isEmpty ? "" : ": \(last)"))
        }
        return output
    }
}

/// A pipe read to its end on a thread of its own.
final class Drained: @unchecked Sendable {
    private var data = Data()
    private let done = DispatchSemaphore(value: 0)

    init(_ handle: FileHandle) {
        Thread { [self] in
            data = handle.readDataToEndOfFile()
            done.signal()
        }.start()
    }

    func wait() -> Data {
        done.wait()
        return data
    }
}
