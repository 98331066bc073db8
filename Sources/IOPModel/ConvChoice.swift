import IOPCore

/// Which kernel a model's convs run (`--conv`): all direct; Winograd F(4x4, 3x3) on every conv that
/// can take it (3x3, stride 1, undilated, ungrouped); or `auto`, Winograd where it pays. The choice
/// is written into each conv's geometry, so the planner's memory figures (transformed weights are 4x
/// the direct ones), every slice and every compiled program follow it.
public enum ConvChoice: String, CaseIterable, Sendable {
    case direct, winograd, auto

    /// Below this many input channels the per-tile transforms outweigh the saved multiply-adds, and a
    /// 3-channel first layer runs faster on the direct row kernel.
    public static let autoMinimumInputChannels = 16
    /// Below this many 4x4 output tiles the transformed weights (4x the direct ones, each read once per
    /// tile) outweigh the saved multiply-adds: ResNet-18 at a 64x64 input ran its 8x8 convs 1.6x, its 4x4
    /// ones 4x and its 2x2 ones 11x slower by Winograd, its 16x16 ones 1.35x faster (`iop bench --conv`).
    public static let autoMinimumOutputTiles = 16

    public func algorithm(for g: ConvGeometry) -> ConvAlgorithm {
        guard g.isWinogradEligible else { return .direct }
        switch self {
        case .direct: return .direct
        case .winograd: return .winograd
        case .auto:
            let tiles = ((g.outHeight + 3) / 4) * ((g.outWidth + 3) / 4)
            return g.inChannels >= Self.autoMinimumInputChannels && tiles >= Self.autoMinimumOutputTiles
                ? .winograd : .direct
        }
    }

    public func applied(to layers: [Layer]) -> [Layer] {
        layers.map { layer in
            guard case .conv(var g, let act) = layer.kind else { return layer }
            g.algorithm = algorithm(for: g)
            var out = layer
            out.kind = .conv(g, act)
            return out
        }
    }
}

extension Network {
    /// The same model with its convs' algorithms set by `choice`.
    public func withConvs(_ choice: ConvChoice) -> Network {
        var net = self
        net.layers = choice.applied(to: layers)
        return net
    }
}
