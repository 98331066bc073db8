import Foundation
import IOPAudio
import IOPModel
import IOPPlan

extension ClusterRun {
    /// Follows a streaming leader to the end of its audio: its JSON lines as they come (`--json`), or
    /// alerts as they happen, a progress line and a summary. Fails when the leader fails or ends without
    /// a summary.
    func followStream(_ leader: Child, audio: String, plan: Plan, children: ChildGroup) throws {
        let seconds = wavSeconds(audio)
        var shown = 0
        var summary: [String: Any]?
        var last: [String: Any] = [:]
        var alerts: [(start: Double, t: Double)] = []
        var lastProgress = Date.distantPast
        while true {
            let lines = leader.outputLines
            while shown < lines.count {
                let line = lines[shown]
                shown += 1
                guard line.hasPrefix("{"),
                    let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
                else { continue }
                if json { print(line); fflush(nil) }
                if let s = obj["summary"] as? [String: Any] { summary = s; continue }
                let wasAlert = last["alert"] as? Bool ?? false
                last = obj
                if !json, obj["alert"] as? Bool == true, !wasAlert, let t = obj["t"] as? Double {
                    alerts.append((t, t))
                    print(String(format: "\r%8.1f s  ALERT: leak score %.3f", t, obj["score"] as? Double ?? 0))
                }
            }
            if summary != nil { break }
            if !leader.process.isRunning && shown == leader.outputLines.count {
                let why = leader.lastError.isEmpty ? "it gave no reason" : leader.lastError
                throw CommandFailure(description: "the leader stopped before the end of the stream: \(why)")
            }
            if !json, Date().timeIntervalSince(lastProgress) > 0.5, let t = last["t"] as? Double {
                lastProgress = Date()
                let total = seconds.map { String(format: " of %.0f s", $0) } ?? ""
                FileHandle.standardError.write(
                    Data(
                        String(
                            format: "\r%.1f s%@ streamed, score %.3f, latency %.0f ms   ", t, total,
                            last["score"] as? Double ?? 0, last["latency_ms"] as? Double ?? 0
                        ).utf8))
            }
            usleep(50_000)
        }
        _ = leader.wait(seconds: 30)
        for c in children.all { _ = c.wait(seconds: 10) }
        guard let s = summary, !json else { return }
        let windows = s["windows"] as? Int ?? 0, met = s["met"] as? Int ?? 0
        note("")
        print(
            String(
                format: "%@ on %d local nodes, %@ plan: %d windows, %d within the deadline (%.1f %%), %d late, "
                    + "%d dropped; latency p50 %.1f ms, p99 %.1f ms; %d alerts", model.model,
                plan.cluster.devices.count,
                plannerOptions.label, windows, met, windows > 0 ? 100 * Double(met) / Double(windows) : 0,
                s["missed"] as? Int ?? 0, s["dropped"] as? Int ?? 0, s["p50_ms"] as? Double ?? 0,
                s["p99_ms"] as? Double ?? 0, s["alerts"] as? Int ?? 0))
        for (i, d) in plan.cluster.devices.enumerated() {
            print(
                "  \(pad(d.name, 12)) arena \(pad(formatBytes(plan.peakMemoryBytes[i]), 11)) "
                    + "of \(formatBytes(d.memoryBudgetBytes))")
        }
    }

    /// Refuses, before any node starts, a model that does not listen or a file its front end cannot take.
    func checkAudio(_ path: String, for net: Network) throws {
        guard let spec = net.stream else {
            throw CommandFailure(
                description: "--audio: \(net.name) takes no audio (stream through a listening model, such as valve)")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CommandFailure(description: "\(path): cannot read the audio file")
        }
        do {
            _ = try data.withUnsafeBytes { (b) throws(AudioError) in try WAV.parse(b, sampleRate: spec.audio.sampleRate)
            }
        } catch let e as AudioError { throw CommandFailure(description: "\(path): \(e.message)") }
    }

    /// Seconds of audio in a WAV file, from its size (for the progress line only).
    func wavSeconds(_ path: String) -> Double? {
        guard let size = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int, size > 44 else {
            return nil
        }
        return Double(size - 44) / 32000
    }
}
