import ArgumentParser
import Foundation
import IOPNet
import IOPNode
import IOPPlan

struct Keys: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "Make the CURVE keys of a cluster: one keypair per board and per client, and who may talk to whom.",
        discussion: """
            Writes DIR/NAME/secret (the keypair, mode 0600) and DIR/NAME/peers (the public keys it may talk to, \
            with their roles) for every board of the cluster file and every client. The leader's peers are its \
            workers and the clients; a worker's and a client's, the leader. Admins are clients that may also stop \
            the cluster. Give each board its own directory (`iop deploy --keys DIR` installs them) and \
            each client its own (`iop request --keys DIR/NAME`). Existing keys are never overwritten: rotate by \
            writing a new DIR and deploying it.
            """)

    @OptionGroup var clusterOptions: ClusterOptions
    @Option(name: .long, help: "Directory to create; must not exist yet.")
    var out: String
    @Option(name: .long, help: "A client that may send requests (repeatable).")
    var client: [String] = []
    @Option(name: .long, help: "A client that may also stop the cluster (repeatable; default: operator).")
    var admin: [String] = []

    func validate() throws {
        guard (clusterOptions.cluster == nil) != (clusterOptions.nodes == nil) else {
            throw ValidationError("give exactly one of --cluster FILE or --nodes N")
        }
    }

    func run() throws {
        try reportingErrors {
            let cluster = try clusterOptions.loadCluster()
            let admins = admin.isEmpty ? ["operator"] : admin
            try makeKeys(for: cluster, clients: client, admins: admins, in: out)
            for name in cluster.devices.map(\.name) + client + admins { print(out + "/" + name) }
        }
    }
}

/// Writes every board's and client's `secret` and `peers` into `directory`/NAME (see `Keys`), nothing on failure.
func makeKeys(for cluster: Cluster, clients: [String], admins: [String], in directory: String) throws {
    let fm = FileManager.default
    if fm.fileExists(atPath: directory) {
        throw CommandFailure(description: "\(directory) already exists; keys are never overwritten (give a new --out)")
    }
    let names = cluster.devices.map(\.name) + clients + admins
    if let repeated = Dictionary(grouping: names, by: { $0 }).first(where: { $0.value.count > 1 })?.key {
        throw CommandFailure(description: "the name '\(repeated)' is used twice among boards and clients")
    }
    if let bad = names.first(where: { $0.isEmpty || $0.contains(where: { $0 == " " || $0 == "/" || $0 == ":" }) }) {
        throw CommandFailure(description: "'\(bad)' cannot name a key (no spaces, slashes or colons)")
    }
    var pairs: [String: CurveKeypair] = [:]
    for name in names { pairs[name] = try CurveKeypair.generate() }
    let leader = cluster.devices[cluster.leader].name
    func peer(_ role: Keyring.Role, _ name: String) -> Keyring.Peer {
        Keyring.Peer(role: role, name: name, publicKey: pairs[name]!.publicKey)
    }
    // Written beside the target and renamed into place, so a failure leaves no half a key set.
    let staging = directory + ".partial-\(getpid())"
    try? fm.removeItem(atPath: staging)
    defer { try? fm.removeItem(atPath: staging) }
    for name in names {
        let peers: [Keyring.Peer]
        if name == leader {
            peers =
                cluster.devices.map(\.name).filter { $0 != leader }.map { peer(.worker, $0) }
                + clients.map { peer(.client, $0) } + admins.map { peer(.admin, $0) }
        } else {
            peers = [peer(.leader, leader)]
        }
        let dir = staging + "/" + name
        try fm.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let secret = dir + "/secret"
        guard
            fm.createFile(
                atPath: secret, contents: Data(Keyring.secretFile(name: name, keys: pairs[name]!).utf8),
                attributes: [.posixPermissions: 0o600])
        else { throw CommandFailure(description: "cannot write \(secret)") }
        try writeAtomically(Data(Keyring.peersFile(name: name, peers: peers).utf8), to: dir + "/peers")
    }
    do { try fm.moveItem(atPath: staging, toPath: directory) } catch {
        throw CommandFailure(description: "cannot create \(directory): \(error.localizedDescription)")
    }
}

/// How a client proves who it is to a leader: its keys, or --insecure for a leader started with --insecure.
struct ClientKeyOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
            "A client's key directory from `iop keys` (DIR/NAME; default: $IOP_KEYS).", valueName: "dir"))
    var keys: String?
    @Flag(name: .long, help: "Send plain, unauthenticated frames (only a leader started with --insecure takes them).")
    var insecure = false

    func validate() throws {
        if insecure && keys != nil { throw ValidationError("give --keys DIR or --insecure, not both") }
    }

    func load() throws -> Keyring? {
        if insecure { return nil }
        guard let dir = keys ?? ProcessInfo.processInfo.environment["IOP_KEYS"] else {
            throw CommandFailure(
                description: "no client keys: give --keys DIR (made by `iop keys`), or --insecure for a leader "
                    + "started with --insecure")
        }
        do { return try Keyring.load(directory: dir) } catch { throw CommandFailure(description: error.message) }
    }
}
