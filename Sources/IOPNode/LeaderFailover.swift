import CIOPSystem
import IOPCore
import IOPNet
import IOPProgram
import IOPWire

/// Losing a worker and getting it back: the leader moves to the plan compiled for the survivors, and back to the
/// full plan once the lost board says hello again. Every board is set up anew for the plan it moves to (programs,
/// then weight shards), the leader's own arena included.
extension Leader {
    /// A hello that arrived while serving: a lost board that came back (systemd restarted it) asks to join.
    func noteHello(_ payload: UnsafeRawBufferPointer) {
        guard let hello = try? Hello.decode(payload) else {
            rejected.reject("a hello that does not decode")
            return
        }
        let name = String(decoding: hello.name, as: UTF8.self)
        guard fullBoards.contains(where: { $0.name == name }), !boards.contains(where: { $0.name == name }) else {
            rejected.reject("a hello from '" + name + "', which is no lost board of this cluster")
            return
        }
        rejoined.removeAll { $0.name == name }
        rejoined.append((name, hello))
    }

    /// Between requests: takes hellos waiting on the inbox, and switches plans when a worker's link dropped or a
    /// lost board came back. Returns whether the leader can serve (a plan is running).
    public func checkBoards() -> Bool {
        takeHellos()
        if engine != nil, let lost = lostWorker() {
            return switchPlan(lost: boards[lost].name)
        }
        if fullPlanIsBack { return switchPlan(lost: nil) }
        return engine != nil
    }

    /// Takes the hellos waiting on the results port (lost boards that came back), without waiting.
    func takeHellos() {
        let frame = UnsafeMutableRawBufferPointer.allocate(byteCount: MessageHeader.size + 1024, alignment: 8)
        defer { frame.deallocate() }
        while let n = try? inbox.receive(into: frame, dontWait: true) {
            guard let h = try? Wire.decode(UnsafeRawBufferPointer(rebasing: frame[0..<n]), maxPayload: 1024) else {
                rejected.reject("a bad frame on the results port while idle")
                continue
            }
            if h.kind == .hello {
                noteHello(UnsafeRawBufferPointer(rebasing: frame[MessageHeader.size..<n]))
            } else {
                rejected.reject("a frame of kind " + String(h.kind.rawValue) + " on the results port while idle")
            }
        }
    }

    /// Whether every board of the full plan is there again (running, or said hello since it was lost).
    var fullPlanIsBack: Bool {
        guard !rejoined.isEmpty else { return false }
        return fullBoards.indices.allSatisfy { b in
            b == leaderIndexInFull || boards.contains { $0.name == fullBoards[b].name }
                || rejoined.contains { $0.name == fullBoards[b].name }
        }
    }

    var leaderIndexInFull: Int { fullBoards.firstIndex { $0.name == boards[leaderIndex].name } ?? 0 }

    /// Moves to the plan without `lost` (nil: the full plan). On failure the leader has no plan until the next
    /// switch succeeds, and says why through `onPlanChange`.
    @discardableResult
    public func switchPlan(lost: String?) -> Bool {
        let target = lost.map { l in (fullBoards.firstIndex { $0.name == l } ?? -1) + 1 } ?? 0
        guard let loaded = plans(lost) else {
            engine = nil
            if let lost { links[lost] = nil }
            onPlanChange(lost, .lost(board: lost ?? "?", reason: "no plan was compiled for the boards that are left"))
            return false
        }
        defer { loaded.release() }
        // The survivors forget their programs and say hello again; the lost board's link goes.
        if let lost { links[lost] = nil }
        for b in workers {
            guard let link = links[boards[b].name] else { continue }
            try? link.socket.sendFrame(.hello)
            _ = link.monitor.takeDisconnections()
        }
        engine = nil
        adopt(loaded.bundle)
        releasesShards = loaded.isMapped
        do throws(NodeError) {
            try setUp(threads: threads, bytes: loaded.bytes)
        } catch {
            engine = nil
            onPlanChange(lost, error)
            return false
        }
        planID = target
        onPlanChange(lost, nil)
        return true
    }

    /// Makes `bundle` the active plan (same model, other boards).
    func adopt(_ bundle: ProgramBundle) {
        boards = bundle.boards; leaderIndex = bundle.leaderIndex; schedule = bundle.schedule
        programs = bundle.programs; programBytes = bundle.programBytes; shards = bundle.shards
        bytesSent = Array(repeating: 0, count: boards.count); messagesSent = bytesSent; arenaBytes = bytesSent
        answered = Array(repeating: false, count: boards.count)
        outboxes = Array(repeating: nil, count: boards.count)
        monitors = outboxes.map { _ in nil }
        segmentTimes = Array(repeating: ClusterStats.SegmentTime(), count: schedule.count)
        planInferences = 0
        cpuNow = Array(repeating: 0, count: boards.count); cpuFrom = cpuNow
    }
}
