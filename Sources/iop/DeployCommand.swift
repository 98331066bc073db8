import ArgumentParser
import Foundation
import IOPCore
import IOPModel
import IOPPlan
import IOPProgram
import IOPWire

/// Puts a compiled cluster onto its boards over ssh: the package, each board's
/// environment file and memory ceiling, the bundle on the leader; then
/// (re)starts every board's `iop-node@NAME` unit, the leader first so the
/// workers' hellos find it.
struct Deploy: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Install the board package, settings and bundle on every board of a cluster over ssh, "
            + "and (re)start the agents.",
        discussion: """
            Each board is reached at the host of its cluster-file endpoint, with ssh and scp, and needs sudo there.
            Files are staged locally first (--stage); --dry-run stages them and prints every command \
            without running any.
            """)

    @Option(name: .long, help: "Cluster file (JSON; see examples/clusters): board names, endpoints, budgets, threads.")
    var cluster: String
    @Option(name: .long, help: "The bundle from `iop compile` (its bundle.iop, or the directory holding it).")
    var bundle: String
    @Option(name: .long, help: "The arm64 board package from cross/package (iop-node_VERSION_arm64.deb).")
    var package: String
    @Option(name: .long, help: "ssh user on the boards (default: ssh's own choice).")
    var user: String?
    @Option(name: .long, help: "Port the leader takes inference requests on.")
    var requestsPort: Int = 5599
    @Option(name: .long, help: "Directory the environment files and unit drop-ins are written to before copying.")
    var stage: String = "out/deploy"
    @Flag(name: .long, help: "Print every command instead of running it.")
    var dryRun = false
    @Option(
        name: .long,
        help: ArgumentHelp(
            "The cluster's keys from `iop keys --cluster FILE --out DIR`: each board gets DIR/NAME.",
            valueName: "dir"))
    var keys: String?
    @Flag(name: .long, help: "Deploy without keys: plain, unauthenticated links, for debugging only.")
    var insecure = false

    func validate() throws {
        if (keys == nil) == !insecure {
            throw ValidationError("give --keys DIR (made by `iop keys`), or --insecure for plain links")
        }
        guard (1...65535).contains(requestsPort) else {
            throw ValidationError("--requests-port must be 1...65535, got \(requestsPort)")
        }
    }

    func run() throws {
        try reportingErrors { try deploy() }
    }

    func deploy() throws {
        let spec = try Cluster.load(path: cluster)
        let bundlePath =
            FileManager.default.isDirectory(bundle) ? (bundle as NSString).appendingPathComponent("bundle.iop") : bundle
        let compiled = try loadBundle(bundlePath)
        let names = spec.devices.map(\.name), compiledNames = compiled.boards.map(\.name)
        guard names == compiledNames, compiled.leaderIndex == spec.leader else {
            let compiledFor =
                "\(compiledNames.joined(separator: ", ")) (leader \(compiledNames[compiled.leaderIndex]))"
            let current = "\(names.joined(separator: ", ")) (leader \(names[spec.leader]))"
            throw CommandFailure(
                description:
                    "\(bundlePath) was compiled for boards \(compiledFor), but \(cluster) has \(current); "
                    + "recompile it with `iop compile --cluster \(cluster)`"
            )
        }
        guard package.hasSuffix(".deb"), FileManager.default.fileExists(atPath: package) else {
            throw CommandFailure(description: "--package \(package): expected the .deb built by cross/package")
        }
        if let keys {
            for d in spec.devices {
                for file in ["secret", "peers"]
                where !FileManager.default.fileExists(atPath: "\(keys)/\(d.name)/\(file)") {
                    throw CommandFailure(
                        description:
                            "--keys \(keys): no \(d.name)/\(file) (make them with `iop keys --cluster \(cluster)`)")
                }
            }
        }
        let plan = try DeployPlan(
            cluster: spec, user: user, requestsPort: requestsPort, package: package, bundle: bundlePath, stage: stage,
            keys: keys)
        try plan.stageFiles()
        let commands = plan.commands
        if dryRun {
            note("dry run: files staged in \(stage); nothing was run")
            for c in commands { print(c.argv.map(shellQuoted).joined(separator: " ")) }
            return
        }
        for (i, c) in commands.enumerated() {
            note("[\(i + 1)/\(commands.count)] \(c.board): \(c.what)")
            let status = try runCommand(c.argv)
            guard status == 0 else {
                throw CommandFailure(
                    description:
                        "board '\(c.board)': \(c.argv[0]) exited with status \(status) while trying to \(c.what); "
                        + "boards before it are deployed, later ones untouched"
                )
            }
        }
        note(
            "deployed \(spec.devices.count) boards; "
                + "the leader takes requests on tcp://\(spec.devices[spec.leader].host):\(requestsPort)"
        )
    }

    func loadBundle(_ path: String) throws -> ProgramBundle {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CommandFailure(
                description: "--bundle \(path): cannot read it (expected bundle.iop from `iop compile`)")
        }
        var decoded: Result<ProgramBundle, WireError> = .failure(.malformedPayload)
        [UInt8](data).withUnsafeBytes { b in
            do throws(WireError) { decoded = .success(try ProgramBundle.decode(b)) } catch { decoded = .failure(error) }
        }
        switch decoded {
        case .success(let b): return b
        case .failure(let e):
            throw CommandFailure(
                description: "--bundle \(path): not a valid iop bundle (\(e.message)); recompile it with `iop compile`")
        }
    }

    func runCommand(_ argv: [String]) throws -> Int32 {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = argv
        do { try p.run() } catch {
            throw CommandFailure(description: "cannot run \(argv[0]): \(error.localizedDescription)")
        }
        p.waitUntilExit()
        return p.terminationStatus
    }
}

