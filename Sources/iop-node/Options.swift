import CIOPSystem

let usage = """
    usage: iop-node worker --name NAME --listen ENDPOINT --leader ENDPOINT --memory-budget SIZE [--threads N] [--rejoin]
                           [--timeout-ms MS] (--keys DIR | --insecure)
           iop-node leader --bundle PATH --listen ENDPOINT --requests ENDPOINT [--threads N] [--timeout-ms MS]
                           (--keys DIR | --insecure)
           iop-node profile [--threads N] | iop-node probe (--serve --listen EP | --connect EP --listen EP)
                           (this board's kernel and link measurements for `iop profile`; see their --help)
           iop-node leader --bundle PATH --listen ENDPOINT --audio FILE.wav|- [--realtime] [--deadline-ms MS]
                           [--alerts ENDPOINT [--alerts-key CLIENT]] [--threads N] [--timeout-ms MS]
                           (--keys DIR | --insecure)
    Every flag may come from the environment instead: --memory-budget from IOP_MEMORY_BUDGET, and so on
    (IOP_NAME, IOP_LISTEN, IOP_LEADER, IOP_THREADS, IOP_REJOIN=1, IOP_BUNDLE, IOP_REQUESTS, IOP_TIMEOUT_MS,
    IOP_KEYS), as systemd's EnvironmentFile= provides. Flags win over the environment.
    Every link is authenticated and encrypted (ZeroMQ CURVE): DIR holds this board's `secret` and `peers` files,
    as `iop keys --cluster FILE --out DIR` writes them; without --keys the agent reads them from systemd's
    $CREDENTIALS_DIRECTORY (LoadCredential=). A worker takes frames only from its leader, the leader takes
    requests only from client keys, and only an admin key may stop it; alerts go to the client --alerts-key names
    (default: the first admin). --insecure turns this off, for debugging.
    --heartbeat-ms MS (default 250): libzmq pings every link that often, even while the board computes; a peer
    silent for three intervals is dropped, and the leader moves to the plan compiled without a lost worker
    (fallback-NAME.iop beside the bundle), and back when it returns. A board held to a small CPU share needs a
    longer one: a ping queues behind the weight shards it has yet to take in, and must be answered within three.
    PATH is the directory `iop compile --out` wrote, or the bundle.iop in it.
    Endpoints look like tcp://HOST:PORT (port * picks a free one). Sizes: 512MiB, 1.5GiB, 300MB, ...
    A worker with --rejoin registers again after its leader shuts down, as a board under systemd does.
    --timeout-ms MS (default 30000): how long a leader waits for a board at each step of setup and of an
    inference, and how long a worker first waits for its leader to answer, send its program and each weight shard
    (once registered again, a worker waits for its leader as long as it takes). A leader held to a small CPU share
    may need more to load a large model.
    With --audio the leader classifies a sound stream instead of serving requests (the bundle's model must
    listen, like the zoo's valve): a 16 kHz mono 16-bit WAV file, or - for raw S16LE on standard input
    (arecord -f S16_LE -r 16000 -c 1 -t raw). --realtime paces a file at its sample rate. One JSON line per
    window on stdout: {"t", "score", "alert", "latency_ms", "met"}, and a {"summary": {...}} line at the end.
    The deadline is the hop between windows unless --deadline-ms says otherwise; --alerts pushes each
    alert as a JSON ZeroMQ message to ENDPOINT.
    Under systemd (NOTIFY_SOCKET set) the agent reports READY=1 once its arena is allocated and its
    weight shards are packed into it, a STATUS= line, and watchdog pings when WatchdogSec= is set; \
    SIGTERM stops it cleanly.
    """

/// Logs to stderr with sd-daemon priority prefixes, so journald keeps the level.
enum Log {
    static func error(_ message: String) { write(3, message) }
    static func warning(_ message: String) { write(4, message) }
    static func info(_ message: String) { write(6, message) }

    static func write(_ level: Int, _ message: String) {
        var line = "<" + String(level) + ">iop-node: " + message + "\n"
        _ = line.withUTF8 { CIOPSystem.write(2, $0.baseAddress, $0.count) }
    }
}

func fail(_ message: String) -> Never {
    Log.error(message)
    exit(1)
}

/// Writes a line to stdout at once: tools driving the agent read these.
func announce(_ line: String) {
    print(line)
    fflush(nil)
}

/// Flags as given (`--key value`, or `--key` alone for a switch), then the environment.
struct Options {
    let role: String
    var pairs: [(key: String, value: String)] = []

    /// Parses the process's own arguments; nil role means help was asked for (or nothing given).
    static func fromProcess() -> Options? {
        var arguments: [String] = []
        let argv = iop_argv()!
        if iop_argc() > 1 {
            for i in 1..<Int(iop_argc()) { arguments.append(String(cString: argv[i]!)) }
        }
        guard let role = arguments.first, role != "--help", role != "-h", role != "help" else { return nil }
        var options = Options(role: role)
        var i = 1
        while i < arguments.count {
            let key = arguments[i]
            if key == "--help" || key == "-h" { return nil }
            guard key.hasPrefix("--"), key.count > 2 else {
                fail("unexpected argument '" + key + "' (flags look like --name VALUE)\n" + usage)
            }
            let name = String(key.dropFirst(2))
            if i + 1 < arguments.count && !arguments[i + 1].hasPrefix("--") {
                options.pairs.append((name, arguments[i + 1])); i += 2
            } else {
                options.pairs.append((name, "1")); i += 1
            }
        }
        return options
    }

    init(role: String) { self.role = role }

    /// `memory-budget` -> `IOP_MEMORY_BUDGET`.
    static func environmentName(_ flag: String) -> String {
        var name = Array("IOP_".utf8)
        for b in flag.utf8 {
            if b == UInt8(ascii: "-") {
                name.append(UInt8(ascii: "_"))
            } else if b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z") {
                name.append(b - 32)
            } else {
                name.append(b)
            }
        }
        return String(decoding: name, as: UTF8.self)
    }

    func value(_ name: String) -> String? {
        for p in pairs where p.key == name { return p.value }
        guard let v = getenv(Options.environmentName(name)) else { return nil }
        let s = String(cString: v)
        return s.isEmpty ? nil : s
    }

    func required(_ name: String) -> String {
        guard let v = value(name) else {
            fail("missing --" + name + " (or " + Options.environmentName(name) + ")\n" + usage)
        }
        return v
    }

    func positiveInt(_ name: String, default fallback: Int) -> Int {
        guard let text = value(name) else { return fallback }
        guard let n = Int(text), n >= 1 else { fail("--" + name + " must be a positive integer, got '" + text + "'") }
        return n
    }

    func flag(_ name: String) -> Bool {
        guard let v = value(name) else { return false }
        return v == "1" || v == "yes" || v == "true"
    }

    /// Refuses flags neither role knows, so a typo is not silently ignored.
    func checkKnown(_ names: [String]) {
        for p in pairs where !names.contains(p.key) {
            fail("unknown flag --" + p.key + " for the " + role + " role\n" + usage)
        }
    }
}
