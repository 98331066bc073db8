import CIOPSystem
import IOPAudio
import IOPCore
import IOPProgram

/// Where a stream's samples come from.
public enum AudioSource {
    /// A WAV file's samples (little-endian int16, mapped). `realtime` paces them at the sample rate, as
    /// a microphone would deliver them; otherwise windows follow one another as fast as the cluster answers.
    case samples(UnsafeRawBufferPointer, realtime: Bool)
    /// Raw S16LE from a file descriptor (standard input: what `arecord -f S16_LE -r 16000 -c 1 -t raw`
    /// writes), paced by whoever writes it. The stream ends when the input closes.
    case rawS16LE(fd: Int32)
}

/// Per window: the report, the alert's start when this window raised one, and the stream's counts so far
/// (windows, met, missed, dropped, alerts; the latency percentiles are filled in only at the end).
public typealias WindowHandler = (_ report: WindowReport, _ alertStart: Double?, _ sofar: StreamSummary) -> Void

extension Leader {
    /// The stream region at the end of the leader's arena (`StreamSpec.leaderFloats`): front end, patch, output.
    func streamRegion(_ spec: StreamSpec, engine: Engine) -> (frontEnd: Int, patch: Int, output: Int) {
        func lines(_ n: Int) -> Int { (n + 15) / 16 * 16 }
        let start = programs[leaderIndex].arenaFloats - spec.leaderFloats(outputCount: outputCount)
        let patch = start + lines(FrontEnd.floatCount(spec.audio))
        return (start, patch, patch + lines(spec.audio.patchFrames * spec.audio.melBins))
    }

    /// Classifies a live sound stream window by window, each within `deadlineNs` of its last sample
    /// being available. When the cluster falls behind, the freshest window is scored and the stale
    /// ones are dropped (and counted), never queued. Returns at the end of the input or when the
    /// supervisor says stop. Allocates nothing per window: the front end, the patch and the output
    /// live in the arena.
    public func stream(
        _ source: AudioSource, deadlineNs: UInt64, onWindow: WindowHandler
    ) throws(NodeError) -> StreamSummary {
        guard let engine, let spec = stream else {
            throw .protocolViolation("this bundle's model takes no audio stream (compile a model with a front end)")
        }
        let region = streamRegion(spec, engine: engine)
        var frontEnd: FrontEnd
        do throws(AudioError) {
            frontEnd = try FrontEnd(parameters: spec.audio, memory: engine.floats(at: region.frontEnd))
        } catch { throw .protocolViolation("the bundle's audio front end: " + error.message) }
        var run = StreamRun(
            leader: self, spec: spec, patch: engine.floats(at: region.patch), output: engine.floats(at: region.output),
            deadlineNs: deadlineNs)
        switch source {
        case .samples(let bytes, let realtime):
            try run.fromSamples(bytes, realtime: realtime, frontEnd: &frontEnd, onWindow: onWindow)
        case .rawS16LE(let fd):
            try run.fromDescriptor(fd, frontEnd: &frontEnd, onWindow: onWindow)
        }
        return run.finish()
    }
}

/// One stream's bookkeeping: the clock, the deadline, the alert state and the counters.
struct StreamRun {
    let leader: Leader
    let spec: StreamSpec
    var patch: UnsafeMutablePointer<Float>
    var output: UnsafeMutablePointer<Float>
    let deadlineNs: UInt64
    let started = iop_monotonic_ns()
    var alerts: AlertDebouncer
    var summary = StreamSummary()
    var latencies = LatencyHistogram()
    /// Seconds of audio one patch spans.
    let patchSeconds: Double

    init(
        leader: Leader, spec: StreamSpec, patch: UnsafeMutablePointer<Float>, output: UnsafeMutablePointer<Float>,
        deadlineNs: UInt64
    ) {
        self.leader = leader; self.spec = spec; self.patch = patch; self.output = output
        self.deadlineNs = deadlineNs
        alerts = AlertDebouncer(rule: spec.alerts)
        let a = spec.audio
        patchSeconds = Double(a.frameHop * (a.patchFrames - 1) + a.frameLength) / Double(a.sampleRate)
    }

