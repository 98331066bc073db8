/// Errors of the audio front end. Typed throws and a plain `String` message keep the module Embedded-compatible;
/// each message names what was found and what was expected, since the operator reading it has only the file.
public enum AudioError: Error, Equatable, Sendable {
    /// A front-end parameter is out of range (the message says which and why).
    case invalidParameters(String)
    /// The bytes are not a RIFF/WAVE file at all.
    case notWAV(String)
    /// A chunk every usable WAVE file has ("fmt " or "data") is missing.
    case missingChunk(String)
    /// A chunk is present but too short or inconsistent.
    case malformedWAV(String)
    /// The samples are not what the model was trained on.
    case unsupportedFormat(found: String, expected: String)

    public var message: String {
        switch self {
        case .invalidParameters(let m): return "invalid audio parameters: " + m
        case .notWAV(let m): return "not a RIFF/WAVE file: " + m
        case .missingChunk(let id): return "WAVE file has no '" + id + "' chunk"
        case .malformedWAV(let m): return "malformed WAVE file: " + m
        case .unsupportedFormat(let found, let expected): return "expected " + expected + ", found " + found
        }
    }
}
