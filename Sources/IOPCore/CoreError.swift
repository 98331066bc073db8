/// Errors of the board runtime. Typed throws keep the module Embedded-compatible.
public enum CoreError: Error, Equatable, Sendable {
    /// A layer's geometry is inconsistent (the message says which value and why).
    case invalidShape(String)
    /// The fixed arena could not be allocated.
    case outOfMemory(bytes: Int)
    /// Worker threads could not be started.
    case threadStartFailed(threads: Int)

    public var message: String {
        switch self {
        case .invalidShape(let m): return "invalid layer geometry: " + m
        case .outOfMemory(let b): return "cannot allocate an arena of " + String(b) + " bytes"
        case .threadStartFailed(let t): return "cannot start " + String(t) + " worker threads"
        }
    }
}
