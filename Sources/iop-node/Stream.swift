import CIOPSystem
import IOPAudio
import IOPNet
import IOPNode
import IOPProgram
import IOPService
import IOPWire

/// The sound a leader streams, opened and checked before any board is set up, so a bad file costs
/// one line and no cluster.
struct AudioInput {
    let source: AudioSource
    let name: String
    /// The mapped file, unmapped at the end.
    let mapping: UnsafeRawBufferPointer?
    let samples: WAVSamples?

    /// `-` is standard input (raw S16LE); anything else a WAV file, which must match the model's front end.
    static func open(_ path: String, realtime: Bool, spec: StreamSpec) -> AudioInput {
        if path == "-" {
            return AudioInput(source: .rawS16LE(fd: 0), name: "standard input", mapping: nil, samples: nil)
        }
        var length = 0
        guard let mapped = iop_map_file(path, &length) else {
            fail(path + ": cannot read the audio file (" + String(cString: iop_last_error()) + ")")
        }
        let bytes = UnsafeRawBufferPointer(start: mapped, count: length)
        let wav: WAVSamples
        do throws(AudioError) { wav = try WAV.parse(bytes, sampleRate: spec.audio.sampleRate) } catch {
            fail(path + ": " + error.message)
        }
        let data = UnsafeRawBufferPointer(rebasing: bytes[wav.byteOffset..<(wav.byteOffset + 2 * wav.count)])
        return AudioInput(source: .samples(data, realtime: realtime), name: path, mapping: bytes, samples: wav)
    }

    func close() { if let m = mapping { iop_unmap_file(m.baseAddress, m.count) } }
}

/// Streams the audio through the cluster: one JSON line per window on stdout, the summary at the end,
/// alerts pushed to `--alerts`, systemd's STATUS= line kept current.
func streamAudio(
    _ input: AudioInput, spec: StreamSpec, leader: Leader, options: Options, context: Context,
    notifier given: ServiceNotifier
) throws(NodeError) {
    defer { input.close() }
    var notifier = given
    let a = spec.audio
    let hopMs = 1000 * a.patchHop * a.frameHop / a.sampleRate
    let deadlineMs = options.positiveInt("deadline-ms", default: hopMs)
    var alarm: Socket?
    if let endpoint = options.value("alerts") {
        // With keys, alerts go encrypted to the client named by --alerts-key (default: the first admin), whose
        // listening socket is a CURVE server with that client's keys.
        var serverKey: [UInt8]?
        if let keys = leader.keys {
            let wanted = options.value("alerts-key")
            guard
                let peer = keys.peers.first(where: { p in
                    (p.role == .client || p.role == .admin) && (wanted == nil ? p.role == .admin : p.name == wanted!)
                })
            else { throw .keys("no client '" + (wanted ?? "(an admin)") + "' in the keyring to push alerts to") }
            serverKey = peer.publicKey
        }
        do throws(NetError) {
            let s = try Socket(context, .push)
            if let keys = leader.keys, let serverKey { try s.makeCurveClient(keys.own, server: serverKey) }
            // An alarm system that is down must not stall the stream: a send waits at most 100 ms.
            try s.setTimeouts(sendMs: 100, receiveMs: 100)
            try s.setLinger(1000)
            try s.connect(endpoint)
            alarm = s
        } catch { throw .net(error) }
    }
    Log.info(
        "leader streaming " + input.name + ": a window every " + String(hopMs) + " ms, deadline "
            + String(deadlineMs) + " ms")
    notifier.ready(status: "streaming " + input.name)
    // The last window and the stream's counts so far (StreamRun keeps them), for the STATUS= line.
    var last: WindowReport?
    var sofar = StreamSummary()
    // One line buffer for the whole stream: printing a window allocates nothing.
    var line = ReportLine()
    defer { line.deallocate() }
    leader.supervisor = Supervisor(checkIntervalMs: notifier.checkIntervalMs(ceilingMs: stopCheckMs)) {
        notifier.tick()
        if notifier.statusDue(), let w = last {
            notifier.send(
                "STATUS=streaming: last score " + String(Int(w.score * 1000)) + "/1000 at " + String(Int(w.t))
                    + " s, " + String(sofar.alerts) + " alerts, " + String(sofar.missed) + " of "
                    + String(sofar.windows) + " windows late")
        }
        return !stopRequested(notifier)
    }
    var summary = try leader.stream(input.source, deadlineNs: UInt64(deadlineMs) * 1_000_000) {
        report, alertStart, counts in
        report.write(to: &line)
        emit(&line)
        last = report
        sofar = counts
        guard let start = alertStart else { return }
        let message = "{\"alert\": true, \"start\": " + seconds(start) + ", \"t\": " + seconds(report.t) + "}"
        Log.warning("leak alert from " + seconds(start) + " s of audio (window ending " + seconds(report.t) + " s)")
        if let alarm {
            let sent = Array(message.utf8).withUnsafeBytes { b -> Bool in
                do throws(NetError) { try alarm.send(b); return true } catch { return false }
            }
            if !sent { Log.warning("could not push the alert to " + options.required("alerts")) }
        }
    }
    if let wav = input.samples, wav.truncated {
        summary.truncated = true
        Log.warning(
            input.name + " is truncated: streamed the " + String(wav.count) + " samples present of the "
                + String(wav.declaredCount) + " its header declares")
    }
    summary.write(to: &line)
    emit(&line)
    Log.info(
        "stream ended (" + (input.samples == nil ? "input closed" : "end of file") + "): " + String(summary.windows)
            + " windows, " + String(summary.missed) + " late, " + String(summary.dropped) + " dropped, "
            + String(summary.alerts) + " alerts")
}

/// Writes a report line and its newline to standard output, unbuffered, so a reader sees each window as
/// it is answered.
func emit(_ line: inout ReportLine) {
    line.append("\n")
    _ = CIOPSystem.write(1, line.bytes.baseAddress, line.count)
}

/// Seconds of audio with millisecond precision, as the JSON lines give them.
func seconds(_ t: Double) -> String {
    let ms = Int(t * 1000 + 0.5)  // t >= 0; not rounded(), which needs libm
    var frac = String(ms % 1000)
    while frac.count < 3 { frac = "0" + frac }
    return String(ms / 1000) + "." + frac
}
