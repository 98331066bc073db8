import Foundation
import IOPCore

/// One board of the cluster, as the user describes it.
public struct DeviceSpec: Equatable, Sendable {
    public var name: String
    public var endpoint: String
    /// Sustained compute for CNN kernels, GFLOP/s.
    public var gflops: Double
    public var memoryBudgetBytes: Int
    public var bandwidthMbps: Double
    /// Cost of one message on the link: connection setup plus latency, ms.
    public var setupMs: Double
    public var threads: Int
    /// Measured on the board itself (`iop profile`): when present the cost model uses it instead of
    /// `gflops`, `bandwidthMbps` and `setupMs`.
    public var profile: BoardProfile?

    public init(
        name: String, endpoint: String, gflops: Double, memoryBudgetBytes: Int, bandwidthMbps: Double, setupMs: Double,
        threads: Int, profile: BoardProfile? = nil
    ) {
        self.name = name; self.endpoint = endpoint; self.gflops = gflops; self.memoryBudgetBytes = memoryBudgetBytes
        self.bandwidthMbps = bandwidthMbps; self.setupMs = setupMs; self.threads = threads; self.profile = profile
    }
}

/// The boards and which one leads (holds the input, gathers the result).
public struct Cluster: Equatable, Sendable {
    public var devices: [DeviceSpec]
    public var leader: Int

    public init(devices: [DeviceSpec], leader: Int) { self.devices = devices; self.leader = leader }

    /// Every board carries a measured profile: the plan uses the calibrated model.
    public var isProfiled: Bool { devices.allSatisfy { $0.profile != nil } }

    public static func load(path: String) throws -> Cluster {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ClusterError(path: path, message: "cannot read file")
        }
        do { return try parse(data) } catch let e as ClusterError { throw ClusterError(path: path, message: e.message) }
    }

    static let deviceFields: Set<String> = [
        "name", "endpoint", "gflops", "memory", "bandwidth_mbps", "setup_ms", "threads", "profile",
    ]

    /// JSON: `{"leader": "pi-a", "devices": [{"name", "endpoint", "gflops", "memory": "1GiB",
    /// "bandwidth_mbps", "setup_ms", "threads", "profile"}]}`; `profile` is optional (`BoardProfile`).
    public static func parse(_ data: Data) throws -> Cluster {
        func fail(_ m: String) -> ClusterError { ClusterError(path: nil, message: m) }
        guard let root = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw fail("not a JSON object (expected {\"leader\": ..., \"devices\": [...]})")
        }
        for key in root.keys where key != "leader" && key != "devices" {
            throw fail("unknown field '\(key)' at top level (expected leader, devices)")
        }
        guard let list = root["devices"] as? [[String: Any]], !list.isEmpty else {
            throw fail("missing field 'devices' (a non-empty list of boards)")
        }
        var devices: [DeviceSpec] = []
        for (i, d) in list.enumerated() {
            let who = (d["name"] as? String).map { "board '\($0)'" } ?? "board #\(i + 1)"
            for key in d.keys where !deviceFields.contains(key) {
                throw fail("\(who): unknown field '\(key)' (expected \(deviceFields.sorted().joined(separator: ", ")))")
            }
            func string(_ k: String) throws -> String {
                guard let v = d[k] as? String, !v.isEmpty else { throw fail("\(who): missing or empty field '\(k)'") }
                return v
            }
            func positive(_ k: String) throws -> Double {
                guard let v = (d[k] as? NSNumber)?.doubleValue else {
                    throw fail("\(who): missing numeric field '\(k)'")
                }
                guard v > 0, v.isFinite else { throw fail("\(who): field '\(k)' must be positive, got \(v)") }
                return v
            }
            let name = try string("name")
            let endpoint = try string("endpoint")
            guard endpoint.hasPrefix("tcp://"), endpoint.dropFirst(6).contains(":") else {
                throw fail("\(who): field 'endpoint' must look like tcp://host:port, got '\(endpoint)'")
            }
            guard let memText = d["memory"] as? String else {
                throw fail("\(who): missing field 'memory' (for example \"512MiB\" or \"1GiB\")")
            }
            guard let memory = parseSize(memText), memory > 0 else {
                throw fail("\(who): field 'memory' must be a positive size like 512MiB or 1GiB, got '\(memText)'")
            }
            let threads = try positive("threads")
            guard threads == threads.rounded() else { throw fail("\(who): field 'threads' must be a whole number") }
            devices.append(
                DeviceSpec(
                    name: name, endpoint: endpoint, gflops: try positive("gflops"), memoryBudgetBytes: memory,
                    bandwidthMbps: try positive("bandwidth_mbps"), setupMs: try positive("setup_ms"),
                    threads: Int(threads), profile: try d["profile"].map { try BoardProfile.parse($0, board: who) }))
        }
        var seen = Set<String>()
        for d in devices where !seen.insert(d.name).inserted { throw fail("board name '\(d.name)' appears twice") }
        guard let leaderName = root["leader"] as? String else {
            throw fail("missing field 'leader' (the name of one board)")
        }
        guard let leader = devices.firstIndex(where: { $0.name == leaderName }) else {
            throw fail("field 'leader' names '\(leaderName)', which is not a board in 'devices'")
        }
        return Cluster(devices: devices, leader: leader)
    }

    /// `512MiB`, `1GiB`, `1.5GiB`, `300MB`, `4096KiB` or a plain byte count (the nodes' own parser).
    public static func parseSize(_ text: String) -> Int? { parseByteSize(text) }
}

public struct ClusterError: Error, CustomStringConvertible, Equatable {
    public var path: String?
    public var message: String
    public init(path: String?, message: String) { self.path = path; self.message = message }
    public var description: String { (path.map { "\($0): " } ?? "") + message }
}

public func formatBytes(_ b: Int) -> String {
    let d = Double(b)
    if d >= Double(1 << 30) { return String(format: "%.2f GiB", d / Double(1 << 30)) }
    if d >= Double(1 << 20) { return String(format: "%.1f MiB", d / Double(1 << 20)) }
    if d >= Double(1 << 10) { return String(format: "%.1f KiB", d / Double(1 << 10)) }
    return "\(b) B"
}
