import CIOPSystem
import IOPAudio
import IOPCore
import IOPNet
import IOPNode
import IOPProgram
import IOPService
import IOPWire

/// Quiet intervals between supervisor checks when systemd sets no watchdog: how fast SIGTERM is heard.
let stopCheckMs: Int32 = 500

func milliseconds(_ ns: UInt64) -> String {
    let tenths = (ns + 50_000) / 100_000
    return String(tenths / 10) + "." + String(tenths % 10) + " ms"
}

func stopRequested(_ notifier: ServiceNotifier) -> Bool {
    let signal = iop_stop_signal()
    guard signal != 0 else { return false }
    Log.info("stopping on signal " + String(signal) + " after the work in hand")
    notifier.stopping(status: "stopping")
    return true
}

/// The full plan (`lost` nil) or the one `iop compile` made without board `lost` (fallback-NAME.iop beside the
/// bundle), mapped; nil when there is none or it does not decode (logged).
func mapPlan(_ bundlePath: String, lost: String?) -> LoadedBundle? {
    var directory = bundlePath
    while let last = directory.utf8.last, last != UInt8(ascii: "/") { directory.removeLast() }
    let path = lost.map { directory + "fallback-" + $0 + ".iop" } ?? bundlePath
    var length = 0
    guard let mapped = iop_map_file(path, &length) else {
        Log.error(path + ": cannot read the plan (" + String(cString: iop_last_error()) + ")")
        return nil
    }
    let bytes = UnsafeRawBufferPointer(start: mapped, count: length)
    do throws(WireError) {
        let bundle = try ProgramBundle.decode(bytes, releasingPages: true)
        return LoadedBundle(bundle: bundle, bytes: bytes, isMapped: true) { iop_unmap_file(mapped, length) }
    } catch {
        Log.error(path + ": not a valid iop bundle (" + error.message + ")")
        iop_unmap_file(mapped, length)
        return nil
    }
}

/// A rejected frame, at most one line per interval (RejectedFrames limits the rate).
func logRejection(_ reason: String, _ unlogged: UInt64) {
    Log.warning(
        "rejected " + reason + (unlogged > 0 ? " (and " + String(unlogged) + " more since the last such line)" : ""))
}

/// The board's keyring: --keys DIR (or IOP_KEYS), else systemd's credentials directory, else none with --insecure.
func nodeKeys(_ options: Options, board: String) -> Keyring? {
    if options.flag("insecure") {
        Log.warning(
            "--insecure: links are neither authenticated nor encrypted; anyone who reaches this board's ports "
                + "can feed it work or stop it. For debugging only.")
        return nil
    }
    var directory = options.value("keys")
    if directory == nil, let credentials = getenv("CREDENTIALS_DIRECTORY") {
        directory = String(cString: credentials)
    }
    guard let directory else {
        fail(
            "no keys for board '" + board + "': give --keys DIR (IOP_KEYS; `iop keys --cluster FILE --out DIR` "
                + "makes them), or --insecure for debugging")
    }
    let keys: Keyring
    do { keys = try Keyring.load(directory: directory) } catch { fail("keys: " + error.message) }
    guard keys.name == board else {
        fail("keys: " + directory + " holds the keys of '" + keys.name + "', not of board '" + board + "'")
    }
    return keys
}

func runWorker(_ options: Options, context: Context) {
    let failure = workerSession(options, context: context)
    // Every socket is closed by now: let the last message (a refusal) reach the leader before exiting.
    context.terminate()
    if let failure { fail(failure) }
}

