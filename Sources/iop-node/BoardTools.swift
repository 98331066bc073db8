// `iop-node profile` and `iop-node probe`: the board measures itself for the planner
// (docs/planner.md, "Profiles"). Self-contained flag handling, apart from the serving roles'.
import CIOPSystem
import IOPCore
import IOPNet
import IOPNode
import IOPProfile

let boardToolsUsage = """
    usage: iop-node profile [--threads N] [--min-ms MS]
           iop-node probe --serve --listen ENDPOINT [--once [--timeout-ms MS]] [--keys DIR]
           iop-node probe --connect ENDPOINT --listen ENDPOINT [--keys DIR --peer NAME] [--sizes B,B,...]
                          [--burst-bytes N] [--timeout-ms MS]
    profile times the kernels this board runs (convs by kind: conv_row, conv_3x3, conv_winograd, conv_1x1,
    conv_strided, conv_depthwise; linear layers, which stream their weights; pools; bias and activation; the leader's
    partial-sum add; the copy of a received activation), each at a small and a large size for at least
    --min-ms (default 250) of wall time, with --threads N (default 1, as the worker runs), and prints the
    profile as JSON on stdout (progress on stderr), with the board's CPU share and how long it runs at full speed
    after idling (a board under a CPU quota). Run it the way the node runs: under the board's CPU share.
    probe measures a link with real ZeroMQ messages: run --serve on one board (a worker), then --connect to it
    from the other (the leader), which prints JSON: one-way latency (half the median of 20 ping-pongs), the
    bandwidth of the slower direction, and the CPU nanoseconds per byte each end spends sending and
    receiving, from bursts of about --burst-bytes (default 4 MiB) at each of --sizes (default
    1024,65536,1048576) pushed and pulled. --once makes the server exit after one client, or after
    --timeout-ms (default 30000) with none; a client gives up after --timeout-ms of silence. With --keys
    DIR (the board's keys from `iop keys`) the probe runs over CURVE as the cluster's links do, so
    encryption is in the CPU per byte: the server admits its leader only, the client names the worker it
    probes with --peer. `iop profile --cluster FILE` reads both (--from DIR), or runs both on the boards
    over ssh (--ssh).
    """

/// Runs `profile` or `probe` when the first argument names one; false for the serving roles.
func runBoardTool() -> Bool {
    guard iop_argc() >= 2 else { return false }
    let argv = iop_argv()!
    let tool = String(cString: argv[1]!)
    guard tool == "profile" || tool == "probe" else { return false }
    var flags: [(key: String, value: String)] = []
    var i = 2
    while i < Int(iop_argc()) {
        let key = String(cString: argv[i]!)
        if key == "--help" || key == "-h" {
            print(boardToolsUsage)
            return true
        }
        guard key.hasPrefix("--"), key.count > 2 else { toolFail("unexpected argument '" + key + "'") }
        let next = i + 1 < Int(iop_argc()) ? String(cString: argv[i + 1]!) : "--"
        if next.hasPrefix("--") {
            flags.append((String(key.dropFirst(2)), "1")); i += 1
        } else {
            flags.append((String(key.dropFirst(2)), next)); i += 2
        }
    }
    let tools = ToolFlags(tool: tool, flags: flags)
    if tool == "profile" { runProfile(tools) } else { runProbe(tools) }
    return true
}

func toolFail(_ message: String) -> Never {
    var line = "iop-node: " + message + "\n" + boardToolsUsage + "\n"
    _ = line.withUTF8 { CIOPSystem.write(2, $0.baseAddress, $0.count) }
    exit(2)
}

func progressLine(_ message: String) {
    var line = "iop-node: " + message + "\n"
    _ = line.withUTF8 { CIOPSystem.write(2, $0.baseAddress, $0.count) }
}

struct ToolFlags {
    let tool: String
    let flags: [(key: String, value: String)]

    func value(_ name: String) -> String? { flags.last { $0.key == name }?.value }
    func has(_ name: String) -> Bool { value(name) != nil }
    func required(_ name: String) -> String {
        guard let v = value(name) else { toolFail(tool + " needs --" + name) }
        return v
    }
    func positive(_ name: String, default fallback: Int) -> Int {
        guard let text = value(name) else { return fallback }
        guard let n = Int(text), n >= 1 else {
            toolFail("--" + name + " must be a positive integer, got '" + text + "'")
        }
        return n
    }
    func only(_ names: [String]) {
        for f in flags where !names.contains(f.key) { toolFail("unknown flag --" + f.key + " for " + tool) }
    }
}

