/// Resize and Upsample in nearest mode by whole factors (the importer checks that the model's
/// coordinate rules come to that).
public enum UpsampleKernel {
    /// Nearest-neighbour upsampling by whole factors: every value repeated `scaleH` x `scaleW` times.
    public static func run(
        channels: Int, inHeight: Int, inWidth: Int, scaleH: Int, scaleW: Int, input: UnsafePointer<Float>,
        output: UnsafeMutablePointer<Float>
    ) {
        let outWidth = inWidth * scaleW
        for c in 0..<channels {
            for iy in 0..<inHeight {
                let from = input + (c * inHeight + iy) * inWidth
                let first = output + (c * inHeight + iy) * scaleH * outWidth
                for ox in 0..<outWidth { first[ox] = from[ox / scaleW] }
                for k in 1..<max(scaleH, 1) { (first + k * outWidth).update(from: first, count: outWidth) }
            }
        }
    }
}