/// What deploying a cluster means, board by board: the files each one gets and the commands that put them there.
struct DeployPlan {
    struct Command { var board: String; var what: String; var argv: [String] }

    let cluster: Cluster
    let user: String?
    let requestsPort: Int
    let package: String
    let bundle: String
    let stage: String
    /// The `iop keys` directory; nil deploys plain links (`--insecure`).
    let keys: String?

    init(
        cluster: Cluster, user: String?, requestsPort: Int, package: String, bundle: String, stage: String,
        keys: String?
    ) throws {
        self.cluster = cluster; self.user = user; self.requestsPort = requestsPort
        self.package = package; self.bundle = bundle; self.stage = stage; self.keys = keys
        for d in cluster.devices where port(d) == nil {
            throw CommandFailure(description: "board '\(d.name)': endpoint \(d.endpoint) has no port to listen on")
        }
    }

    func port(_ d: DeviceSpec) -> Int? { d.endpoint.split(separator: ":").last.flatMap { Int($0) } }
    func destination(_ d: DeviceSpec) -> String { d.sshDestination(user) }

    /// The unit's environment (see systemd/iop-node.env.example): the board's own flags. Each board
    /// listens on its cluster-file endpoint itself, since a worker tells the leader the endpoint it bound.
    func environment(_ i: Int) -> String {
        let d = cluster.devices[i]
        var lines = [
            "# iop-node@\(d.name): written by `iop deploy` from the cluster file; "
                + "changes are overwritten on the next deploy."
        ]
        if i == cluster.leader {
            lines += [
                "IOP_ROLE=leader", "IOP_BUNDLE=/etc/iop/bundle.iop", "IOP_LISTEN=\(d.endpoint)",
                "IOP_REQUESTS=tcp://0.0.0.0:\(requestsPort)", "IOP_TIMEOUT_MS=30000",
            ]
        } else {
            lines += [
                "IOP_ROLE=worker", "IOP_LISTEN=\(d.endpoint)", "IOP_LEADER=\(cluster.devices[cluster.leader].endpoint)",
                "IOP_MEMORY_BUDGET=\(d.memoryBudgetBytes)", "IOP_REJOIN=1",
            ]
        }
        lines.append("IOP_THREADS=\(d.threads)")
        if keys == nil { lines.append("IOP_INSECURE=1") }
        return lines.joined(separator: "\n") + "\n"
    }

    /// systemd's ceiling for the board: its budget (the arena, which also stages
    /// the weight shards as they are packed) plus the runtime itself (binary,
    /// libzmq and the few shard messages it queues, thread stacks).
    func memoryMax(_ d: DeviceSpec) -> Int { d.memoryBudgetBytes + 64 << 20 }

    func dropIn(_ d: DeviceSpec) -> String {
        """
        # Written by `iop deploy`: the board's budget (\(d.memoryBudgetBytes) bytes, the most its one arena may
        # take; weight shards are staged inside it) plus 64 MiB of runtime. The agent's own budget check
        # is the real guard where the memory cgroup is off (Raspberry Pi kernels without cgroup_enable=memory).
        [Service]
        MemoryMax=\(memoryMax(d))

        """ + (keys == nil ? "# Deployed with --insecure: no keys to load.\nLoadCredential=\n" : "")
    }

