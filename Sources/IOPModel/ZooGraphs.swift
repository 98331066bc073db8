import IOPCore

/// The zoo's graphs: torchvision's ResNet-18, MobileNetV2 and SqueezeNet 1.1, layer names as in
/// torchvision's state dicts. Batch norms are folded into the convs before them, so a conv's seeded
/// weights and bias stand for the folded ones; dropout is the identity at inference.
extension Zoo.Builder {
    /// A tensor the builder has made: its layer and shape, to branch from or join with later.
    struct Tensor {
        var index: Int, c: Int, h: Int, w: Int
        var count: Int { c * h * w }
    }

    var tensor: Tensor { Tensor(index: at, c: c, h: h, w: w) }

    /// Makes `t` the tensor the next layer reads.
    mutating func use(_ t: Tensor) { at = t.index; c = t.c; h = t.h; w = t.w }

    /// The current tensor plus `other` (a residual connection), then the activation.
    mutating func add(_ other: Tensor, act: Activation, name: String) {
        append(Layer(name: name, kind: .add(count: c * h * w, act), inputs: [at, other.index]))
    }

    /// `first` and `second` concatenated along channels.
    mutating func concat(_ first: Tensor, _ second: Tensor, name: String) {
        append(
            Layer(
                name: name, kind: .concat(first: first.count, second: second.count),
                inputs: [first.index, second.index]))
        c = first.c + second.c; h = first.h; w = first.w
    }

    mutating func globalAveragePool(name: String) {
        append(Layer(name: name, kind: .globalAveragePool(channels: c, plane: h * w)))
        h = 1; w = 1
    }

    /// torchvision's `resnet18`: a 7x7 stem, four stages of two basic blocks, global pooling, fc.
    mutating func resnet18() throws {
        try conv(64, k: 7, s: 2, p: 3, name: "conv1")
        try maxPool(3, 2, p: 1, name: "maxpool")
        for (stage, width) in [64, 128, 256, 512].enumerated() {
            for block in 0..<2 {
                let name = "layer\(stage + 1).\(block)"
                let stride = stage > 0 && block == 0 ? 2 : 1
                let x = tensor
                try conv(width, k: 3, s: stride, p: 1, name: name + ".conv1")
                try conv(width, k: 3, p: 1, act: .none, name: name + ".conv2")
                let out = tensor
                var shortcut = x
                if stride != 1 || x.c != width {
                    use(x)
                    try conv(width, k: 1, s: stride, act: .none, name: name + ".downsample.0")
                    shortcut = tensor
                }
                use(out)
                add(shortcut, act: .relu, name: name + ".add")
            }
        }
        globalAveragePool(name: "avgpool")
        linear(1000, relu: false, name: "fc")
    }

    /// torchvision's `mobilenet_v2`: inverted residuals (1x1 expand, 3x3 depthwise, 1x1 linear
    /// projection) with ReLU6, a shortcut where stride and width allow it.
    mutating func mobilenetV2() throws {
        let relu6 = Activation(low: 0, high: 6)
        try conv(32, k: 3, s: 2, p: 1, act: relu6, name: "features.0.0")
        var index = 1
        let settings = [
            (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1),
        ]
        for (t, width, n, s) in settings {
            for i in 0..<n {
                let name = "features.\(index)"
                let stride = i == 0 ? s : 1
                let x = tensor
                var part = 0
                if t != 1 {
                    try conv(x.c * t, k: 1, act: relu6, name: name + ".conv.0.0"); part += 1
                }
                try conv(c, k: 3, s: stride, p: 1, groups: c, act: relu6, name: name + ".conv.\(part).0")
                try conv(width, k: 1, act: .none, name: name + ".conv.\(part + 1)")
                if stride == 1 && x.c == width { add(x, act: .none, name: name + ".add") }
                index += 1
            }
        }
        try conv(1280, k: 1, act: relu6, name: "features.18.0")
        globalAveragePool(name: "avgpool")
        linear(1000, relu: false, name: "classifier.1")
    }

    /// torchvision's `squeezenet1_1`: fire modules (a 1x1 squeeze, then 1x1 and 3x3 expands
    /// concatenated), ceil-mode pools, a 1x1 conv classifier and global pooling.
    mutating func squeezenet11() throws {
        try conv(64, k: 3, s: 2, name: "features.0")
        try maxPool(3, 2, ceil: true, name: "features.2")
        let fires: [(Int, Int, Int)] = [
            (3, 16, 64), (4, 16, 64), (6, 32, 128), (7, 32, 128), (9, 48, 192), (10, 48, 192), (11, 64, 256),
            (12, 64, 256),
        ]
        for (index, squeeze, expand) in fires {
            let name = "features.\(index)"
            try conv(squeeze, k: 1, name: name + ".squeeze")
            let s = tensor
            try conv(expand, k: 1, name: name + ".expand1x1")
            let e1 = tensor
            use(s)
            try conv(expand, k: 3, p: 1, name: name + ".expand3x3")
            concat(e1, tensor, name: name + ".cat")
            if index == 4 || index == 7 { try maxPool(3, 2, ceil: true, name: "features.\(index + 1)") }
        }
        try conv(1000, k: 1, name: "classifier.1")
        globalAveragePool(name: "classifier.3")
    }
}
