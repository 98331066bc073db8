import CAllocCounter
import IOPAudio
import Testing

/// After init, streaming audio must not touch the heap: the node runs it for as long as the board is up, in its
/// arena only.
@Suite(.serialized) struct AudioAllocationTests {
    @Test func pushingSamplesAllocatesNothing() throws {
        let fixture = AudioFixture.shared
        let p = AudioParameters()
        let memory = UnsafeMutablePointer<Float>.allocate(capacity: FrontEnd.floatCount(p))
        defer { memory.deallocate() }
        var frontEnd = try FrontEnd(parameters: p, memory: memory)
        let output = UnsafeMutablePointer<Float>.allocate(capacity: frontEnd.patchFloatCount)
        defer { output.deallocate() }
        var patches = 0, checksum: Float = 0
        let bytes = fixture.samples.withUnsafeBytes { Array($0) }
        iop_alloc_counter_reset_rendezvous()
        iop_alloc_counter_enroll(1)
        defer { iop_alloc_counter_leave() }
        iop_alloc_counter_start()
        fixture.samples.withUnsafeBufferPointer { all in
            var at = 0, chunk = 1
            while at < all.count {
                let n = min(chunk, all.count - at)
                frontEnd.push(UnsafeBufferPointer(rebasing: all[at..<(at + n)]), into: output) { _ in
                    patches += 1; checksum += output[0]
                }
                at += n; chunk = chunk * 7 % 4001 + 1
            }
        }
        frontEnd.reset()
        bytes.withUnsafeBytes { raw in
            var rest = raw[...]
            while !rest.isEmpty {
                let step = frontEnd.consume(littleEndian: UnsafeRawBufferPointer(rebasing: rest), patch: output)
                rest = rest.dropFirst(2 * step.consumed)
                if step.patch != nil { patches += 1 }
            }
        }
        let allocations = iop_alloc_counter_stop()
        #expect(
            allocations == 0, "\(allocations) heap allocations while streaming \(fixture.samples.count) samples twice")
        #expect(patches == 2 * fixture.patchCount && checksum.isFinite)
        // The counter itself must see allocations, or a zero above proves nothing.
        iop_alloc_counter_start()
        let probe = [Float](repeating: 1, count: 1000 + patches)
        #expect(iop_alloc_counter_stop() >= 1 && probe.count > 0)
    }
}
