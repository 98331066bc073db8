/// ShuffleNet's channel shuffle, which converters export as Reshape to [1, g, C/g, H, W], Transpose
/// of the two channel axes and Reshape back: output channel k * g + j is input channel j * C/g + k.
public enum ChannelShuffleKernel {
    public static func run(
        groups: Int, channels: Int, plane: Int, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>
    ) {
        let perGroup = channels / groups
        for c in 0..<channels {
            (output + c * plane).update(from: input + (c % groups * perGroup + c / groups) * plane, count: plane)
        }
    }
}