func runProfile(_ flags: ToolFlags) {
    flags.only(["threads", "min-ms"])
    let threads = flags.positive("threads", default: 1)
    let start = iop_monotonic_ns()
    let cpu = CPUAllowance.measure()
    progressLine(
        "profile: CPU share " + decimal(cpu.share) + ", " + decimal(cpu.burstMs, places: 3)
            + " ms at full speed after idling, period " + decimal(cpu.periodMs, places: 3) + " ms")
    do throws(CoreError) {
        let timings = try KernelProfiler.measure(
            threads: threads, minimumMs: flags.positive("min-ms", default: 250), share: cpu.share
        ) {
            progressLine(
                "profile: " + $0.kernel.rawValue + " " + decimal($0.work, places: 0) + " "
                    + $0.kernel.workUnit.rawValue + "s: " + decimal($0.microseconds, places: 1) + " us")
        }
        let seconds = Double(iop_monotonic_ns() - start) / 1e9
        print(ProfileJSON.kernels(threads: threads, seconds: seconds, cpu: cpu, timings: timings))
    } catch {
        toolFail("profile: " + error.message)
    }
}

func runProbe(_ flags: ToolFlags) {
    let context: Context
    do throws(NetError) { context = try Context() } catch { toolFail("probe: " + error.message) }
    defer { context.terminate() }
    if flags.has("serve") {
        flags.only(["serve", "listen", "once", "largest-bytes", "keys", "timeout-ms"])
        let listen = flags.required("listen")
        let keys = probeKeys(flags, context: context) { keyring in
            guard let leader = keyring.leader else {
                toolFail("probe --serve: " + flags.required("keys") + "/peers names no leader to admit")
            }
            return leader
        }
        do throws(ProbeError) {
            try LinkProbe.serve(
                context: context, listen: listen, keys: keys,
                largestBytes: flags.positive("largest-bytes", default: 16 << 20),
                once: flags.has("once"), timeoutMs: Int32(flags.positive("timeout-ms", default: 30000))
            ) { progressLine("probe: serving " + $0) }
        } catch { toolFail("probe --serve " + listen + ": " + error.message) }
        return
    }
    flags.only(["connect", "listen", "sizes", "burst-bytes", "timeout-ms", "keys", "peer"])
    guard let peer = flags.value("connect") else { toolFail("probe needs --serve (on a worker) or --connect ENDPOINT") }
    let keys = probeKeys(flags, context: context) { keyring in
        let name = flags.value("peer") ?? ""
        guard let worker = keyring.peer(named: name, role: .worker) else {
            toolFail("probe --connect --keys: --peer must name a worker in " + flags.required("keys") + "/peers")
        }
        return worker
    }
    var sizes: [Int] = []
    for part in (flags.value("sizes") ?? "1024,65536,1048576").split(separator: ",") {
        guard let n = Int(part), n >= 16, n <= 16 << 20 else {
            toolFail("--sizes must be byte counts from 16 to 16777216, got '" + String(part) + "'")
        }
        sizes.append(n)
    }
    do throws(ProbeError) {
        let result = try LinkProbe.measure(
            context: context, peer: peer, listen: flags.required("listen"), keys: keys, sizes: sizes,
            burstBytes: flags.positive("burst-bytes", default: 4 << 20), pings: 20,
            timeoutMs: Int32(flags.positive("timeout-ms", default: 30000)))
        print(ProfileJSON.link(peer: peer, curve: keys != nil, result))
    } catch { toolFail("probe --connect " + peer + ": " + error.message) }
}

/// With --keys DIR: this board's keypair, and the context's gatekeeper admitting the one peer `choose` picks
/// on the probe's domain. Nil without --keys: a plain probe.
func probeKeys(_ flags: ToolFlags, context: Context, choose: (Keyring) -> Keyring.Peer) -> LinkProbe.Keys? {
    guard let directory = flags.value("keys") else { return nil }
    let keyring: Keyring
    do throws(KeyringError) { keyring = try Keyring.load(directory: directory) } catch {
        toolFail("probe --keys: " + error.message)
    }
    let peer = choose(keyring)
    do throws(NetError) {
        try context.guarded().allow(peer.publicKey, domain: LinkProbe.domain, as: peer.userID)
    } catch { toolFail("probe: cannot start the key check: " + error.message) }
    return LinkProbe.Keys(own: keyring.own, peer: peer.publicKey)
}
