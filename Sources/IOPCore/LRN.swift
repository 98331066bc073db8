/// Local response normalization across channels (ONNX LRN, AlexNet's and GoogLeNet's): each value
/// divided by (bias + alpha / size * the sum of squares over the `size` channels around it) ^ beta,
/// the window reaching floor((size - 1) / 2) channels down and the rest up.
public enum LRNKernel {
    public static func run(
        input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, channels: Int, plane: Int, size: Int,
        alpha: Float, beta: Float, bias: Float
    ) {
        let n = KVec.scalarCount, down = (size - 1) / 2, up = size - 1 - down
        let a = KVec(repeating: alpha / Float(size)), b = KVec(repeating: bias), minusBeta = KVec(repeating: -beta)
        for c in 0..<channels {
            let lo = max(0, c - down), hi = min(channels - 1, c + up)
            var i = 0
            while i < plane {
                let lanes = min(n, plane - i)
                var s = KVec(repeating: 0)
                for j in lo...hi {
                    let v = loadVec(input + j * plane + i, lanes: lanes)
                    s += v * v
                }
                // x * d^-beta as x * e^(-beta ln d): d >= bias > 0.
                let d = b + a * s
                let y = loadVec(input + c * plane + i, lanes: lanes) * VectorMath.exp(minusBeta * VectorMath.log(d))
                storeVec(y, output + c * plane + i, lanes: lanes)
                i += n
            }
        }
    }
}
