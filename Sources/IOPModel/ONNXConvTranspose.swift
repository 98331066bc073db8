import IOPCore

/// ONNX ConvTranspose (opsets 1 and 11, the same for 2-D) to and from iop's layer.
enum ONNXConvTranspose {
    /// ONNX holds the weights as [in][out / group][kh][kw]; iop's interchange layout keeps each output
    /// channel's weights together, [out][in / group][kh][kw], as a conv's, so shards carry whole channels.
    /// `toONNX` goes back.
    static func reorder(_ w: [Float], _ g: ConvTransposeGeometry, toONNX: Bool) -> [Float] {
        if w.isEmpty { return w }
        let icg = g.inGroupChannels, ocg = g.outGroupChannels, taps = g.kernelH * g.kernelW
        var out = [Float](repeating: 0, count: w.count)
        for ic in 0..<g.inChannels {
            let group = ic / icg
            for local in 0..<ocg {
                let onnx = (ic * ocg + local) * taps, iop = ((group * ocg + local) * icg + ic % icg) * taps
                for t in 0..<taps {
                    if toONNX { out[onnx + t] = w[iop + t] } else { out[iop + t] = w[onnx + t] }
                }
            }
        }
        return out
    }

    /// The geometry of a ConvTranspose node reading an NCHW tensor of `shape` with weights of `dims`:
    /// output_shape and auto_pad resolved to pads as ONNX (and ONNX Runtime) do.
    static func geometry(
        node: String, shape: [Int], weightDims dims: [Int], ints: (String) -> [Int]?, autoPad: String, group: Int
    ) throws -> ConvTransposeGeometry {
        func refuse(_ why: String) -> ModelError { ModelError.invalidModel("ConvTranspose '\(node)': \(why)") }
        guard shape.count == 4 else { throw refuse("needs an NCHW input, got shape \(shape)") }
        guard dims.count == 4 else { throw refuse("weight must be 4-D ([in][out / group][kh][kw]), got \(dims)") }
        guard group > 0, dims[0] == shape[1], shape[1] % group == 0 else {
            throw refuse("weight \(dims) with group \(group) does not fit \(shape[1]) input channels")
        }
        func pair(_ key: String, _ d: [Int]) throws -> [Int] {
            let v = ints(key) ?? d
            guard v.count == 2 else { throw refuse("\(key) \(v) is not supported (2-D only)") }
            return v
        }
        let k = try pair("kernel_shape", [dims[2], dims[3]]), s = try pair("strides", [1, 1])
        let d = try pair("dilations", [1, 1]), adj = try pair("output_padding", [0, 0])
        guard k == [dims[2], dims[3]] else { throw refuse("kernel_shape \(k) disagrees with weight \(dims)") }
        guard s.allSatisfy({ $0 > 0 }), d.allSatisfy({ $0 > 0 }) else {
            throw refuse("strides \(s) and dilations \(d) must be positive")
        }
        for a in 0..<2 where adj[a] < 0 || adj[a] >= max(s[a], d[a]) {
            throw refuse("output_padding \(adj) must be >= 0 and less than max(stride, dilation) on each axis")
        }
        let input = [shape[2], shape[3]]
        var full = [0, 0]
        for a in 0..<2 { full[a] = (input[a] - 1) * s[a] + (k[a] - 1) * d[a] + 1 + adj[a] }
        var pads = [0, 0, 0, 0]
        let wanted = try ints("output_shape").map { v throws -> [Int] in
            guard v.count == 2 else { throw refuse("output_shape \(v) is not supported (2 spatial values)") }
            return v
        }
        if wanted != nil || autoPad == "SAME_UPPER" || autoPad == "SAME_LOWER" {
            if autoPad != "NOTSET" && autoPad != "SAME_UPPER" && autoPad != "SAME_LOWER" && autoPad != "VALID" {
                throw refuse("auto_pad '\(autoPad)' is not supported")
            }
            let out = wanted ?? [input[0] * s[0], input[1] * s[1]]
            for a in 0..<2 {
                let total = full[a] - out[a]
                guard total >= 0 else {
                    throw refuse("output_shape \(out) exceeds the full output \(full) of the input, kernel and strides")
                }
                // SAME_UPPER puts the odd pad at the end, everything else at the start (the ONNX text).
                pads[a] = autoPad == "SAME_UPPER" ? total / 2 : total - total / 2
                pads[a + 2] = total - pads[a]
            }
        } else {
            switch autoPad {
            case "NOTSET":
                let p = ints("pads") ?? [0, 0, 0, 0]
                guard p.count == 4, p.allSatisfy({ $0 >= 0 }) else {
                    throw refuse("pads \(p) is not supported (4 non-negative values)")
                }
                pads = p
            case "VALID": break
            default: throw refuse("auto_pad '\(autoPad)' is not supported")
            }
        }
        let g = ConvTransposeGeometry(
            inChannels: shape[1], inHeight: shape[2], inWidth: shape[3], outChannels: dims[1] * group,
            kernelH: k[0], kernelW: k[1], strideH: s[0], strideW: s[1], dilationH: d[0], dilationW: d[1],
            padTop: pads[0], padLeft: pads[1], padBottom: pads[2], padRight: pads[3], outputPaddingH: adj[0],
            outputPaddingW: adj[1], groups: group)
        do { try g.validate() } catch { throw refuse(error.message) }
        return g
    }
}
