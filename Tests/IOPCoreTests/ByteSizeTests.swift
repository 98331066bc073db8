import IOPCore
import Testing

/// Sizes are parsed in 64-bit arithmetic, so the flags a 32-bit board is given (`1.5GiB`) cannot
/// overflow its Int mid-parse; on this 64-bit host the values come back exact.
@Suite struct ByteSizeTests {
    @Test func unitsAndFractions() {
        #expect(parseByteSize("1.5GiB") == 3 << 29)
        #expect(parseByteSize("3.25GiB") == 13 << 28)
        #expect(parseByteSize("2147483648") == 1 << 31)
        #expect(parseByteSize("4096KiB") == 4 << 20)
        #expect(parseByteSize("0.5KB") == 500)
    }

    @Test func nonsenseIsNilNotATrap() {
        #expect(parseByteSize("99999999999GiB") == nil)  // beyond 64 bits: used to trap
        #expect(parseByteSize("9223372036854775807.5KiB") == nil)
        #expect(parseByteSize("0B") == nil && parseByteSize("1.GiB") == nil && parseByteSize("GiB") == nil)
    }
}
