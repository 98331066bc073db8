import IOPAudio
import IOPCore
import IOPModel

// Fixtures of the streaming tests (IOPNodeTests in process, iopTests through iop-node processes).

/// A listening model whose score is known by construction: a conv that copies the log-mel patch into
/// 4 channels (shifted by +10, so the ReLU keeps it whole), then one linear output scoring the mean of
/// the upper 24 mel bands against 0.5 (gain 2). Quiet noise (amplitude 100) has a mean near -1.6 there
/// and scores about 0.015; loud broadband noise (amplitude 8000) has about 2.7 and scores about 0.99
/// (frontend.py gives both means). So planted bursts of loud noise are the leaks, wherever the
/// cluster splits the model.
public func loudnessDetector(consecutive: Int = 2) -> Network {
    let audio = AudioParameters()
    let frames = audio.patchFrames, bands = audio.melBins, channels = 4
    let conv = ConvGeometry(
        inChannels: 1, inHeight: frames, inWidth: bands, outChannels: channels, kernelH: 3, kernelW: 3, padTop: 1,
        padLeft: 1, padBottom: 1, padRight: 1)
    var convWeights = [Float](repeating: 0, count: conv.weightCount)
    for c in 0..<channels { convWeights[c * 9 + 4] = 1 }  // the centre tap
    let features = channels * frames * bands
    let high = 40..<bands, gain: Float = 2
    var weights = [Float](repeating: 0, count: features)
    for c in 0..<channels {
        for f in 0..<frames {
            for b in high { weights[(c * frames + f) * bands + b] = gain / Float(channels * frames * high.count) }
        }
    }
    return Network(
        name: "loudness", inputShape: [1, 1, frames, bands],
        layers: [
            Layer(
                name: "copy", kind: .conv(conv, .relu), weights: convWeights,
                bias: [Float](repeating: 10, count: channels)),
            Layer(
                name: "score", kind: .linear(LinearGeometry(inFeatures: features, outFeatures: 1), .none),
                weights: weights, bias: [-gain * (10 + 0.5)]),
        ],
        stream: StreamSpec(audio: audio, alerts: AlertRule(threshold: 0.5, consecutive: consecutive)))
}

/// Quiet noise with loud bursts at `events` (seconds), as int16 little-endian bytes.
public func plantedStream(seconds: Double, events: [Range<Double>], seed: UInt64 = 3) -> [UInt8] {
    var rng = SplitMix64(seed: seed)
    let n = Int(seconds * 16000)
    var bytes = [UInt8](repeating: 0, count: 2 * n)
    for i in 0..<n {
        let (g, _) = rng.nextGaussianPair()
        let t = Double(i) / 16000
        let amplitude = events.contains { $0.contains(t) } ? 8000.0 : 100.0
        let v = Int16(clamping: Int((g * amplitude).rounded()))
        bytes[2 * i] = UInt8(truncatingIfNeeded: v)
        bytes[2 * i + 1] = UInt8(truncatingIfNeeded: v >> 8)
    }
    return bytes
}
