import IOPCore
import IOPModel
import IOPPlan
import IOPProgram
import PlanTestSupport
import Testing

/// `--wire`: fp16 halves each message's bytes and adds the conversions at both ends; `auto` takes it
/// per segment where that pays.
@Suite struct WirePrecisionTests {
    /// On one segment, by hand: every message carries half the bytes, so with B Mbit/s on every link the
    /// communication changes by Σ b32 · (1/R − 4/(B · 10^3)) ms (b32 the fp32 bytes of each message, R
    /// the nominal conversion rate in bytes per ms: the leader converts every message it sends or
    /// receives); each worker's part grows by its own conversions.
    @Test func anFP16SegmentSendsHalfTheBytesAndPaysItsConversions() throws {
        let net = try Zoo.make("alexnet", withWeights: false)
        let mbps = 100.0
        let model = CostModel(cluster: Examples.fourBoards(mbps: mbps), network: net)
        for segment in [Segment.single(stage: 2, .outputChannels), .single(stage: 1, .rows), .pair(first: 5)] {
            let full = model.cost(segment, wire: .fp32), half = model.cost(segment, wire: .fp16)
            #expect(full.wire == .fp32 && half.wire == .fp16)
            #expect(half.bytesSent == full.bytesSent.map { $0 / 2 }, "\(segment)")
            #expect(half.messagesSent == full.messagesSent)
            let b32 = Double(full.bytesSent.reduce(0, +))
            let rate = CostModel.nominalHalfBytesPerSecond / 1e3
            let expected = b32 * (1 / rate - 4 / (mbps * 1e3))
            #expect(abs((half.commMs - full.commMs) - expected) < 1e-9 * max(1, abs(expected)), "\(segment)")
            // The workers convert too (where all parts are equal, the longest part is a worker's).
            if case .single(_, .rows) = segment {
                #expect(half.computeMs >= full.computeMs)
            } else {
                #expect(half.computeMs > full.computeMs, "\(segment)")
            }
            // The arenas do not change: fp16 travels in the frames sized for fp32.
            #expect(half.weightBytes == full.weightBytes && half.activationBytes == full.activationBytes)
        }
        // A segment the leader runs alone sends nothing and stays fp32.
        let alone = model.cost(.single(stage: 2, .none), wire: .fp16)
        #expect(alone.wire == .fp32 && alone.bytesSent.allSatisfy { $0 == 0 })
    }

    /// On a slow link the bytes saved cost far more than converting them: `auto` sends fp16 in every
    /// segment that sends anything. On a link faster than the conversion, it keeps fp32.
    @Test func autoTakesFP16OnASlowLinkAndFP32OnAVeryFastOne() throws {
        let net = try Zoo.make("alexnet", withWeights: false)
        for kind in [PlannerKind.oc, .coedge, .iop, .optimal] {
            let slow = try Planner(network: net, cluster: Examples.fourBoards(mbps: 100), wire: .auto).plan(kind)
            let sending = slow.costs.filter { $0.messagesSent.reduce(0, +) > 0 }
            #expect(!sending.isEmpty, "\(kind)")
            #expect(sending.allSatisfy { $0.wire == .fp16 }, "\(kind)")
            // Every segment is at least as fast as in fp32, so a plan of fixed segments, and the best plan, are faster.
            if kind != .iop {
                let fp32 = try Planner(network: net, cluster: Examples.fourBoards(mbps: 100)).plan(kind)
                #expect(slow.modeledLatencyMs < fp32.modeledLatencyMs, "\(kind)")
            }

            let fast = try Planner(network: net, cluster: Examples.fourBoards(mbps: 100_000), wire: .auto).plan(kind)
            if kind == .oc { #expect(fast.costs.contains { $0.messagesSent.reduce(0, +) > 0 }) }
            #expect(fast.costs.allSatisfy { $0.wire == .fp32 }, "\(kind)")
        }
    }

    /// With a calibrated model the conversion is the board's own `fp16` class: a board that converts
    /// very slowly keeps fp32 under `auto` on the same slow link.
    @Test func theProfiledConversionRateDecides() throws {
        let net = try Zoo.make("alexnet", withWeights: false)
        func profiled(fp16GigaPerSecond: Double) -> Cluster {
            var c = Examples.fourBoards(mbps: 100)
            for i in c.devices.indices {
                c.devices[i].profile = BoardProfile(
                    threads: 1,
                    kernels: [
                        .conv3x3: KernelFit(overheadUs: 0, gigaPerSecond: 6),
                        .linear: KernelFit(overheadUs: 0, gigaPerSecond: 2),
                        .copy: KernelFit(overheadUs: 0, gigaPerSecond: 2),
                        .fp16: KernelFit(overheadUs: 0, gigaPerSecond: fp16GigaPerSecond),
                    ],
                    link: LinkProfile(
                        latencyMs: 0.2, bandwidthMbps: 100, sendCpuNsPerByte: 1, receiveCpuNsPerByte: 1))
            }
            return c
        }
        let quick = try Planner(network: net, cluster: profiled(fp16GigaPerSecond: 2), wire: .auto).plan(.oc)
        #expect(quick.costs.contains { $0.wire == .fp16 })
        // 0.001 GB/s: converting a byte takes 1 µs, far more than the 0.08 µs a byte takes on 100 Mbit/s.
        let slow = try Planner(network: net, cluster: profiled(fp16GigaPerSecond: 0.001), wire: .auto).plan(.oc)
        #expect(slow.costs.allSatisfy { $0.wire == .fp32 })
    }
}
