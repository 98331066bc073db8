// iop-node: the agent every board runs. One binary, two roles:
//   iop-node worker --name N --listen EP --leader EP --memory-budget SIZE [--threads T]
//   iop-node leader --bundle FILE --listen EP --requests EP [--threads T]
// Every flag may instead come from the environment (IOP_NAME, IOP_LISTEN,
// IOP_LEADER, IOP_MEMORY_BUDGET, IOP_THREADS, IOP_BUNDLE, IOP_REQUESTS), as
// systemd's EnvironmentFile= provides. Logs go to stderr with sd-daemon
// priority prefixes; the leader prints its endpoints on stdout for tools.
import IOPCore
import IOPNet
import IOPNode
import IOPWire
#if canImport(Glibc)
import Glibc
#endif

let usage = """
usage: iop-node worker --name NAME --listen ENDPOINT --leader ENDPOINT --memory-budget SIZE [--threads N]
       iop-node leader --bundle FILE --listen ENDPOINT --requests ENDPOINT [--threads N] [--timeout-ms MS]
Flags may come from IOP_NAME, IOP_LISTEN, IOP_LEADER, IOP_MEMORY_BUDGET, IOP_THREADS, IOP_BUNDLE, IOP_REQUESTS, IOP_TIMEOUT_MS.
Endpoints look like tcp://HOST:PORT; port * picks a free one. Sizes: 512MiB, 1GiB, ...
"""

func log(_ level: Int, _ message: String) {
    let line = "<\(level)>iop-node: \(message)\n"
    _ = line.withCString { write(2, $0, strlen($0)) }
}

func fail(_ message: String) -> Never {
    log(3, message)
    exit(1)
}

var arguments = Array(CommandLine.arguments.dropFirst())
if arguments.isEmpty || arguments.contains("--help") || arguments.contains("-h") {
    print(usage)
    exit(arguments.isEmpty ? 2 : 0)
}
let role = arguments.removeFirst()
let flags: [String: String] = {
    var out: [String: String] = [:]
    var i = 0
    while i < arguments.count {
        let key = arguments[i]
        guard key.hasPrefix("--"), i + 1 < arguments.count else { fail("unexpected argument '\(key)'\n\(usage)") }
        out[String(key.dropFirst(2))] = arguments[i + 1]
        i += 2
    }
    return out
}()

/// `memory-budget` -> `IOP_MEMORY_BUDGET`.
func environmentName(_ flag: String) -> String {
    "IOP_" + String(flag.uppercased().map { $0 == "-" ? "_" : $0 })
}
@MainActor func flag(_ name: String) -> String? {
    if let v = flags[name] { return v }
    return getenv(environmentName(name)).map { String(cString: $0) }
}
@MainActor func required(_ name: String) -> String {
    guard let v = flag(name), !v.isEmpty else { fail("missing --\(name) (or \(environmentName(name)))") }
    return v
}
let threads: Int = {
    guard let t = flag("threads") else { return 1 }
    guard let n = Int(t), n >= 1 else { fail("--threads must be a positive integer, got '\(t)'") }
    return n
}()

let context: Context
do { context = try Context() } catch { fail(error.message) }

switch role {
case "worker":
    let name = required("name")
    guard let budget = parseByteSize(required("memory-budget")) else { fail("--memory-budget must be a size like 512MiB, got '\(required("memory-budget"))'") }
    do {
        let worker = try Worker(context: context, name: name, listen: required("listen"), leader: required("leader"),
                                budgetBytes: budget, threads: threads)
        log(6, "worker \(name) listening on \(worker.endpoint), budget \(budget) bytes")
        try worker.run()
        log(6, "worker \(name) stopped after \(worker.inferencesServed) inferences (arena \(worker.arenaBytes) bytes)")
    } catch { fail("worker \(name): \(error.message)") }

case "leader":
    let path = required("bundle")
    guard let file = fopen(path, "rb") else { fail("\(path): cannot open bundle") }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let n = fread(&chunk, 1, chunk.count, file)
        if n <= 0 { break }
        bytes += chunk[0..<n]
    }
    fclose(file)
    let bundle: Bundle
    do { bundle = try bytes.withUnsafeBytes { b throws(WireError) in try Bundle.decode(b) } } catch {
        fail("\(path): not a valid iop bundle (\(error)); recompile it with `iop compile`")
    }
    do {
        let timeout = Int32(flag("timeout-ms").flatMap { Int($0) } ?? 30_000)
        let leader = try Leader(context: context, listen: required("listen"),
                                boards: bundle.boards.map { .init(name: $0.name, endpoint: $0.endpoint) },
                                leaderIndex: bundle.leaderIndex, segments: bundle.segments, timeoutMs: timeout)
        print("listening \(leader.endpoint)")
        fflush(nil)
        try leader.start(threads: threads)
        let requests = try Socket(context, .pull)
        try requests.bind(required("requests"))
        print("ready \(try requests.boundEndpoint())")
        fflush(nil)
        log(6, "leader ready: \(bundle.boards.count) boards, \(bundle.segments.count) segments")
        do { try leader.serve(requests, context: context) } catch {
            fail("leader: \(error.message)")
        }
        for (k, b) in bundle.boards.enumerated() {
            print("stats \(b.name) arena_bytes=\(leader.arenaBytes[k]) bytes_sent=\(leader.bytesSent[k]) messages=\(leader.messagesSent[k]) inferences=\(leader.inferences)")
        }
        fflush(nil)
    } catch let e as NodeError {
        fail("leader: \(e.message)")
    } catch let e as NetError {
        fail("leader: \(e.message)")
    } catch {
        fail("leader: \(error)")
    }

default:
    fail("unknown role '\(role)'\n\(usage)")
}
