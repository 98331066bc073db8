import Foundation
import IOPModel
import IOPNet
import IOPNode
import IOPWire
import TestSupport
import Testing

/// CURVE keys, strangers and forged frames, on real iop-node processes.
@Suite(.timeLimit(.minutes(10))) struct SecurityTests {
    static let cluster = PlanCLITests.clusters + "/four-pi4-wifi.json"

    /// `iop keys`: each identity's own secret (mode 0600, never printed), and peers by role as the leader's
    /// role table says; the public keys listed are those of the secrets (checked with libzmq's zmq_curve_public).
    @Test func keysGiveEachBoardItsSecretAndOnlyItsPeers() throws {
        let dir = temporaryPath("keys-four")
        try? FileManager.default.removeItem(atPath: dir)
        let r = try runIOP(["keys", "--cluster", Self.cluster, "--out", dir, "--client", "alice"])
        #expect(r.status == 0, "\(r.stderr)")
        let names = ["pi4-a", "pi4-b", "pi4-c", "pi4-d", "alice", "operator"]
        var publicKeys: [String: [UInt8]] = [:]
        for name in names {
            let attributes = try FileManager.default.attributesOfItem(atPath: "\(dir)/\(name)/secret")
            #expect((attributes[.posixPermissions] as? Int) == 0o600, "\(name)/secret")
            let keys = try Keyring.load(directory: "\(dir)/\(name)")
            #expect(keys.name == name)
            #expect(CurveKeypair.publicKey(of: keys.own.secretKey) == keys.own.publicKey)
            let secretText = String(decoding: Z85.encode(keys.own.secretKey)!, as: UTF8.self)
            #expect(!r.stdout.contains(secretText) && !r.stderr.contains(secretText), "a secret key was printed")
            publicKeys[name] = keys.own.publicKey
        }
        func peers(_ name: String) throws -> [String] {
            try Keyring.load(directory: "\(dir)/\(name)").peers.map { p in
                #expect(p.publicKey == publicKeys[p.name], "\(name) lists a wrong key for \(p.name)")
                return p.userID
            }
        }
        // The leader (pi4-a, as the cluster file says) talks to every worker and client; the others only to it.
        #expect(
            try peers("pi4-a") == ["worker:pi4-b", "worker:pi4-c", "worker:pi4-d", "client:alice", "admin:operator"])
        for name in ["pi4-b", "pi4-c", "pi4-d", "alice", "operator"] { #expect(try peers(name) == ["leader:pi4-a"]) }
        // Keys are never overwritten.
        let before = try String(contentsOfFile: dir + "/pi4-b/secret", encoding: .utf8)
        let again = try runIOP(["keys", "--cluster", Self.cluster, "--out", dir])
        #expect(again.status != 0 && again.stderr.contains("already exists"), "\(again.stderr)")
        #expect(try String(contentsOfFile: dir + "/pi4-b/secret", encoding: .utf8) == before)
    }

    /// A node without keys refuses to start, naming the way out.
    @Test func aNodeWithoutKeysRefusesToStart() throws {
        let worker = try NodeProcess(
            [
                "worker", "--name", "w", "--listen", "tcp://127.0.0.1:*", "--leader", "tcp://127.0.0.1:1",
                "--memory-budget", "8MiB",
            ], environment: ["IOP_INSECURE": ""])
        #expect(worker.exitStatus(within: 10) == 1)
        #expect(worker.stderr.contains("no keys for board 'w': give --keys DIR"), "\(worker.stderr)")
    }

    /// A live three-board cluster with CURVE: 100,000 frames at every port — random, truncated, bit-flipped and
    /// forged well-formed frames of every kind (shutdown included) — from a stranger's key, from plain sockets, and
    /// from a real client's key (which may only send requests, and may not stop the cluster). Strangers' handshakes
    /// are refused, the client's frames are rejected and counted, no node leaves, and the answers stay exact.
    @Test func strangersAndForgedFramesChangeNothing() throws {
        let dir = temporaryPath("fuzz-bundle"), keys = temporaryPath("fuzz-keys")
        try? FileManager.default.removeItem(atPath: keys)
        let compiled = try runIOP(["compile", "--model", "lenet5", "--nodes", "3", "--planner", "oc", "--out", dir])
        try #require(compiled.status == 0, "\(compiled.stderr)")
        let made = try runIOP(["keys", "--nodes", "3", "--out", keys, "--client", "alice"])
        try #require(made.status == 0, "\(made.stderr)")
        let leader = try NodeProcess(
            [
                "leader", "--bundle", dir, "--listen", "tcp://127.0.0.1:*", "--requests", "tcp://127.0.0.1:*",
                "--timeout-ms", "20000", "--keys", keys + "/node0",
            ], environment: [:])
        let leaderEndpoint = try #require(leader.waitLine(prefix: "listening ", seconds: 20), "\(leader.stderr)")
        let workers = try (1...2).map { i in
            try NodeProcess(
                [
                    "worker", "--name", "node\(i)", "--listen", "tcp://127.0.0.1:*", "--leader", leaderEndpoint,
                    "--memory-budget", "64MiB", "--keys", keys + "/node\(i)",
                ], environment: [:])
        }
        let requests = try #require(leader.waitLine(prefix: "ready ", seconds: 20), "\(leader.stderr)")
        let workerEndpoints = try workers.map { w in
            let line = try #require(w.stderr.split(separator: "\n").first { $0.contains(" listening on ") })
            return String(line.split(separator: " ")[5].dropLast())
        }

        // Answers before the attack, from the admin's key.
        var rng = SplitMix64(seed: 77)
        let inputs = (0..<3).map { _ in (0..<1024).map { _ in Float(rng.nextUnit() * 2 - 1) } }
        func answers() throws -> [[Float]] {
            try inputs.enumerated().map { k, x in
                let input = temporaryPath("fuzz-x\(k).npy"), output = temporaryPath("fuzz-y\(k).npy")
                try NPY.write(NPY.Array(shape: [1, 1, 32, 32], values: x), path: input)
                let r = try runIOP([
                    "request", "--leader", requests, "--input", input, "--output", output, "--keys", keys + "/operator",
                ])
                try #require(r.status == 0, "\(r.stderr)")
                return try NPY.read(path: output).values
            }
        }
        let before = try answers()

        // Who attacks, and where: every port, each with the server's (public) key known to the attacker.
        let alice = try Keyring.load(directory: keys + "/alice")
        let serverKeys = try (0...2).map { try Keyring.load(directory: keys + "/node\($0)").own.publicKey }
        let ports =
            [(requests, serverKeys[0]), (leaderEndpoint, serverKeys[0])]
            + zip(workerEndpoints, serverKeys[1...]).map { ($0, $1) }
        let context = try Context()
        let stranger = try CurveKeypair.generate()
        var attackers: [(socket: Socket, delivers: Bool)] = []
        for (k, (endpoint, serverKey)) in ports.enumerated() {
            for identity in [alice.own, stranger, nil] as [CurveKeypair?] {
                let s = try Socket(context, .push)
                if let identity { try s.makeCurveClient(identity, server: serverKey) }
                try s.setTimeouts(sendMs: identity == alice.own && k == 0 ? 2000 : 0, receiveMs: 0)
                try s.connect(endpoint)
                // Only the client's key on the request port gets through its handshake.
                attackers.append((s, identity == alice.own && k == 0))
            }
        }
        usleep(500_000)
        var fuzz = XorShift(state: 0x5EED_F00D)
        var delivered = 0, attempted = 0
        let kinds = (1...13).compactMap { MessageKind(rawValue: UInt8($0)) }
        for i in 0..<100_000 {
            let frame = forgedFrame(i, kinds: kinds, rng: &fuzz)
            let (socket, delivers) = attackers[i % 5 == 0 ? (i / 5) % attackers.count : 0]
            attempted += 1
            do {
                try frame.withUnsafeBytes { try socket.send($0) }
                delivered += 1
            } catch {
                #expect(!delivers, "the client's frames should reach the request port: \(error)")
            }
        }
        usleep(1_000_000)

        // Every node is still there, the answers are bit for bit what they were, and the leader counted it all.
        #expect(leader.process.isRunning, "\(leader.stderr)")
        for w in workers { #expect(w.process.isRunning, "\(w.stderr)") }
        #expect(try answers() == before)
        let stats = try runIOP(["request", "--leader", requests, "--stats", "--json", "--keys", keys + "/operator"])
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(stats.stdout.utf8)) as? [String: Any])
        let rejected = obj["rejected_frames"] as? Int ?? 0, refused = obj["rejected_handshakes"] as? Int ?? 0
        #expect(delivered >= 80_000, "\(delivered) of \(attempted) frames delivered")
        #expect(rejected >= delivered * 99 / 100, "\(rejected) of \(delivered) delivered frames rejected")
        #expect(refused > 0, "no refused handshake counted on the leader's ports")
        for w in workers { #expect(w.stderr.contains("refused a handshake"), "\(w.stderr)") }
        #expect(obj["inferences"] as? Int == 6)

        kill(leader.process.processIdentifier, SIGTERM)
        #expect(leader.exitStatus(within: 15) == 0, "\(leader.stderr)")
        for w in workers { #expect(w.exitStatus(within: 15) == 0, "\(w.stderr)") }
    }
}

/// One attack frame: pure noise, a truncated or bit-flipped valid frame, or a well-formed frame of any kind
/// (shutdown and request included) with a random id, step and payload.
func forgedFrame(_ i: Int, kinds: [MessageKind], rng: inout XorShift) -> [UInt8] {
    func bytes(_ n: Int) -> [UInt8] { (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) } }
    let kind = kinds[Int.random(in: 0..<kinds.count, using: &rng)]
    let payload =
        kind == .shutdown || kind == .stats && Bool.random(using: &rng)
        ? [] : bytes(Int.random(in: 0...64, using: &rng))
    var frame = [UInt8](repeating: 0, count: MessageHeader.size + payload.count)
    _ = try? payload.withUnsafeBytes { p in
        try frame.withUnsafeMutableBytes {
            try Wire.encode(
                kind: kind, requestID: UInt64.random(in: 0...9, using: &rng),
                step: UInt32.random(in: 0...3, using: &rng),
                payload: p, into: $0)
        }
    }
    switch i % 4 {
    case 0: return bytes(Int.random(in: 0...100, using: &rng))
    case 1: return Array(frame.prefix(Int.random(in: 0..<frame.count, using: &rng)))
    case 2:
        frame[Int.random(in: 0..<frame.count, using: &rng)] ^= 1 << UInt8.random(in: 0...7, using: &rng)
        return frame
    default: return frame
    }
}

/// Seeded, so the attack is the same every run.
struct XorShift: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state ^= state << 13; state ^= state >> 7; state ^= state << 17
        return state
    }
}
