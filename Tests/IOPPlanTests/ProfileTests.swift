import Foundation
import IOPCore
import IOPModel
import IOPPlan
import IOPProfile
import Testing

/// Profiles: the board's JSON read by the host, and the calibrated model worked out by hand.
@Suite struct ProfileTests {
    static func object(_ text: String) throws -> Any { try JSONSerialization.jsonObject(with: Data(text.utf8)) }

    /// What `iop-node profile` prints is what a cluster file's `profile` section reads, and the section
    /// written back reads the same. Fits by hand: conv_3x3 through (1e6 flop, 150 us) and (11e6, 650 us)
    /// has a slope of 500 us / 1e7 flop, i.e. 20 GFLOP/s, and 100 us at zero work; linear through
    /// (1e6 B, 40 us) and (3e6 B, 160 us) would cross zero work at -20 us, so its overhead is 0 and its
    /// rate the pooled 4e6 B / 200 us = 20 GB/s.
    @Test func profileJSONRoundTrip() throws {
        let timings = [
            KernelTiming(kernel: .conv3x3, work: 1e6, microseconds: 150),
            KernelTiming(kernel: .conv3x3, work: 11e6, microseconds: 650),
            KernelTiming(kernel: .linear, work: 1e6, microseconds: 40),
            KernelTiming(kernel: .linear, work: 3e6, microseconds: 160),
        ]
        let text = ProfileJSON.kernels(
            threads: 2, seconds: 3.25, cpu: CPUAllowance(share: 0.25, burstMs: 2.5, periodMs: 25), timings: timings)
        let profile = try BoardProfile.parse(try Self.object(text), board: "board 'a'")
        #expect(profile.threads == 2 && profile.link == nil)
        #expect(profile.cpuShare == 0.25 && profile.burstMs == 2.5 && profile.periodMs == 25)
        // After a long wait 2.5 ms of full-speed work fits the burst; 4.5 ms runs 2.5 ms, then 2 ms at a
        // quarter: 8 ms more. After no wait all of it runs at a quarter (18 ms); after half a period,
        // half the time one way and half the other: 14.25 ms.
        #expect(profile.wallMs(fullSpeedMs: 2.5) == 2.5 && profile.wallMs(fullSpeedMs: 4.5) == 10.5)
        #expect(profile.wallMs(fullSpeedMs: 4.5, idleMs: 0) == 18)
        #expect(profile.wallMs(fullSpeedMs: 4.5, idleMs: 12.5) == 14.25)
        // Work handed to a board at a random moment of its quota's cycle (β = 0.25 x 25 = 6.25 ms, then an
        // 18.75 ms stall): 4.5 ms waits out half a stall three times in four: 4.5 + 0.75 (9.375 + 4.5).
        // 10 ms is one full cycle more: 10 + 0.75 (9.375 + 25 + 3.75), near the steady 40 ms. After
        // half a period, half of it is the fresh 10.5 ms.
        #expect(profile.arrivingMs(fullSpeedMs: 4.5, idleMs: 0) == 14.90625)
        #expect(profile.arrivingMs(fullSpeedMs: 10, idleMs: 0) == 38.59375)
        #expect(profile.arrivingMs(fullSpeedMs: 4.5, idleMs: 12.5) == 12.703125)
        #expect(profile.arrivingMs(fullSpeedMs: 0, idleMs: 0) == 0)
        // The same work landing at a chosen phase: at 0 (a run starting) 4.5 ms runs at once; at 0.2 (5 ms
        // in) 1.25 ms runs, the 18.75 ms stall, 3.25 ms: 23.25; at 0.5 (stalled) 12.5 ms waited, then 4.5.
        #expect(profile.arrivingMs(fullSpeedMs: 4.5, idleMs: 0, phase: 0) == 4.5)
        #expect(abs(profile.arrivingMs(fullSpeedMs: 4.5, idleMs: 0, phase: 0.2) - 23.25) < 1e-9)
        #expect(profile.arrivingMs(fullSpeedMs: 4.5, idleMs: 0, phase: 0.5) == 17)
        // Spread evenly over the cycle the phases average to the hand-computed means above (to the
        // midpoint rule's 2e-3 at 4096 phases).
        for (x, mean) in [(4.5, 14.90625), (10, 38.59375)] {
            let n = 4096
            let average =
                (0..<n).reduce(0) {
                    $0 + profile.arrivingMs(fullSpeedMs: x, idleMs: 0, phase: (Double($1) + 0.5) / 4096)
                }
                / Double(n)
            #expect(abs(average - mean) < 2e-3, "\(x) ms: \(average)")
        }
        #expect(profile.kernels[.conv3x3] == KernelFit(overheadUs: 100, gigaPerSecond: 20))
        #expect(profile.kernels[.linear] == KernelFit(overheadUs: 0, gigaPerSecond: 20))
        #expect(profile.kernels.count == 2)
        // 5.5e6 flop on conv_3x3: 100 us + 275 us.
        #expect(abs(profile.milliseconds(.conv3x3, work: 5.5e6) - 0.375) < 1e-12)
        // A class not timed falls back to a timed conv (flops) or to copy, here untimed: 0.
        #expect(abs(profile.milliseconds(.conv1x1, work: 5.5e6) - 0.375) < 1e-12)

        var withLink = profile
        withLink.link = LinkProfile(
            latencyMs: 0.25, bandwidthMbps: 94.5, sendCpuNsPerByte: 1.5, receiveCpuNsPerByte: 2, messageCpuUs: 40)
        let written = try JSONSerialization.data(withJSONObject: withLink.jsonObject)
        #expect(try BoardProfile.parse(try JSONSerialization.jsonObject(with: written), board: "b") == withLink)
        // A message of 1000 bytes: 1.5 us of its bytes and 40 us of its own to send, 2 + 40 to receive.
        #expect(abs(withLink.sendCpuMs(bytes: 1000) - 0.0415) < 1e-12)
        #expect(abs(withLink.receiveCpuMs(bytes: 1000) - 0.042) < 1e-12)
        // Sent right after another, it shares that one's wake-up: its bytes alone.
        #expect(abs(withLink.sendCpuMs(bytes: 1000, alone: false) - 0.0015) < 1e-12)
        // A link section from before message_cpu_us costs messages by their bytes alone.
        var old = withLink.jsonObject
        var oldLink = try #require(old["link"] as? [String: Any])
        oldLink["message_cpu_us"] = nil
        old["link"] = oldLink
        let parsed = try BoardProfile.parse(old, board: "b")
        #expect(parsed.link?.messageCpuUs == 0 && abs(parsed.sendCpuMs(bytes: 1000) - 0.0015) < 1e-12)
    }

