/// What makes a model a stream service: the audio front end it was trained with and the rule that
/// turns its scores into alerts. It travels with the model into the bundle, so every board runs the
/// front end the model was trained on; the leader keeps the front end, the patch being scored and
/// the model's output at the end of its arena (`leaderFloats`).
public struct StreamSpec: Equatable, Sendable {
    public var audio: AudioParameters
    public var alerts: AlertRule
    public init(audio: AudioParameters, alerts: AlertRule) { self.audio = audio; self.alerts = alerts }

    /// Floats, in whole 64-byte lines, of the leader's stream region: the front end, one patch, and the
    /// model's `outputCount` outputs.
    public func leaderFloats(outputCount: Int) -> Int {
        func lines(_ n: Int) -> Int { (n + 15) / 16 * 16 }
        return lines(FrontEnd.floatCount(audio)) + lines(audio.patchFrames * audio.melBins) + lines(outputCount)
    }

    public func validate() throws(AudioError) {
        try audio.validate()
        try alerts.validate()
    }
}