    var packageName: String { (package as NSString).lastPathComponent }
    /// `iop compile`'s plans for the loss of each worker, beside the bundle.
    var fallbacks: [String] {
        let dir = (bundle as NSString).deletingLastPathComponent
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.isEmpty ? "." : dir)) ?? []
        return names.filter { $0.hasPrefix("fallback-") && $0.hasSuffix(".iop") }.sorted().map {
            (dir as NSString).appendingPathComponent($0)
        }
    }
    func stagedEnvironment(_ d: DeviceSpec) -> String { (stage as NSString).appendingPathComponent("\(d.name).env") }
    func stagedDropIn(_ d: DeviceSpec) -> String { (stage as NSString).appendingPathComponent("\(d.name)-memory.conf") }

    func stageFiles() throws {
        try FileManager.default.createDirectory(atPath: stage, withIntermediateDirectories: true)
        for (i, d) in cluster.devices.enumerated() {
            try writeAtomically(Data(environment(i).utf8), to: stagedEnvironment(d))
            try writeAtomically(Data(dropIn(d).utf8), to: stagedDropIn(d))
        }
    }

    /// The leader first, so the workers' hellos find it listening.
    var order: [Int] { [cluster.leader] + cluster.devices.indices.filter { $0 != cluster.leader } }

    var commands: [Command] {
        order.flatMap { i -> [Command] in
            let d = cluster.devices[i], isLeader = i == cluster.leader
            let unit = "iop-node@\(d.name)"
            var files = [package, stagedEnvironment(d), stagedDropIn(d)]
            if isLeader { files += [bundle] + fallbacks }
            if let keys { files += ["\(keys)/\(d.name)/secret", "\(keys)/\(d.name)/peers"] }
            var install = [
                "sudo apt-get install -y -q /tmp/iop-deploy/\(packageName)",
                "sudo install -D -m 0644 /tmp/iop-deploy/\(d.name).env /etc/iop/\(d.name).env",
                "sudo install -D -m 0644 /tmp/iop-deploy/\(d.name)-memory.conf "
                    + "/etc/systemd/system/\(unit).service.d/memory.conf",
            ]
            if isLeader {
                install.append(
                    "sudo install -D -m 0644 /tmp/iop-deploy/\((bundle as NSString).lastPathComponent) "
                        + "/etc/iop/bundle.iop"
                )
            }
            if isLeader {
                // The plans for a lost worker go beside the bundle, where the leader looks for them.
                for f in fallbacks {
                    let name = (f as NSString).lastPathComponent
                    install.append("sudo install -D -m 0644 /tmp/iop-deploy/\(name) /etc/iop/\(name)")
                }
            }
            if keys != nil {
                // Read by systemd (LoadCredential=) and handed to the agent alone; the secret never leaves root.
                install += [
                    "sudo install -D -m 0600 /tmp/iop-deploy/secret /etc/iop/keys/\(d.name)/secret",
                    "sudo install -D -m 0644 /tmp/iop-deploy/peers /etc/iop/keys/\(d.name)/peers",
                ]
            }
            install += [
                "sudo systemctl daemon-reload", "sudo systemctl enable \(unit)", "sudo systemctl restart \(unit)",
                "rm -rf /tmp/iop-deploy",
            ]
            return [
                Command(
                    board: d.name, what: "create /tmp/iop-deploy",
                    argv: ["ssh", destination(d), "mkdir -p -m 0700 /tmp/iop-deploy"]),
                Command(
                    board: d.name,
                    what: "copy the package, settings" + (keys == nil ? "" : ", keys")
                        + (isLeader ? " and bundle" : ""),
                    argv: ["scp", "-q"] + files + ["\(destination(d)):/tmp/iop-deploy/"]),
                Command(
                    board: d.name, what: "install and restart \(unit)",
                    argv: ["ssh", destination(d), install.joined(separator: " && ")]),
            ]
        }
    }
}

extension DeviceSpec {
    /// The host part of the board's `tcp://host:port` endpoint: where ssh and the probes reach it.
    var host: String {
        let rest = endpoint.dropFirst("tcp://".count)
        return String(rest[..<(rest.lastIndex(of: ":") ?? rest.endIndex)])
    }

    /// `user@host` for ssh and scp, or the host alone to let ssh choose the user.
    func sshDestination(_ user: String?) -> String { user.map { "\($0)@\(host)" } ?? host }
}

/// A word as a POSIX shell reads it back.
func shellQuoted(_ word: String) -> String {
    let safe = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%+=:,./-_")
    if !word.isEmpty && word.allSatisfy({ safe.contains($0) }) { return word }
    return "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
}

extension FileManager {
    func isDirectory(_ path: String) -> Bool {
        var dir: ObjCBool = false
        return fileExists(atPath: path, isDirectory: &dir) && dir.boolValue
    }
}
