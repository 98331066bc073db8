/// How a stream's scores become alerts: a window scores `sigmoid(logit)` from the model's one output;
/// an alert starts once `consecutive` windows in a row reach `threshold` (one loud clunk is not a
/// leak), and ends at the first window below it. Both are chosen on validation data when the model is
/// trained (examples/valve-leak/train.py) and travel with the model.
public struct AlertRule: Equatable, Sendable {
    public var threshold: Float
    public var consecutive: Int
    public init(threshold: Float, consecutive: Int) {
        self.threshold = threshold; self.consecutive = consecutive
    }

    public func validate() throws(AudioError) {
        guard threshold > 0, threshold < 1, consecutive >= 1, consecutive <= 1000 else {
            throw .invalidParameters(
                "alert rule: threshold must lie strictly between 0 and 1 and consecutive windows between 1 and 1000")
        }
    }
}

/// The alert state of one stream, window by window.
public struct AlertDebouncer {
    public let rule: AlertRule
    /// Whether an alert is on.
    public private(set) var active = false
    /// Alerts raised so far.
    public private(set) var raised = 0
    var run = 0
    var runStart = 0.0

    public init(rule: AlertRule) { self.rule = rule }

    /// Takes one window's score; returns the alert's start (the start, in seconds of audio, of the
    /// first window of the run that raised it) when this window raises an alert.
    public mutating func update(score: Float, windowStart: Double) -> Double? {
        guard score >= rule.threshold else {
            run = 0
            active = false
            return nil
        }
        if run == 0 { runStart = windowStart }
        run += 1
        guard !active, run >= rule.consecutive else { return nil }
        active = true
        raised += 1
        return runStart
    }
}