/// Registers, serves, and with --rejoin registers again; the failure to report, if any.
func workerSession(_ options: Options, context: Context) -> String? {
    options.checkKnown([
        "name", "listen", "leader", "memory-budget", "threads", "rejoin", "keys", "insecure", "heartbeat-ms",
        "timeout-ms",
    ])
    let name = options.required("name")
    let keys = nodeKeys(options, board: name)
    let budgetText = options.required("memory-budget")
    guard let budget = parseByteSize(budgetText), budget > 0 else {
        fail("--memory-budget must be a size like 512MiB or 1.5GiB, got '" + budgetText + "'")
    }
    let threads = options.positiveInt("threads", default: 1)
    var notifier = ServiceNotifier()
    notifier.send("STATUS=registering with " + options.required("leader"))
    let worker: Worker
    do {
        worker = try Worker(
            context: context, name: name, listen: options.required("listen"), leader: options.required("leader"),
            budgetBytes: budget, threads: threads, timeoutMs: Int32(options.positiveInt("timeout-ms", default: 30_000)),
            keys: keys, heartbeatMs: Int32(options.positiveInt("heartbeat-ms", default: 250)))
    } catch {
        if iop_stop_signal() != 0 { return nil }
        fail("worker " + name + ": " + error.message)
    }
    Log.info(
        "worker " + name + " listening on " + worker.endpoint + ", budget " + String(budget) + " bytes, "
            + String(threads) + " threads")
    worker.rejected.log = { reason, unlogged in logRejection(reason, unlogged) }
    // With --rejoin a leader's shutdown frees the arena and the board registers again on the same sockets.
    worker.rejoins = options.flag("rejoin")
    // unowned(unsafe): the closures run only inside worker.run().
    worker.onLeaderShutdown = { [unowned(unsafe) worker] in
        Log.info(
            "worker " + name + " released its arena after " + String(worker.inferencesServed)
                + " steps (leader shut down); registering again")
        notifier.send("STATUS=registering again with " + options.required("leader"))
    }
    worker.onResume = {
        Log.info("worker " + name + ": the leader came back with the same program; serving the arena as loaded")
    }
    worker.onServing = { [unowned(unsafe) worker] in
        Log.info("worker " + name + " serving: arena " + String(worker.arenaBytes) + " bytes allocated, program loaded")
        notifier.ready(status: "serving: arena " + String(worker.arenaBytes) + " bytes, 0 steps")
    }
    worker.supervisor = Supervisor(checkIntervalMs: notifier.checkIntervalMs(ceilingMs: stopCheckMs)) {
        [unowned(unsafe) worker] in
        notifier.tick()
        if notifier.statusDue() {
            notifier.send(
                "STATUS=serving: arena " + String(worker.arenaBytes) + " bytes, " + String(worker.inferencesServed)
                    + " steps, last " + milliseconds(worker.lastStepNs))
        }
        return !stopRequested(notifier)
    }
    do { try worker.run() } catch {
        notifier.send("STATUS=failed: " + error.message)
        fail("worker " + name + ": " + error.message)
    }
    if let refusal = worker.refused {
        // Registering again would be refused again: the bundle or the budget has to change.
        let why = NodeError.refused(
            board: name, reason: refusal.reason, bytesNeeded: Int(refusal.bytesNeeded), budgetBytes: budget
        ).message
        notifier.send("STATUS=" + why)
        return "worker " + name + ": " + why
    }
    if iop_stop_signal() != 0 {
        Log.info("worker " + name + " stopped after " + String(worker.inferencesServed) + " steps")
        return nil
    }
    Log.info(
        "worker " + name + " released its arena after " + String(worker.inferencesServed) + " steps (leader shut down)")
    return nil
}

func runLeader(_ options: Options, context: Context) {
    let failure = leaderSession(options, context: context)
    // Every socket is closed by now: let the last messages (shutdown to the workers) go out before exiting.
    context.terminate()
    if let failure { fail(failure) }
}

