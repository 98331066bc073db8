import Foundation
import IOPModel
import TestSupport
import Testing

/// A board lost and back: the leader moves to the plan compiled without it, and back to the full plan.
@Suite(.timeLimit(.minutes(10))) struct ResilienceTests {
    func run(_ args: [String]) throws -> [String: Any] {
        let r = try runIOP(
            ["cluster", "--model", "lenet5", "--nodes", "4", "--planner", "oc", "--check", "--json"] + args)
        #expect(r.status == 0, "\(r.stderr)")
        return try #require(
            try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], "\(r.stdout)")
    }

    /// Killed after request 10 and started again a second later: at most a few requests fail, the service goes on
    /// within 2 s, the board comes back into the full plan, and every answer equals single-board inference.
    @Test func aKilledWorkerIsSurvivedAndRejoins() throws {
        let obj = try run(["--requests", "60", "--interval-ms", "50", "--fail", "node2@10:1000"])
        let answered = obj["answered"] as? Int ?? -1, failed = obj["failed"] as? Int ?? -1
        #expect(answered + failed >= 60 && failed <= 3, "\(obj)")
        let failover = try #require(obj["failover_ms"] as? Double, "never answered without node2: \(obj)")
        #expect(failover < 2000, "\(obj)")
        let rejoin = try #require(obj["rejoin_ms"] as? Double, "never back on the full plan: \(obj)")
        #expect(rejoin < 10_000, "\(obj)")
        #expect((obj["max_gap_ms"] as? Double ?? .infinity) < 2000, "\(obj)")
        #expect((obj["max_scaled_error"] as? Double ?? 1) <= 1e-4, "\(obj)")
        // Back on the full plan, every board holds its arena again.
        let devices = try #require(obj["devices"] as? [[String: Any]])
        #expect(devices.allSatisfy { ($0["arena_bytes"] as? Int ?? 0) == ($0["planned_peak_bytes"] as? Int ?? -1) })
    }

    /// Lost for good: the survivors carry on, exactly, and no rejoin is reported.
    @Test func aWorkerLostForGoodLeavesTheSurvivorsServing() throws {
        let obj = try run(["--requests", "30", "--fail", "node1@5"])
        #expect((obj["answered"] as? Int ?? 0) >= 28 && obj["failover_ms"] != nil && obj["rejoin_ms"] == nil, "\(obj)")
        #expect((obj["max_scaled_error"] as? Double ?? 1) <= 1e-4, "\(obj)")
    }

    /// `iop compile` writes a plan for the loss of each worker and lists them in the manifest.
    @Test func compileWritesAFallbackPerWorker() throws {
        let dir = temporaryPath("fallbacks")
        try? FileManager.default.removeItem(atPath: dir)
        let r = try runIOP(["compile", "--model", "lenet5", "--nodes", "3", "--planner", "oc", "--out", dir])
        #expect(r.status == 0, "\(r.stderr)")
        let manifest = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/manifest.json")))
                as? [String: Any])
        let fallbacks = try #require(manifest["fallbacks"] as? [[String: Any]])
        #expect(fallbacks.map { $0["lost"] as? String } == ["node1", "node2"])
        for f in fallbacks {
            let file = try #require(f["file"] as? String)
            #expect(FileManager.default.fileExists(atPath: dir + "/" + file), "\(file)")
        }
    }

    /// A leader killed and started again with the same bundle finds its workers still loaded: they kept their
    /// arenas when its link dropped, are not sent their weights again, and answer exactly as before.
    @Test func aRestartedLeaderFindsItsWorkersLoaded() throws {
        let dir = temporaryPath("restart-bundle"), keys = temporaryPath("restart-keys")
        let compiled = try runIOP(["compile", "--model", "lenet5", "--nodes", "3", "--planner", "oc", "--out", dir])
        try #require(compiled.status == 0, "\(compiled.stderr)")
        try? FileManager.default.removeItem(atPath: keys)
        try #require(try runIOP(["keys", "--nodes", "3", "--out", keys]).status == 0)
        let input = temporaryPath("restart-x.npy")
        try NPY.write(
            NPY.Array(shape: [1, 1, 32, 32], values: (0..<1024).map { Float($0 % 17) / 17 - 0.5 }), path: input)
        let leaderEndpoint = "tcp://127.0.0.1:\(freeLoopbackPort())"
        let workers = try (1...2).map { i in
            try NodeProcess(
                [
                    "worker", "--name", "node\(i)", "--listen", "tcp://127.0.0.1:*", "--leader", leaderEndpoint,
                    "--memory-budget", "64MiB", "--keys", keys + "/node\(i)",
                ], environment: [:])
        }
        var answers: [[Float]] = []
        for round in 1...2 {
            let (leader, requests) = try keyedLeader(dir, listen: leaderEndpoint, keys: keys, round: round)
            let out = temporaryPath("restart-y\(round).npy")
            let r = try runIOP([
                "request", "--leader", requests, "--input", input, "--output", out, "--keys", keys + "/operator",
            ])
            #expect(r.status == 0, "round \(round): \(r.stderr)")
            answers.append(try NPY.read(path: out).values)
            if round == 2 {
                #expect(leader.stderr.contains("2 workers kept their arenas from before"), "\(leader.stderr)")
                kill(leader.process.processIdentifier, SIGTERM)
                #expect(leader.exitStatus(within: 15) == 0, "\(leader.stderr)")
            } else {
                kill(leader.process.processIdentifier, SIGKILL)
                _ = leader.exitStatus(within: 5)
            }
        }
        #expect(answers[0] == answers[1] && answers[0].count == 10)
        for w in workers {
            #expect(w.stderr.contains("serving the arena as loaded"), "\(w.stderr)")
            #expect(w.exitStatus(within: 15) == 0, "\(w.stderr)")
        }
    }

    /// A leader of `bundle` on `listen` with node0's keys, once it is ready; and its request endpoint.
    func keyedLeader(_ bundle: String, listen: String, keys: String, round: Int) throws -> (NodeProcess, String) {
        let leader = try NodeProcess(
            [
                "leader", "--bundle", bundle, "--listen", listen, "--requests", "tcp://127.0.0.1:*",
                "--timeout-ms", "20000", "--keys", keys + "/node0",
            ], environment: [:])
        let requests = try #require(leader.waitLine(prefix: "ready ", seconds: 30), "round \(round): \(leader.stderr)")
        return (leader, requests)
    }

    /// A worker with --rejoin whose leader stops registers again on the same port (it used to fail to bind it)
    /// and serves the next leader.
    @Test func aRejoiningWorkerServesTheNextLeader() throws {
        let dir = temporaryPath("rejoin-bundle"), keys = temporaryPath("rejoin-keys")
        let compiled = try runIOP(["compile", "--model", "lenet5", "--nodes", "2", "--planner", "oc", "--out", dir])
        try #require(compiled.status == 0, "\(compiled.stderr)")
        // Keys, so a leader of another test that happens to take the port cannot be registered with.
        try? FileManager.default.removeItem(atPath: keys)
        try #require(try runIOP(["keys", "--nodes", "2", "--out", keys]).status == 0)
        let leaderEndpoint = "tcp://127.0.0.1:\(freeLoopbackPort())"
        let worker = try NodeProcess(
            [
                "worker", "--name", "node1", "--listen", "tcp://127.0.0.1:\(freeLoopbackPort())", "--leader",
                leaderEndpoint, "--memory-budget", "64MiB", "--rejoin", "--keys", keys + "/node1",
            ], environment: [:])
        for round in 1...2 {
            let (leader, requests) = try keyedLeader(dir, listen: leaderEndpoint, keys: keys, round: round)
            let stats = try runIOP(["request", "--leader", requests, "--stats", "--json", "--keys", keys + "/operator"])
            #expect(stats.status == 0 && stats.stdout.contains("\"node1\""), "round \(round): \(stats.stderr)")
            kill(leader.process.processIdentifier, SIGTERM)
            #expect(leader.exitStatus(within: 15) == 0, "\(leader.stderr)")
        }
        #expect(worker.process.isRunning, "\(worker.stderr)")
        #expect(!worker.stderr.contains("Address already in use"), "\(worker.stderr)")
        kill(worker.process.processIdentifier, SIGTERM)
        #expect(worker.exitStatus(within: 10) == 0, "\(worker.stderr)")
    }
}