    /// Wall-clock time at which sample `n` of a paced stream is available.
    func arrival(ofSample n: Int) -> UInt64 {
        started &+ UInt64(Double(n) * 1e9 / Double(spec.audio.sampleRate))
    }

    /// The sample that completes patch k.
    func endSample(ofPatch k: Int) -> Int {
        let a = spec.audio
        return a.frameHop * (a.patchHop * k + a.patchFrames - 1) + a.frameLength
    }

    /// A mapped file: every window in order, or, paced, the freshest window the clock has reached.
    mutating func fromSamples(
        _ bytes: UnsafeRawBufferPointer, realtime: Bool, frontEnd: inout FrontEnd, onWindow: WindowHandler
    ) throws(NodeError) {
        let total = bytes.count / 2
        var at = 0
        // Sound already framed is given back to the kernel as it goes: an hour-long file stays out of
        // the resident set instead of filling it (the front end keeps its own copy of what it still needs).
        var released = 0
        while at < total {
            if !leader.supervisor.check() { return }
            if 2 * at - released >= 1 << 20 {
                iop_release_mapped(bytes.baseAddress! + released, 2 * at - released)
                released = 2 * at - (1 << 16)  // the partial page at the end goes with the next stretch
            }
            var available = total
            if realtime {
                let now = iop_monotonic_ns()
                available = min(total, Int(Double(now &- started) * Double(spec.audio.sampleRate) / 1e9))
                if available <= at {
                    // Nothing new yet: sleep until the next 10 ms of sound is due (a stop is heard within it).
                    let next = min(total, at + spec.audio.frameHop)
                    let due = arrival(ofSample: next)
                    if due > now { iop_sleep_ns(min(due - now, 50_000_000)) }
                    continue
                }
            }
            var ready: Int?
            while at < available {
                let step = frontEnd.consume(
                    littleEndian: UnsafeRawBufferPointer(rebasing: bytes[(2 * at)..<(2 * available)]), patch: patch)
                at += step.consumed
                if let k = step.patch {
                    if ready != nil { summary.dropped += 1 }
                    ready = k
                    // Unpaced, every window is scored; paced, only the freshest one the clock has reached.
                    if !realtime { break }
                }
            }
            guard let k = ready else { continue }
            let arrived = realtime ? arrival(ofSample: endSample(ofPatch: k)) : iop_monotonic_ns()
            try score(k, arrived: arrived, frontEnd: &frontEnd, onWindow: onWindow)
        }
    }