/// Runs the leader until it stops; the failure to report, if any.
func leaderSession(_ options: Options, context: Context) -> String? {
    options.checkKnown([
        "bundle", "listen", "requests", "threads", "timeout-ms", "audio", "realtime", "deadline-ms", "alerts",
        "alerts-key", "keys", "insecure", "heartbeat-ms",
    ])
    // The directory `iop compile --out` wrote, or its bundle.iop.
    let given = options.required("bundle")
    let path = iop_is_directory(given) != 0 ? given + "/bundle.iop" : given
    // Mapped, not read: shards go from the page cache to the workers and into the leader's arena,
    // each shard's pages are dropped once it is loaded, and the mapping once every board is ready.
    var length = 0
    guard let mapped = iop_map_file(path, &length) else {
        fail(path + ": cannot read the bundle file (" + String(cString: iop_last_error()) + ")")
    }
    var bytes: UnsafeRawBufferPointer? = UnsafeRawBufferPointer(start: mapped, count: length)
    defer { if let b = bytes { iop_unmap_file(b.baseAddress, b.count) } }
    var decoded: Result<ProgramBundle, WireError> = .failure(.malformedPayload)
    do throws(WireError) { decoded = .success(try ProgramBundle.decode(bytes!, releasingPages: true)) } catch {
        decoded = .failure(error)
    }
    let bundle: ProgramBundle
    switch decoded {
    case .success(let b): bundle = b
    case .failure(let e): fail(path + ": not a valid iop bundle (" + e.message + "); recompile it with `iop compile`")
    }
    let threads = options.positiveInt("threads", default: 1)
    let timeout = Int32(options.positiveInt("timeout-ms", default: 30_000))
    let keys = nodeKeys(options, board: bundle.boards[bundle.leaderIndex].name)
    // The sound is checked before any board is set up: a bad file costs one line, not a cluster.
    var audio: (input: AudioInput, spec: StreamSpec)?
    if let path = options.value("audio") {
        guard let spec = bundle.stream else {
            fail(path + ": the bundle's model takes no audio (compile a listening model, such as the zoo's valve)")
        }
        audio = (AudioInput.open(path, realtime: options.flag("realtime"), spec: spec), spec)
    }
    var notifier = ServiceNotifier()
    do throws(NodeError) {
        notifier.send("STATUS=waiting for " + String(bundle.boards.count - 1) + " workers")
        let leader = try Leader(
            context: context, listen: options.required("listen"), bundle: bundle, timeoutMs: timeout, keys: keys,
            heartbeatMs: Int32(options.positiveInt("heartbeat-ms", default: 250)))
        leader.rejected.log = { reason, unlogged in logRejection(reason, unlogged) }
        leader.plans = { lost in mapPlan(path, lost: lost) }
        leader.onPlanChange = { lost, failure in
            if let failure {
                Log.error("cannot move to another plan: " + failure.message)
                notifier.send("STATUS=no plan runs: " + failure.message)
            } else if let lost {
                Log.warning("board '" + lost + "' lost: serving on the plan compiled without it")
                notifier.send("STATUS=serving without '" + lost + "'")
            } else {
                Log.info("every board is back: serving on the full plan")
                notifier.send("STATUS=serving on the full plan")
            }
        }
        announce("listening " + leader.endpoint)
        try leader.start(threads: threads, bundleBytes: bytes!, bundleIsMapped: true)
        if leader.resumedBoards > 0 {
            Log.info(String(leader.resumedBoards) + " workers kept their arenas from before: not reloaded")
        }
        iop_unmap_file(bytes!.baseAddress, bytes!.count)
        bytes = nil
        if let audio {
            defer { leader.shutdown() }
            try streamAudio(
                audio.input, spec: audio.spec, leader: leader, options: options, context: context,
                notifier: notifier)
            return nil
        }
        let requests: Socket
        let endpoint: String
        do throws(NodeError) {
            requests = try leader.bindRequests(options.required("requests"), context: context)
            do throws(NetError) { endpoint = try requests.boundEndpoint() } catch { throw .net(error) }
        } catch { leader.shutdown(); throw error }
        announce("ready " + endpoint)
        Log.info(
            "leader ready: " + String(bundle.boards.count) + " boards, " + String(bundle.schedule.count)
                + " segments, requests on " + endpoint)
        notifier.ready(status: "serving requests on " + endpoint + ", 0 inferences")
        leader.supervisor = Supervisor(checkIntervalMs: notifier.checkIntervalMs(ceilingMs: stopCheckMs)) {
            [unowned(unsafe) leader] in
            notifier.tick()
            if notifier.statusDue() {
                notifier.send(
                    "STATUS=serving: " + String(leader.inferences) + " inferences, last "
                        + milliseconds(leader.lastRequestNs))
            }
            return !stopRequested(notifier)
        }
        try leader.serve(requests, context: context)
        Log.info("leader stopped after " + String(leader.inferences) + " inferences")
    } catch {
        notifier.send("STATUS=failed: " + error.message)
        return "leader: " + error.message
    }
    return nil
}