    @Test func profileErrorsNameTheBoardAndTheField() {
        func error(_ text: String) -> String {
            do {
                _ = try BoardProfile.parse(try Self.object(text), board: "board 'pi-a'")
                return "accepted"
            } catch { return "\(error)" }
        }
        #expect(
            error(#"{"threads": 1, "kernels": {"conv_9x9": {"overhead_us": 1, "giga_per_s": 2}}}"#)
                .contains("board 'pi-a': profile: unknown kernel class 'conv_9x9'"))
        #expect(
            error(#"{"threads": 1, "kernels": {"linear": {"overhead_us": 1, "giga_per_s": 0}}}"#)
                .contains("kernel 'linear' needs overhead_us >= 0 and giga_per_s > 0"))
        #expect(
            error(#"{"threads": 1, "kernels": {"linear": {"overhead_us": 1, "giga_per_s": 2}}, "link": {}}"#)
                .contains("link: field 'latency_ms' must be a number >= 0"))
        #expect(error(#"{"kernels": {}}"#).contains("missing or non-positive field 'threads'"))
    }

    /// The leader's link section from its probes: median latency, its fastest rate, mean CPU per byte.
    @Test func probesBecomeLinkSections() {
        func probe(_ latency: Double, _ mbps: Double, _ leaderSend: Double) -> ProbeReport {
            var p = ProbeReport(
                latencyMs: latency, bandwidthMbps: mbps, leaderSendNsPerByte: leaderSend, leaderReceiveNsPerByte: 1,
                workerSendNsPerByte: 3, workerReceiveNsPerByte: 4)
            p.leaderMessageCpuUs = 10 * leaderSend
            p.workerMessageCpuUs = 50
            return p
        }
        let links = ProbeReport.links(
            [1: probe(0.2, 90, 1), 2: probe(0.4, 95, 2), 3: probe(0.3, 50, 3)], boards: 4, leader: 0)
        #expect(
            links[0]
                == LinkProfile(
                    latencyMs: 0.3, bandwidthMbps: 95, sendCpuNsPerByte: 2, receiveCpuNsPerByte: 1, messageCpuUs: 20))
        #expect(
            links[3]
                == LinkProfile(
                    latencyMs: 0.3, bandwidthMbps: 50, sendCpuNsPerByte: 3, receiveCpuNsPerByte: 4, messageCpuUs: 50))
    }

    static func profile(rate: Double, linearOverheadUs: Double = 0, link: LinkProfile) -> BoardProfile {
        BoardProfile(
            threads: 1,
            kernels: [
                .conv3x3: KernelFit(overheadUs: 0, gigaPerSecond: rate),
                .linear: KernelFit(overheadUs: linearOverheadUs, gigaPerSecond: rate),
                .copy: KernelFit(overheadUs: 0, gigaPerSecond: 1),
                .reduction: KernelFit(overheadUs: 0, gigaPerSecond: 1),
                .elementwise: KernelFit(overheadUs: 0, gigaPerSecond: 1),
            ], link: link)
    }

    static func board(_ name: String, _ profile: BoardProfile?) -> DeviceSpec {
        DeviceSpec(
            name: name, endpoint: "tcp://127.0.0.1:1", gflops: 1, memoryBudgetBytes: 1 << 30, bandwidthMbps: 1000,
            setupMs: 0.5, threads: 1, profile: profile)
    }

    /// fc1 (256 -> 128) split by output channels on `cluster`, as the calibrated model costs it.
    static func fc1ByOutputChannels(on cluster: Cluster) -> SegmentCost {
        let net = Network(
            name: "fc", inputShape: [1, 256],
            layers: [Layer(name: "fc1", kind: .linear(LinearGeometry(inFeatures: 256, outFeatures: 128), .relu))])
        return Planner(network: net, cluster: cluster).model.cost(.single(stage: 0, .outputChannels))
    }

    /// Two boards, one measured three times as fast as the other (the nominal gflops say they are
    /// equal), 8 Mbit/s links (1000 bytes per ms) with 0.5 ms latency; copies at 1 GB/s (1e6 B per ms).
    /// fc1 (256 -> 128) by output channels, worked out by hand.
    @Test func handComputedHeterogeneousProfile() throws {
        let link = LinkProfile(latencyMs: 0.5, bandwidthMbps: 8, sendCpuNsPerByte: 0, receiveCpuNsPerByte: 0)
        let cluster = Cluster(
            devices: [
                Self.board("slow", Self.profile(rate: 1, link: link)),
                Self.board("fast", Self.profile(rate: 3, linearOverheadUs: 10, link: link)),
            ], leader: 0)
        let net = Network(
            name: "fc", inputShape: [1, 256],
            layers: [
                Layer(name: "fc1", kind: .linear(LinearGeometry(inFeatures: 256, outFeatures: 128), .relu)),
                Layer(name: "fc2", kind: .linear(LinearGeometry(inFeatures: 128, outFeatures: 10), .none)),
            ])
        let model = Planner(network: net, cluster: cluster).model
        let c = model.cost(.single(stage: 0, .outputChannels))
        // Split by the measured conv rates 1 : 3, in units of 8 channels: 16 units -> 4 and 12.
        #expect(c.partitions[0].extents == [32, 96])
        // Scatter: the leader copies the 1024-byte input into its frame (0.001024 ms), which is on the
        // wire for 1.024 ms: sent at 1.025024 ms. The fast board hears it 0.5 ms later and computes
        // 256 x 96 weights = 98304 B at 3 GB/s (0.032768 ms) plus 0.01 ms overhead: done at 1.567792 ms.
        // Meanwhile the leader runs its 32 channels (32768 B at 1 GB/s: 0.032768 ms) and places them
        // (128 B copy). The 384-byte answer takes 0.384 ms on the wire and 0.5 ms more to arrive:
        // 2.451792 ms; placed (0.000384 ms), then the 512-byte result copied into place (0.000512 ms).
        let expected = 1.567792 + 0.384 + 0.5 + 0.000384 + 0.000512
        #expect(abs(c.latencyMs - expected) < 1e-9, "\(c.latencyMs)")
        // The longest computation: the fast board's.
        #expect(abs(c.computeMs - 0.042768) < 1e-9)
        // As the leader clocks it: scatter ends when its copy is handed over (0.001024 ms); its own part
        // is the 32 channels and their placing (0.032896 ms); it then waits until the answer is placed
        // (2.452176 ms) and copies the result (0.000512 ms).
        let phases = try #require(c.phases)
        #expect(abs(phases.scatterMs - 0.001024) < 1e-9, "\(phases)")
        #expect(abs(phases.ownMs - 0.032896) < 1e-9, "\(phases)")
        #expect(abs(phases.gatherMs - (2.452176 - 0.03392)) < 1e-9, "\(phases)")
        #expect(abs(phases.reduceMs - 0.000512) < 1e-9, "\(phases)")
        // What each board's CPU pays, whatever waits: the leader's copy of the input, its 32 channels and their
        // placing, the answer's placing and the result's copy (0.001024 + 0.032768 + 0.000128 + 0.000384 +
        // 0.000512); the fast board's 96 channels with their overhead.
        let cpu = try #require(c.cpuMs)
        #expect(abs(cpu[0] - 0.034816) < 1e-9 && abs(cpu[1] - 0.042768) < 1e-9, "\(cpu)")
        // A plan's figure per board adds up its segments, and the leader's the request's own CPU: the 1024-byte
        // input and 40-byte output copied at 1 GB/s (free links), 0.001064 ms.
        #expect(abs(model.request.cpuMs - 0.001064) < 1e-12, "\(model.request)")
        let segments: [Segment] = [.single(stage: 0, .outputChannels), .single(stage: 1, .none)]
        let costs = model.costs(segments)
        let plan = Plan(planner: .iop, segments: segments, costs: costs, cluster: cluster, request: model.request)
        let perBoard = try #require(plan.cpuMsPerInference)
        for d in 0..<2 {
            let expected = costs.reduce(0) { $0 + $1.cpuMs![d] } + (d == 0 ? 0.001064 : 0)
            #expect(abs(perBoard[d] - expected) < 1e-12, "board \(d): \(perBoard)")
        }
    }

    /// A trial run's CPU, board by board, against the plan's model of it: each board's new `cpu_scale` is the one
    /// the plan was modelled with times measured over modelled (by hand: 12.5 / 10 = 1.25; 2 x 15 / 20 = 1.5), and
    /// a board the plan gave no work keeps its own. A scale multiplies every CPU figure of the board it is given.
    @Test func aTrialRunCalibratesEachBoardsCPU() throws {
        let manifest = try Self.object(
            """
            {"boards": [{"name": "a", "cpu_ms_per_inference": 10}, {"name": "b", "cpu_ms_per_inference": 20,
              "cpu_scale": 2}, {"name": "c", "cpu_ms_per_inference": 0}]}
            """)
        func stats(_ inferences: Int, boards: String = "a") throws -> Any {
            try Self.object(
                """
                {"cpu_inferences": \(inferences), "boards": [{"name": "\(boards)", "cpu_ms_per_inference": 12.5},
                  {"name": "b", "cpu_ms_per_inference": 15}, {"name": "c", "cpu_ms_per_inference": 0.5}]}
                """)
        }
        let calibration = try CPUCalibration.from(manifest: manifest, stats: try stats(5))
        #expect(calibration.inferences == 5)
        #expect(
            calibration.boards == [
                .init(name: "a", modelledMs: 10, measuredMs: 12.5, scaleBefore: 1, scale: 1.25),
                .init(name: "b", modelledMs: 20, measuredMs: 15, scaleBefore: 2, scale: 1.5),
            ])
        // Too few inferences to trust, and stats from another cluster, are refused by name.
        #expect(throws: ClusterError.self) { try CPUCalibration.from(manifest: manifest, stats: try stats(2)) }
        do {
            _ = try CPUCalibration.from(manifest: manifest, stats: try stats(5, boards: "z"))
            Issue.record("stats without board 'a' were accepted")
        } catch let e as ClusterError { #expect(e.message.contains("board 'a'"), "\(e.message)") }

        // The scale goes through the profile's JSON, and doubles every CPU figure: handComputedHeterogeneousProfile
        // with both boards at 2 (so the split stays 1 : 3). The leader's copy 0.002048 ms, the input on the wire
        // 1.024 ms, 0.5 ms latency, the fast board's 0.085536 ms, the answer's 0.384 + 0.5 ms, then placing it
        // (0.000768) and copying the result (0.001024): 2.497376 ms; CPU per board twice 0.034816 and 0.042768.
        let link = LinkProfile(latencyMs: 0.5, bandwidthMbps: 8, sendCpuNsPerByte: 0, receiveCpuNsPerByte: 0)
        var slow = Self.profile(rate: 1, link: link), fast = Self.profile(rate: 3, linearOverheadUs: 10, link: link)
        slow.cpuScale = 2; fast.cpuScale = 2
        let written = try JSONSerialization.data(withJSONObject: fast.jsonObject)
        #expect(try BoardProfile.parse(try JSONSerialization.jsonObject(with: written), board: "fast") == fast)
        let cluster = Cluster(devices: [Self.board("slow", slow), Self.board("fast", fast)], leader: 0)
        let c = Self.fc1ByOutputChannels(on: cluster)
        #expect(c.partitions[0].extents == [32, 96])
        #expect(abs(c.latencyMs - 2.497376) < 1e-9, "\(c.latencyMs)")
        let cpu = try #require(c.cpuMs)
        #expect(abs(cpu[0] - 0.069632) < 1e-9 && abs(cpu[1] - 0.085536) < 1e-9, "\(cpu)")
    }

    /// A leader at full speed and two workers held to half a core (5 ms runs, then 5 ms stalls), on instant links.
    static func twoThrottledWorkers(leaderLinearGBps: Double) -> Cluster {
        let link = LinkProfile(latencyMs: 0, bandwidthMbps: 1e6, sendCpuNsPerByte: 0, receiveCpuNsPerByte: 0)
        func profile(linearGBps: Double, share: Double) -> BoardProfile {
            BoardProfile(
                threads: 1,
                kernels: [
                    .conv3x3: KernelFit(overheadUs: 0, gigaPerSecond: 1),
                    .linear: KernelFit(overheadUs: 0, gigaPerSecond: linearGBps),
                    .copy: KernelFit(overheadUs: 0, gigaPerSecond: 1),
                ], link: link, cpuShare: share, burstMs: share < 1 ? 5 : 0, periodMs: share < 1 ? 10 : 0)
        }
        return Cluster(
            devices: [
                Self.board("a", profile(linearGBps: leaderLinearGBps, share: 1)),
                // 40 channels of 256 weights, 40960 B, in 10 ms at the steady rate: 5 ms at full speed.
                Self.board("b", profile(linearGBps: 0.004096, share: 0.5)),
                Self.board("c", profile(linearGBps: 0.004096, share: 0.5)),
            ], leader: 0)
    }

    /// In a plan, a worker's wait counts from its last result, not from the segment's start. fc1 and fc3 (256 ->
    /// 128) split by output channels as in the test above, around the leader alone on fc2 (128 -> 256: 131072 B
    /// of weights at 10 MB/s, 13.1 ms, longer than the workers' 10 ms period). Costed alone, fc3 is the 9.583 ms
    /// of two workers landing at random phases; in the plan both workers have waited through fc2, their quota is
    /// back, and each runs its 5 ms at full speed, beside the leader's own 48 channels (49152 B: 4.9152 ms).
    @Test func aWorkerThatWaitedOutItsPeriodRunsItsPartAtFullSpeed() throws {
        let net = Network(
            name: "fc", inputShape: [1, 256],
            layers: [
                Layer(name: "fc1", kind: .linear(LinearGeometry(inFeatures: 256, outFeatures: 128), .relu)),
                Layer(name: "fc2", kind: .linear(LinearGeometry(inFeatures: 128, outFeatures: 256), .relu)),
                Layer(name: "fc3", kind: .linear(LinearGeometry(inFeatures: 256, outFeatures: 128), .none)),
            ])
        let model = Planner(network: net, cluster: Self.twoThrottledWorkers(leaderLinearGBps: 0.01)).model
        let segments: [Segment] = [
            .single(stage: 0, .outputChannels), .single(stage: 1, .none), .single(stage: 2, .outputChannels),
        ]
        let alone = model.cost(segments[2]), inPlan = model.costs(segments)
        #expect(abs(alone.latencyMs - 9.583) < 0.02, "\(alone.latencyMs)")
        // 5 ms of work, then the results placed and the output copied: microseconds at 1 GB/s.
        #expect(inPlan[2].latencyMs >= 5 && inPlan[2].latencyMs < 5.01, "\(inPlan[2].latencyMs)")
        #expect(abs(inPlan[1].latencyMs - 13.1072) < 0.01, "\(inPlan[1].latencyMs)")
    }

    /// A quota grants `share x period` of CPU per period, by hand: a quarter of a core in 25 ms periods is
    /// 6.25 ms. From a period's start 4.5 ms runs at once; 4.5 ms more runs 1.75 ms, waits out the period's
    /// other 18.75 ms, runs 2.75 ms of the next: 23.25 ms. A wait that reaches the next period's start
    /// grants the allowance afresh; a board that ran flat out until 10 ms ago, half-way through a period,
    /// has used the 2.5 ms it could run before its wait.
    @Test func aQuotaGrantsItsAllowanceOncePerPeriod() throws {
        let p = BoardProfile(threads: 1, kernels: [:], link: nil, cpuShare: 0.25, burstMs: 6.25, periodMs: 25)
        var q = QuotaState(at: 0, used: 0)
        #expect(p.run(fullSpeedMs: 4.5, from: &q) == 4.5 && q == QuotaState(at: 4.5, used: 4.5))
        #expect(p.run(fullSpeedMs: 4.5, from: &q) == 23.25 && q == QuotaState(at: 2.75, used: 2.75))
        p.wait(10, from: &q)
        #expect(q == QuotaState(at: 12.75, used: 2.75))
        p.wait(20, from: &q)
        #expect(q == QuotaState(at: 7.75, used: 0))
        #expect(p.quota(phase: 0.5, idleMs: 0) == QuotaState(at: 12.5, used: 6.25))
        #expect(p.quota(phase: 0.5, idleMs: 10) == QuotaState(at: 12.5, used: 2.5))
        #expect(p.quota(phase: 0.5, idleMs: 15) == QuotaState(at: 12.5, used: 0))
        // An unthrottled board runs its work as it comes.
        let free = BoardProfile(threads: 1, kernels: [:], link: nil)
        #expect(free.run(fullSpeedMs: 4.5, from: &q) == 4.5)
    }

    /// A worker that uses little of its allowance never stalls, wherever its period stands. fc1 and fc3 give each
    /// worker 4 output channels, 0.5 ms and 1 ms of full-speed work (4096 and 8192 B), around the leader alone
    /// on fc2 (12 -> 512, 24576 B at 10 MB/s: 2.46 ms, shorter than the 10 ms period). Costed alone, fc3 meets
    /// each worker at a random phase of a board that ran flat out: 1 ms when at most 4 ms into the period,
    /// 6 ms in (4, 5) (a 5 ms stall), 11 - a ms stalled at a >= 5: a mean of 2.75 ms for one worker, more for
    /// the later of two. In the plan a request takes 4 ms, so any 10 ms holds at most 4 ms of a worker's parts,
    /// within its 5 ms allowance: fc3 is the 1 ms of work, beside the leader's own 4 channels (0.82 ms).
    @Test func aLightlyLoadedWorkerNeverStalls() throws {
        let net = Network(
            name: "fc", inputShape: [1, 256],
            layers: [
                Layer(name: "fc1", kind: .linear(LinearGeometry(inFeatures: 256, outFeatures: 12), .relu)),
                Layer(name: "fc2", kind: .linear(LinearGeometry(inFeatures: 12, outFeatures: 512), .relu)),
                Layer(name: "fc3", kind: .linear(LinearGeometry(inFeatures: 512, outFeatures: 12), .none)),
            ])
        let model = Planner(network: net, cluster: Self.twoThrottledWorkers(leaderLinearGBps: 0.01)).model
        let segments: [Segment] = [
            .single(stage: 0, .outputChannels), .single(stage: 1, .none), .single(stage: 2, .outputChannels),
        ]
        let alone = model.cost(segments[2]), inPlan = model.costs(segments)
        #expect(inPlan[2].partitions[0].extents == [4, 4, 4])
        #expect(alone.latencyMs > 2.75, "\(alone.latencyMs)")
        #expect(inPlan[2].latencyMs >= 1 && inPlan[2].latencyMs < 1.01, "\(inPlan[2].latencyMs)")
    }

    /// A spin under a quota of 8 % with 50 ms periods: 4 ms bursts, stalls ending at 40, 90, 140 and 190 ms. Cut
    /// at 0 and 210 ms the window holds a fresh burst at its start and part of one at its end (10 ms of CPU in
    /// 210 ms: 4.8 %); the whole periods between the first and last stall's end hold 12 ms in 150 ms: 8 %.
    /// With fewer than three stalls there are no whole periods to count, and the window is all there is.
    @Test func theShareIsCountedOverWholePeriods() {
        let ms: UInt64 = 1_000_000
        let wall = [0, 40, 90, 140, 190, 210].map { $0 * ms }, cpu = [0, 4, 8, 12, 16, 18].map { $0 * ms }
        #expect(abs(CPUAllowance.share(wallNs: wall, cpuNs: cpu) - 0.08) < 1e-12)
        #expect(
            abs(
                CPUAllowance.share(wallNs: [0, 40, 90, 100].map { $0 * ms }, cpuNs: [0, 4, 8, 9].map { $0 * ms }) - 0.09
            ) < 1e-12)
        // Without a quota the spin never stalls: CPU over wall, at most 1.
        #expect(CPUAllowance.share(wallNs: [0, 300 * ms], cpuNs: [0, 301 * ms]) == 1)
    }

    /// A Winograd conv is costed at the board's `conv_winograd` rate; a profile taken before that class
    /// existed costs it as the blocked 3x3 kernel. 16 -> 16 channels, 3x3, 8x8 output: 16 x 16 x 9 x 64 = 147456
    /// multiply-adds, 294912 FLOPs: at 1 GFLOP/s 0.294912 ms, at 4 GFLOP/s 0.073728 ms.
    @Test func aWinogradConvIsCostedAtItsOwnRate() throws {
        let link = LinkProfile(latencyMs: 0.5, bandwidthMbps: 8, sendCpuNsPerByte: 0, receiveCpuNsPerByte: 0)
        let g = ConvGeometry(
            inChannels: 16, inHeight: 8, inWidth: 8, outChannels: 16, kernelH: 3, kernelW: 3, strideH: 1, strideW: 1,
            padTop: 1, padLeft: 1, padBottom: 1, padRight: 1, algorithm: .winograd)
        #expect(KernelClass(.conv(g, .none)) == .convWinograd)
        let net = Network(name: "w", inputShape: [1, 16, 8, 8], layers: [Layer(name: "c", kind: .conv(g, .none))])
        func computeMs(_ profile: BoardProfile) -> Double {
            let cluster = Cluster(devices: [Self.board("one", profile)], leader: 0)
            return Planner(network: net, cluster: cluster).model.cost(.single(stage: 0, .none)).computeMs
        }
        var old = Self.profile(rate: 1, link: link)
        #expect(abs(computeMs(old) - 0.294912) < 1e-9, "\(computeMs(old))")
        old.kernels[.convWinograd] = KernelFit(overheadUs: 0, gigaPerSecond: 4)
        #expect(abs(computeMs(old) - 0.073728) < 1e-9, "\(computeMs(old))")
    }

    /// Two workers under a quota (half a core: 5 ms runs, then 5 ms stalls), each handed 5 ms of full-speed
    /// work at a random moment of its own cycle, and a leader that is done at once: the leader waits for
    /// the later of the two. One worker's time T is 10 ms when its input lands while it runs (it runs out
    /// its turn, stalls 5 ms, finishes) and 15 - 10u when it lands stalled at phase u >= 0.5: mean 8.75
    /// ms, but E[max(T1, T2)] = 0.75 x 10 + 0.25 x (5 + 5 x 2/3) = 9.583 ms, by hand. A model that
    /// scheduled each worker's mean would say 8.75.
    @Test func theSlowerOfTwoThrottledWorkersSetsThePace() throws {
        let c = Self.fc1ByOutputChannels(on: Self.twoThrottledWorkers(leaderLinearGBps: 1))
        #expect(c.partitions[0].extents == [48, 40, 40])
        // 64 lattice samples of the two phases estimate 9.583 to within 0.01; the leader's copies add 0.003.
        #expect(abs(c.latencyMs - 9.583) < 0.02, "\(c.latencyMs)")
    }

    /// The leader's sends are serialised on its link, whose shaper lets 512 bytes through at once;
    /// three equal boards, 8 Mbit/s (1000 bytes per ms), 0.5 ms latency, fc1 (256 -> 128) by output
    /// channels, worked out by hand.
    @Test func theLeadersSendsQueueOnItsShapedLink() throws {
        func link(_ burst: Double) -> LinkProfile {
            LinkProfile(
                latencyMs: 0.5, bandwidthMbps: 8, sendCpuNsPerByte: 0, receiveCpuNsPerByte: 0, burstBytes: burst)
        }
        let cluster = Cluster(
            devices: [
                Self.board("a", Self.profile(rate: 1, link: link(512))),
                Self.board("b", Self.profile(rate: 1, link: link(0))),
                Self.board("c", Self.profile(rate: 1, link: link(0))),
            ], leader: 0)
        let c = Self.fc1ByOutputChannels(on: cluster)
        // 16 units of 8 channels, 5.33 each: the leftover unit to the first board.
        #expect(c.partitions[0].extents == [48, 40, 40])
        // b's 1024-byte input, offered at 0.001024 ms (its copy): 512 bytes at once, 512 at the rate on the
        // leader's side; b's side passes it all at the rate: 1.025024 ms. c's, offered at 0.002048 ms, waits
        // for b's to leave the leader's side (0.513024 ms) and its bucket is empty: 1.537024 ms.
        // Each worker then computes 256 x 40 x 4 = 40960 B (0.04096 ms) after 0.5 ms: b ready at
        // 1.565984, c at 2.077984. Each 160-byte answer takes 0.16 ms on the worker's side; the
        // leader's side lets it through at once. b arrives at 1.725984 + 0.5 and is placed (0.00016 ms):
        // 2.226144; c at 2.237984 + 0.5, placed: 2.738144; the 512-byte result copied: 2.738656 ms.
        #expect(abs(c.latencyMs - 2.738656) < 1e-9, "\(c.latencyMs)")
    }

    /// Three boards whose nominal figures are equal: with fast links the big layer is spread over all
    /// three; when the third board's profile says its link does 1 Mbit/s (the 16 KiB input alone takes
    /// 131 ms) the plan keeps the layer on the leader. Without profiles nothing changes.
    @Test func aSlowLinkInTheProfileChangesThePlan() throws {
        let net = Network(
            name: "wide", inputShape: [1, 4096],
            layers: [Layer(name: "fc", kind: .linear(LinearGeometry(inFeatures: 4096, outFeatures: 4096), .relu))])
        func fcExtents(thirdLinkMbps: Double?) throws -> [Int] {
            func link(_ mbps: Double) -> LinkProfile {
                LinkProfile(latencyMs: 0.1, bandwidthMbps: mbps, sendCpuNsPerByte: 1, receiveCpuNsPerByte: 1)
            }
            let profiles = [link(1000), link(1000), link(thirdLinkMbps ?? 1000)].map {
                Self.profile(rate: 1, link: $0)
            }
            let boards = (0..<3).map { Self.board("b\($0)", thirdLinkMbps == nil ? nil : profiles[$0]) }
            let plan = try Planner(network: net, cluster: Cluster(devices: boards, leader: 0)).plan(.optimal)
            return plan.partitions[0].extents
        }
        // 64 MiB of weights at 1 GB/s: 67 ms on one board; a third each, after a 16 KiB message at
        // 1000 Mbit/s (0.13 ms), is far faster.
        #expect(try fcExtents(thirdLinkMbps: 1000).allSatisfy { $0 > 0 })
        #expect(try fcExtents(thirdLinkMbps: 1) == [4096, 0, 0])
        #expect(try fcExtents(thirdLinkMbps: nil).allSatisfy { $0 > 0 })
    }
}