    /// Standard input or another descriptor: read what the writer delivers; when more is already
    /// waiting after a window, take it all and score only the freshest window.
    mutating func fromDescriptor(_ fd: Int32, frontEnd: inout FrontEnd, onWindow: WindowHandler) throws(NodeError) {
        let capacity = 2 * spec.audio.frameHop * spec.audio.patchHop
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: capacity + 1, alignment: 16)
        defer { buffer.deallocate() }
        var held = 0  // a trailing odd byte, kept for the next read
        var ready: Int?
        var arrived: UInt64 = 0
        while true {
            if ready == nil || iop_readable(fd, 0) == 0 {
                if let k = ready {
                    try score(k, arrived: arrived, frontEnd: &frontEnd, onWindow: onWindow)
                    ready = nil
                }
                if !leader.supervisor.check() { return }
                // Wait for sound in supervisor-sized slices, so a stop is heard while the microphone is quiet.
                let slice = leader.supervisor.checkIntervalMs < 0 ? -1 : Int32(leader.supervisor.checkIntervalMs)
                if iop_readable(fd, slice) == 0 { continue }
            }
            let n = iop_read(fd, buffer.baseAddress! + held, capacity - held)
            if n == 0 { break }
            if n < 0 {
                if n == -4 { continue }  // EINTR: the loop asks the supervisor
                throw .protocolViolation("reading the audio input failed (errno " + String(-n) + ")")
            }
            let bytes = held + n
            var at = 0
            while at + 1 < bytes {
                let step = frontEnd.consume(
                    littleEndian: UnsafeRawBufferPointer(rebasing: buffer[at..<(bytes - bytes % 2)]), patch: patch)
                at += 2 * step.consumed
                if let k = step.patch {
                    if ready != nil { summary.dropped += 1 }
                    ready = k
                    arrived = iop_monotonic_ns()
                }
            }
            held = bytes - at
            if held == 1 { buffer[0] = buffer[bytes - 1] }
        }
        if let k = ready { try score(k, arrived: arrived, frontEnd: &frontEnd, onWindow: onWindow) }
    }

    /// Runs the model on the patch in hand and reports the window.
    mutating func score(_ k: Int, arrived: UInt64, frontEnd: inout FrontEnd, onWindow: WindowHandler)
        throws(NodeError)
    {
        // On a fallback plan, a lost board that came back brings the stream back to the full plan.
        if leader.planID != 0 {
            leader.takeHellos()
            if leader.fullPlanIsBack { try carryOn(lost: nil, frontEnd: &frontEnd) }
        }
        do throws(NodeError) { try leader.infer(input: UnsafePointer(patch), output: output) } catch {
            guard case .lost(let board, _) = error else { throw error }
            // A lost worker: carry the sound heard so far into the survivors' plan, and score this window there.
            // The windows that arrive meanwhile are dropped (counted) by the freshest-window rule.
            try carryOn(lost: board, frontEnd: &frontEnd)
            try leader.infer(input: UnsafePointer(patch), output: output)
        }
        let answered = iop_monotonic_ns()
        let latencyNs = answered > arrived ? answered - arrived : 0
        let t = spec.audio.patchEndSeconds(k)
        let s = ElementwiseKernel.sigmoid(output[0])
        let alertStart = alerts.update(score: s, windowStart: t - patchSeconds)
        let met = latencyNs <= deadlineNs
        let latencyMs = Double(latencyNs) / 1e6
        summary.windows += 1
        if met { summary.met += 1 } else { summary.missed += 1 }
        summary.alerts = alerts.raised
        latencies.record(latencyMs)
        onWindow(
            WindowReport(t: t, score: s, alert: alerts.active, alertStart: alertStart, latencyMs: latencyMs, met: met),
            alertStart, summary)
    }

    /// Moves the leader to the plan without board `lost` (nil: back to the full plan), the stream region (front
    /// end, patch, output) copied from the old arena into the new one; throws the loss when no plan is left.
    mutating func carryOn(lost: String?, frontEnd: inout FrontEnd) throws(NodeError) {
        let board = lost ?? leader.lostName ?? "?"
        guard let engine = leader.engine else { throw .lost(board: board, reason: "no plan is running") }
        let floats = spec.leaderFloats(outputCount: leader.outputCount)
        let saved = UnsafeMutablePointer<Float>.allocate(capacity: floats)
        defer { saved.deallocate() }
        saved.update(from: engine.floats(at: leader.streamRegion(spec, engine: engine).frontEnd), count: floats)
        if let lost { leader.lostName = lost }
        guard leader.switchPlan(lost: lost), let moved = leader.engine else {
            throw .lost(board: board, reason: "no plan runs for the boards that are there")
        }
        let region = leader.streamRegion(spec, engine: moved)
        moved.floats(at: region.frontEnd).update(from: saved, count: floats)
        do throws(AudioError) {
            frontEnd = try FrontEnd(continuing: frontEnd, memory: moved.floats(at: region.frontEnd))
        } catch { throw .protocolViolation("the bundle's audio front end: " + error.message) }
        patch = moved.floats(at: region.patch)
        output = moved.floats(at: region.output)
    }

    mutating func finish() -> StreamSummary {
        summary.p50Ms = latencies.percentile(0.5)
        summary.p99Ms = latencies.percentile(0.99)
        return summary
    }
}
