#!/usr/bin/env python3
"""Builds the ONNX fixtures iop's tests compare against.

Each case is a small ONNX model (NAME.onnx), a random input (NAME.input.npy)
and ONNX Runtime's output for it (NAME.output.npy). Cases listed in
errors.json are models iop must refuse, with a piece of the expected message.

Regenerate (needs `pip install onnx onnxruntime numpy`):
    python3 Tests/TestSupport/Fixtures/make_fixtures.py
The outputs are deterministic for a given onnxruntime version (seeded inputs
and weights); commit the regenerated files.
"""
import json
import os

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(20241126)


class Chain:
    """A linear chain of nodes, each consuming the previous node's output."""

    def __init__(self, name, input_shape, opset=13):
        self.name, self.input_shape, self.opset = name, list(input_shape), opset
        self.nodes, self.inits, self.current, self.n = [], [], "input", 0
        self.float_data = False  # alternate raw_data / float_data initializers

    def const(self, array, dtype=np.float32):
        self.n += 1
        name = f"c{self.n}"
        array = np.asarray(array, dtype=dtype)
        if dtype == np.float32 and self.float_data:
            t = helper.make_tensor(name, TensorProto.FLOAT, array.shape, array.flatten().tolist(), raw=False)
        else:
            t = numpy_helper.from_array(array, name)
        self.inits.append(t)
        return name

    def weights(self, *shape):
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else shape[0]
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)

    def node(self, op, extra_inputs=(), outputs=1, **attrs):
        self.n += 1
        out = f"t{self.n}"
        outs = [out] + [f"{out}_extra{i}" for i in range(outputs - 1)]
        self.nodes.append(helper.make_node(op, [self.current, *extra_inputs], outs, name=f"{op.lower()}_{self.n}", **attrs))
        self.current = out
        return self

    def conv(self, c_in, c_out, k, bias=True, group=1, **attrs):
        kh, kw = (k, k) if isinstance(k, int) else k
        ins = [self.const(self.weights(c_out, c_in // group, kh, kw))]
        if bias:
            ins.append(self.const(rng.uniform(-0.5, 0.5, c_out)))
        return self.node("Conv", ins, group=group, **attrs)

    def conv_transpose(self, c_in, c_out, k, bias=True, group=1, **attrs):
        kh, kw = (k, k) if isinstance(k, int) else k
        ins = [self.const(self.weights(c_in, c_out // group, kh, kw))]
        if bias:
            ins.append(self.const(rng.uniform(-0.5, 0.5, c_out)))
        return self.node("ConvTranspose", ins, group=group, **attrs)

    def save(self):
        graph = helper.make_graph(
            self.nodes, self.name,
            [helper.make_tensor_value_info("input", TensorProto.FLOAT, self.input_shape)],
            [helper.make_tensor_value_info(self.current, TensorProto.FLOAT, None)],
            self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)], producer_name="iop-fixtures")
        model.ir_version = 8
        model = onnx.shape_inference.infer_shapes(model, strict_mode=False)
        if not model.graph.output[0].type.tensor_type.HasField("shape"):
            model.graph.output[0].type.tensor_type.shape.SetInParent()
        path = os.path.join(HERE, self.name + ".onnx")
        onnx.save(model, path)
        return path


def case(chain, spread=1.0):
    path = chain.save()
    x = (rng.uniform(-1, 1, chain.input_shape) * spread).astype(np.float32)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    (y,) = sess.run(None, {"input": x})
    np.save(os.path.join(HERE, chain.name + ".input.npy"), x)
    np.save(os.path.join(HERE, chain.name + ".output.npy"), y.astype(np.float32))
    print(f"{chain.name}: input {list(x.shape)} -> output {list(y.shape)}")


def main():
    for f in os.listdir(HERE):
        # The audio front end's fixtures come from make_audio_fixtures.py.
        if f.endswith((".onnx", ".npy")) and not f.startswith("audio_"):
            os.remove(os.path.join(HERE, f))

    # Conv: pads, strides, dilations, auto_pad, groups, partial channel blocks.
    case(Chain("conv_pad1", [1, 5, 9, 9]).conv(5, 10, 3, pads=[1, 1, 1, 1]))
    case(Chain("conv_stride2_asym_pads_nobias", [1, 4, 11, 10]).conv(4, 7, 3, bias=False, strides=[2, 2], pads=[1, 0, 2, 1]))
    case(Chain("conv_dilation2", [1, 3, 12, 12]).conv(3, 6, 3, dilations=[2, 2], pads=[2, 2, 2, 2]))
    case(Chain("conv_same_upper_stride2", [1, 3, 9, 9]).conv(3, 5, 3, strides=[2, 2], auto_pad="SAME_UPPER"))
    case(Chain("conv_same_lower_k4", [1, 3, 8, 8]).conv(3, 5, 4, auto_pad="SAME_LOWER"))
    case(Chain("conv_valid_5x3", [1, 2, 9, 8]).conv(2, 4, (5, 3), auto_pad="VALID"))
    case(Chain("conv_group2", [1, 8, 7, 7]).conv(8, 12, 3, group=2, pads=[1, 1, 1, 1]))
    case(Chain("conv_depthwise_relu", [1, 6, 10, 10]).conv(6, 6, 3, group=6, pads=[1, 1, 1, 1]).node("Relu"))
    case(Chain("conv_depthwise_mult2_stride2", [1, 4, 9, 9]).conv(4, 8, 3, group=4, strides=[2, 2], pads=[1, 1, 1, 1]))
    case(Chain("conv_1x1_40ch", [1, 16, 6, 6]).conv(16, 40, 1))
    case(Chain("conv_tiny_output", [1, 8, 3, 3]).conv(8, 33, 3))
    c = Chain("conv_bn_relu", [1, 3, 8, 8]).conv(3, 6, 3, pads=[1, 1, 1, 1])
    c.node("BatchNormalization", [c.const(rng.uniform(0.5, 1.5, 6)), c.const(rng.uniform(-0.5, 0.5, 6)),
                                  c.const(rng.uniform(-0.5, 0.5, 6)), c.const(rng.uniform(0.5, 2.0, 6))], epsilon=1e-3)
    case(c.node("Relu"))
    c = Chain("conv_clip", [1, 3, 8, 8]).conv(3, 6, 3)
    case(c.node("Clip", [c.const(np.float32(0)), c.const(np.float32(0.5))]))
    c = Chain("clip_min_only", [1, 3, 6, 6]).conv(3, 4, 3)
    case(c.node("Clip", [c.const(np.float32(-0.2))]))
    case(Chain("conv_clip_opset10_attrs", [1, 3, 6, 6], opset=10).conv(3, 4, 3).node("Clip", min=-0.3, max=0.4))
    c = Chain("conv_float_data", [1, 3, 6, 6])
    c.float_data = True
    case(c.conv(3, 4, 3, pads=[1, 1, 1, 1]))

    # Pools: pads, strides, ceil_mode, count_include_pad.
    case(Chain("maxpool_k3s2_ceil_pad1", [1, 3, 10, 10]).node("MaxPool", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1))
    case(Chain("maxpool_k2_floor", [1, 3, 7, 9]).node("MaxPool", kernel_shape=[2, 2], strides=[2, 2]))
    case(Chain("maxpool_asym_pads", [1, 2, 8, 8]).node("MaxPool", kernel_shape=[3, 2], strides=[1, 2], pads=[1, 0, 2, 1]))
    case(Chain("maxpool_same_upper", [1, 2, 7, 7]).node("MaxPool", kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER"))
    case(Chain("avgpool_include_pad", [1, 3, 9, 9]).node("AveragePool", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=1))
    case(Chain("avgpool_exclude_pad_ceil", [1, 3, 10, 10]).node("AveragePool", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1))
    case(Chain("avgpool_include_pad_ceil", [1, 3, 10, 10]).node("AveragePool", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1, count_include_pad=1))
    case(Chain("avgpool_nopad", [1, 2, 6, 6]).node("AveragePool", kernel_shape=[2, 2], strides=[2, 2]))

    # Linear layers: Gemm attributes, MatMul + Add, Flatten/Reshape, Softmax.
    c = Chain("gap_flatten_gemm", [1, 6, 5, 5]).node("GlobalAveragePool").node("Flatten", axis=1)
    case(c.node("Gemm", [c.const(c.weights(9, 6)), c.const(rng.uniform(-0.5, 0.5, 9))], transB=1))
    c = Chain("gemm_alpha_beta", [1, 20])
    case(c.node("Gemm", [c.const(c.weights(20, 37).reshape(20, 37)), c.const(rng.uniform(-0.5, 0.5, (1, 37)))], alpha=0.5, beta=2.0))
    c = Chain("gemm_transA", [20, 1])
    case(c.node("Gemm", [c.const(c.weights(20, 7).reshape(20, 7)), c.const(np.float32(0.25))], transA=1))
    c = Chain("gemm_nobias_relu", [1, 33])
    case(c.node("Gemm", [c.const(c.weights(40, 33))], transB=1).node("Relu"))
    c = Chain("matmul_add_relu_softmax", [1, 2, 4, 4]).node("Flatten")
    c.node("MatMul", [c.const(c.weights(32, 11).reshape(32, 11))]).node("Add", [c.const(rng.uniform(-0.5, 0.5, 11))])
    case(c.node("Relu").node("Softmax", axis=-1))
    c = Chain("conv_reshape_gemm_softmax", [1, 2, 5, 5], opset=11).conv(2, 3, 3)
    c.node("Reshape", [c.const(np.array([1, -1]), dtype=np.int64)])
    case(c.node("Gemm", [c.const(c.weights(4, 27)), c.const(rng.uniform(-0.5, 0.5, 4))], transB=1).node("Softmax", axis=1))
    c = Chain("conv_dropout_identity_relu", [1, 3, 6, 6]).conv(3, 4, 3)
    case(c.node("Dropout").node("Identity").node("Relu"))
    c = Chain("standalone_relu_after_pool", [1, 3, 8, 8]).node("MaxPool", kernel_shape=[2, 2], strides=[2, 2])
    case(c.node("Relu"))

    # A small LeNet-style network with everything chained.
    c = Chain("mini_lenet", [1, 1, 16, 16]).conv(1, 6, 5, pads=[2, 2, 2, 2]).node("Relu")
    c.node("MaxPool", kernel_shape=[2, 2], strides=[2, 2]).conv(6, 16, 3).node("Relu")
    c.node("AveragePool", kernel_shape=[2, 2], strides=[2, 2]).node("Flatten")
    c.node("Gemm", [c.const(c.weights(32, 144)), c.const(rng.uniform(-0.5, 0.5, 32))], transB=1).node("Relu")
    case(c.node("Gemm", [c.const(c.weights(10, 32)), c.const(rng.uniform(-0.5, 0.5, 10))], transB=1).node("Softmax"))

    # Models iop must refuse, with a piece of the message each must contain.
    errors = []
    c = Chain("error_unsupported_erf", [1, 3, 6, 6]).conv(3, 4, 3).node("Erf")
    c.save(); errors.append({"name": c.name, "message": "unsupported operator 'Erf'"})
    c = Chain("error_mul_two_tensors", [1, 3, 6, 6]).conv(3, 3, 3, pads=[1, 1, 1, 1])
    first = c.current
    c.nodes.append(helper.make_node("Mul", [first, first], ["product"], name="gate_mul"))
    c.current = "product"
    c.save(); errors.append({"name": c.name, "message": "unsupported operator 'Mul (of two tensors)' (node 'gate_mul')"})

    # A MobileNet-style depthwise-separable chain (the cluster tests run it under every planner).
    # Drawn last, so adding it left every earlier case's weights and inputs as they were.
    c = Chain("mobilenet_block", [1, 3, 32, 32]).conv(3, 16, 3, strides=[2, 2], pads=[1, 1, 1, 1]).node("Relu")
    c.conv(16, 16, 3, group=16, pads=[1, 1, 1, 1]).node("Relu").conv(16, 32, 1).node("Relu")
    c.conv(32, 32, 3, group=32, strides=[2, 2], pads=[1, 1, 1, 1]).node("Relu").conv(32, 64, 1).node("Relu")
    c.node("GlobalAveragePool").node("Flatten")
    case(c.node("Gemm", [c.const(c.weights(10, 64)), c.const(rng.uniform(-0.5, 0.5, 10))], transB=1))

    # Graphs (issue 15), drawn after everything above so every earlier case keeps its weights and inputs.
    def bn(c, n):
        return c.node("BatchNormalization", [c.const(rng.uniform(0.5, 1.5, n)), c.const(rng.uniform(-0.5, 0.5, n)),
                                             c.const(rng.uniform(-0.5, 0.5, n)), c.const(rng.uniform(0.5, 2.0, n))])

    # A residual block as PyTorch exports one: conv-BN-relu, conv-BN, add the block's input, relu.
    c = Chain("residual_block", [1, 8, 8, 8])
    x = c.current
    bn(c.conv(8, 8, 3, bias=False, pads=[1, 1, 1, 1]), 8).node("Relu")
    bn(c.conv(8, 8, 3, bias=False, pads=[1, 1, 1, 1]), 8)
    case(c.node("Add", [x]).node("Relu"))
    # A downsampling block: the shortcut is a strided 1x1 conv, read after the main path (the input lives on).
    c = Chain("residual_downsample", [1, 4, 9, 9])
    x = c.current
    c.conv(4, 8, 3, strides=[2, 2], pads=[1, 1, 1, 1]).node("Relu").conv(8, 8, 3, pads=[1, 1, 1, 1])
    main = c.current
    c.current = x
    case(c.conv(4, 8, 1, strides=[2, 2]).node("Add", [main]).node("Relu"))
    # A fire module: squeeze, then 1x1 and 3x3 expands concatenated along channels.
    c = Chain("fire_concat", [1, 6, 7, 7]).conv(6, 4, 1).node("Relu")
    squeeze = c.current
    c.conv(4, 5, 1).node("Relu")
    e1 = c.current
    c.current = squeeze
    c.conv(4, 3, 3, pads=[1, 1, 1, 1]).node("Relu")
    e3 = c.current
    c.current = e1
    case(c.node("Concat", [e3], axis=1).node("GlobalAveragePool"))
    # Mul and Add by per-channel constants (an Unsqueeze/Mul/Add batch norm, folded): after a pool they stay a
    # layer of their own; after a conv they fold into it.
    c = Chain("mul_add_per_channel", [1, 3, 8, 8]).node("MaxPool", kernel_shape=[2, 2], strides=[2, 2])
    c.node("Mul", [c.const(rng.uniform(0.5, 1.5, (3, 1, 1)))]).node("Add", [c.const(rng.uniform(-0.5, 0.5, (3, 1, 1)))])
    c.node("Relu").conv(3, 4, 3).node("Mul", [c.const(rng.uniform(0.5, 1.5, (4, 1, 1)))])
    case(c.node("Add", [c.const(rng.uniform(-0.5, 0.5, (1, 4, 1, 1)))]))
    # A batch norm with no conv before it: a per-channel scale.
    c = Chain("bn_without_conv", [1, 3, 6, 6]).node("MaxPool", kernel_shape=[2, 2])
    case(bn(c, 3).node("Relu"))
    # Sum of three tensors, one of them the input.
    c = Chain("sum_three_branches", [1, 4, 6, 6])
    x = c.current
    c.conv(4, 4, 3, pads=[1, 1, 1, 1])
    a = c.current
    c.current = x
    c.conv(4, 4, 1)
    case(c.node("Sum", [a, x]))

    c = Chain("error_concat_along_height", [1, 2, 4, 4])
    x = c.current
    c.conv(2, 2, 1)
    c.node("Concat", [x], axis=2)
    c.save(); errors.append({"name": c.name, "message": "only along channels"})

    # Pointwise functions (issue 15), drawn after everything above. Inputs spread to +-6 reach the tails
    # of Sigmoid and Tanh and both sides of HardSigmoid's and HardSwish's clamps; opsets 9 to 18.
    case(Chain("leakyrelu_default_opset9", [1, 3, 5, 7], opset=9).node("LeakyRelu"), spread=3)
    case(Chain("leakyrelu_alpha_opset16", [1, 3, 5, 7], opset=16).node("LeakyRelu", alpha=0.3), spread=3)
    c = Chain("conv_prelu_per_channel", [1, 3, 8, 8], opset=9).conv(3, 6, 3, pads=[1, 1, 1, 1])
    case(c.node("PRelu", [c.const(rng.uniform(-0.5, 0.5, (6, 1, 1)))]))
    c = Chain("prelu_scalar_slope_opset16", [1, 4, 5, 5], opset=16)
    case(c.node("PRelu", [c.const(np.array([0.25]))]), spread=3)
    c = Chain("gemm_prelu_features", [1, 12])
    c.node("Gemm", [c.const(c.weights(9, 12)), c.const(rng.uniform(-0.5, 0.5, 9))], transB=1)
    case(c.node("PRelu", [c.const(rng.uniform(-0.5, 0.5, 9))]))
    case(Chain("sigmoid_opset9", [1, 3, 7, 9], opset=9).node("Sigmoid"), spread=40)
    case(Chain("sigmoid_opset13", [1, 5, 4, 4]).node("Sigmoid"), spread=6)
    case(Chain("hardsigmoid_default", [1, 3, 6, 6], opset=9).node("HardSigmoid"), spread=6)
    case(Chain("hardsigmoid_alpha_beta", [1, 3, 6, 6], opset=18).node("HardSigmoid", alpha=0.5, beta=0.4), spread=6)
    case(Chain("hardswish_opset14", [1, 3, 6, 6], opset=14).node("HardSwish"), spread=6)
    case(Chain("hardswish_opset18", [1, 2, 5, 3], opset=18).node("HardSwish"), spread=6)
    case(Chain("tanh_opset9", [1, 3, 7, 9], opset=9).node("Tanh"), spread=40)
    case(Chain("tanh_opset13", [1, 5, 4, 4]).node("Tanh"), spread=3)
    # A chain with every new function after a conv or linear layer (the planner tests run it split every way).
    c = Chain("activations_net", [1, 3, 24, 24], opset=14).conv(3, 16, 3, pads=[1, 1, 1, 1])
    c.node("PRelu", [c.const(rng.uniform(-0.5, 0.5, (16, 1, 1)))]).node("MaxPool", kernel_shape=[2, 2], strides=[2, 2])
    c.conv(16, 24, 3, pads=[1, 1, 1, 1]).node("HardSwish").conv(24, 24, 3, group=24, pads=[1, 1, 1, 1])
    c.node("LeakyRelu", alpha=0.1).conv(24, 32, 1).node("Sigmoid").conv(32, 16, 3, strides=[2, 2], pads=[1, 1, 1, 1])
    c.node("HardSigmoid").node("GlobalAveragePool").node("Flatten")
    case(c.node("Gemm", [c.const(c.weights(10, 16)), c.const(rng.uniform(-0.5, 0.5, 10))], transB=1).node("Tanh"))

    # Dilated and global max pools, Softmax along any axis (one axis from opset 13, flattened from the axis
    # before), LRN, and a batch norm that cannot fold (its conv's activation is fused): drawn after the above.
    case(Chain("maxpool_dilation2", [1, 3, 11, 11], opset=10).node(
        "MaxPool", kernel_shape=[3, 3], dilations=[2, 2], pads=[2, 2, 2, 2]))
    case(Chain("maxpool_dilation_stride2_ceil", [1, 2, 12, 10], opset=12).node(
        "MaxPool", kernel_shape=[2, 3], strides=[2, 2], dilations=[2, 1], pads=[1, 1, 0, 1], ceil_mode=1))
    case(Chain("globalmaxpool", [1, 5, 6, 7]).node("GlobalMaxPool"))
    case(Chain("softmax_channels_opset13", [1, 6, 4, 5]).node("Softmax", axis=1), spread=4)
    case(Chain("softmax_rows_opset13", [1, 3, 5, 4]).node("Softmax", axis=-2), spread=4)
    case(Chain("softmax_default_axis_4d_opset13", [1, 3, 5, 4]).node("Softmax"), spread=4)
    case(Chain("softmax_flatten_from_axis2_opset11", [1, 3, 5, 4], opset=11).node("Softmax", axis=2), spread=4)
    case(Chain("softmax_default_axis_4d_opset9", [1, 3, 5, 4], opset=9).node("Softmax"), spread=4)
    case(Chain("softmax_2d_axis0_opset11", [1, 7], opset=11).node("Softmax", axis=0), spread=4)
    case(Chain("lrn_alexnet", [1, 8, 5, 5]).node("LRN", size=5, alpha=1e-4, beta=0.75, bias=2.0), spread=10)
    case(Chain("lrn_strong_opset9", [1, 7, 4, 6], opset=9).node("LRN", size=3, alpha=0.8, beta=0.6, bias=0.5),
         spread=2)
    case(Chain("lrn_defaults_size3", [1, 4, 3, 3]).node("LRN", size=3), spread=3)
    c = Chain("conv_relu_bn_opset15", [1, 3, 7, 7], opset=15).conv(3, 5, 3).node("Relu")
    case(bn(c, 5))
    # An AlexNet/GoogLeNet-style head with them (the planner tests run it under every planner).
    c = Chain("lrn_pools_net", [1, 3, 20, 20]).conv(3, 12, 3, pads=[1, 1, 1, 1]).node("Relu")
    c.node("LRN", size=5, alpha=0.05, beta=0.75, bias=1.0).node("MaxPool", kernel_shape=[3, 3], dilations=[2, 2], pads=[1, 1, 1, 1])
    c.conv(12, 16, 3, pads=[1, 1, 1, 1]).node("Relu").node("MaxPool", kernel_shape=[2, 2], strides=[2, 2])
    c.conv(16, 8, 1).node("Softmax", axis=1).node("GlobalMaxPool").node("Flatten")
    case(c.node("Gemm", [c.const(c.weights(5, 8)), c.const(rng.uniform(-0.5, 0.5, 5))], transB=1).node("Softmax"))
    # An Inception module: 1x1, 3x3 and 5x5 branches and a pooled 1x1 branch, concatenated along channels.
    c = Chain("inception_block", [1, 8, 9, 9]).conv(8, 8, 1).node("Relu")
    x = c.current
    c.conv(8, 4, 1).node("Relu")
    b1 = c.current
    c.current = x
    c.conv(8, 3, 1).node("Relu").conv(3, 6, 3, pads=[1, 1, 1, 1]).node("Relu")
    b3 = c.current
    c.current = x
    c.conv(8, 2, 1).node("Relu").conv(2, 3, 5, pads=[2, 2, 2, 2]).node("Relu")
    b5 = c.current
    c.current = x
    c.node("MaxPool", kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1]).conv(8, 2, 1).node("Relu")
    bp = c.current
    c.current = b1
    case(c.node("Concat", [b3, b5, bp], axis=1).conv(15, 6, 1).node("GlobalAveragePool"))

    # Pad (pads as an attribute before opset 11, an input after, axes from 18) and nearest Resize/Upsample
    # by whole factors (scales or sizes, each coordinate rule that repeats pixels).
    case(Chain("pad_constant_opset9", [1, 3, 5, 6], opset=9).node("Pad", pads=[0, 0, 1, 2, 0, 0, 3, 1], value=0.5))
    c = Chain("pad_reflect_opset11", [1, 2, 5, 6], opset=11)
    case(c.node("Pad", [c.const(np.array([0, 0, 2, 1, 0, 0, 1, 3]), dtype=np.int64)], mode="reflect"))
    c = Chain("pad_edge_opset13", [1, 2, 4, 5])
    case(c.node("Pad", [c.const(np.array([0, 0, 1, 2, 0, 0, 2, 0]), dtype=np.int64)], mode="edge"))
    c = Chain("pad_constant_axes_opset18", [1, 3, 4, 4], opset=18)
    axes = c.const(np.array([2, 3]), dtype=np.int64)
    case(c.node("Pad", [c.const(np.array([1, 2, 0, 1]), dtype=np.int64), c.const(np.float32(-1.5)), axes]))
    c = Chain("upsample_nearest_opset9", [1, 2, 3, 4], opset=9)
    case(c.node("Upsample", [c.const(np.array([1, 1, 2, 3]))], mode="nearest"))
    c = Chain("resize_nearest_opset10", [1, 2, 3, 4], opset=10)
    case(c.node("Resize", [c.const(np.array([1, 1, 3, 2]))], mode="nearest"))
    c = Chain("resize_asymmetric_floor_opset11", [1, 2, 3, 4], opset=11)
    roi = c.const(np.array([], dtype=np.float32))
    case(c.node("Resize", [roi, c.const(np.array([1, 1, 2, 2]))], mode="nearest",
                coordinate_transformation_mode="asymmetric", nearest_mode="floor"))
    c = Chain("resize_sizes_half_pixel_opset13", [1, 3, 4, 5])
    case(c.node("Resize", ["", "", c.const(np.array([1, 3, 12, 10]), dtype=np.int64)], mode="nearest"))
    c = Chain("resize_scales_default_opset18", [1, 2, 3, 3], opset=18)
    case(c.node("Resize", ["", c.const(np.array([1, 1, 4, 2]))], mode="nearest"))
    # A decoder-style net: a reflect pad before an unpadded conv, and an upsampling head.
    c = Chain("pad_resize_net", [1, 3, 12, 12]).conv(3, 8, 3, strides=[2, 2], pads=[1, 1, 1, 1]).node("Relu")
    c.node("Pad", [c.const(np.array([0, 0, 1, 1, 0, 0, 1, 1]), dtype=np.int64)], mode="reflect").conv(8, 8, 3)
    c.node("Relu").node("Resize", ["", c.const(np.array([1, 1, 2, 2]))], mode="nearest").conv(8, 4, 3, pads=[1, 1, 1, 1])
    case(c.node("Sigmoid"))
    # The shape arithmetic converters emit around Reshape, folded at load: PyTorch's flatten before opset 13
    # (Shape, Gather, Unsqueeze by attribute, Concat), and a longer one (Mul, Cast both ways, Unsqueeze by
    # input, Squeeze, ConstantOfShape, Sub, Div).
    c = Chain("flatten_by_shape_opset11", [1, 3, 6, 6], opset=11).conv(3, 4, 3).node("Relu")
    x = c.current
    c.nodes += [helper.make_node("Shape", [x], ["s"], name="shape"),
                helper.make_node("Gather", ["s", c.const(np.array(0), dtype=np.int64)], ["n"], name="gather", axis=0),
                helper.make_node("Unsqueeze", ["n"], ["n1"], name="unsqueeze", axes=[0]),
                helper.make_node("Concat", ["n1", c.const(np.array([-1]), dtype=np.int64)], ["target"], name="cat", axis=0),
                helper.make_node("Reshape", [x, "target"], ["flat"], name="reshape")]
    c.current = "flat"
    case(c.node("Gemm", [c.const(c.weights(5, 64)), c.const(rng.uniform(-0.5, 0.5, 5))], transB=1))
    c = Chain("flatten_by_shape_arithmetic_opset13", [1, 2, 5, 4]).conv(2, 3, 3, pads=[1, 1, 1, 1])
    x = c.current
    g = lambda i: c.const(np.array(i), dtype=np.int64)
    c.nodes += [helper.make_node("Shape", [x], ["s"], name="shape"),
                helper.make_node("Gather", ["s", g(1)], ["ch"], name="gather_c"),
                helper.make_node("Gather", ["s", g(2)], ["h"], name="gather_h"),
                helper.make_node("Gather", ["s", g(3)], ["w"], name="gather_w"),
                helper.make_node("Mul", ["h", "w"], ["hw"], name="mul_hw"),
                helper.make_node("Mul", ["ch", "hw"], ["chw2"], name="mul_chw"),
                helper.make_node("Cast", ["chw2"], ["chwf"], name="to_float", to=TensorProto.FLOAT),
                helper.make_node("Mul", ["chwf", c.const(np.float32(2))], ["double"], name="twice"),
                helper.make_node("Div", ["double", c.const(np.float32(2))], ["chwf2"], name="halve"),
                helper.make_node("Cast", ["chwf2"], ["chw"], name="to_int", to=TensorProto.INT64),
                helper.make_node("Unsqueeze", ["chw", g([0])], ["u"], name="unsqueeze"),
                helper.make_node("Unsqueeze", ["u", g([0])], ["uu"], name="unsqueeze_more"),
                helper.make_node("Squeeze", ["uu", g([0])], ["sq"], name="squeeze"),
                helper.make_node("ConstantOfShape", [g([1])], ["ones"], name="ones",
                                 value=numpy_helper.from_array(np.array([3], dtype=np.int64))),
                helper.make_node("Sub", ["ones", g(2)], ["one"], name="sub"),
                helper.make_node("Concat", ["one", "sq"], ["target"], name="cat", axis=0),
                helper.make_node("Reshape", [x, "target"], ["flat"], name="reshape")]
    c.current = "flat"
    case(c.node("Relu").node("Softmax"))
    # ShuffleNet's channel shuffle: Reshape (with 0 and -1), Transpose, Reshape, between grouped convs.
    c = Chain("channel_shuffle_net", [1, 6, 7, 7]).conv(6, 12, 1, group=3).node("Relu")
    c.node("Reshape", [c.const(np.array([0, 3, -1, 7, 7]), dtype=np.int64)]).node("Transpose", perm=[0, 2, 1, 3, 4])
    c.node("Reshape", [c.const(np.array([1, -1, 7, 7]), dtype=np.int64)]).conv(12, 12, 3, group=12, pads=[1, 1, 1, 1])
    case(c.conv(12, 6, 1, group=3).node("GlobalAveragePool"))
    c = Chain("error_resize_linear", [1, 2, 3, 3])
    c.node("Resize", ["", c.const(np.array([1, 1, 2, 2]))], mode="linear")
    c.save(); errors.append({"name": c.name, "message": "supported in nearest mode"})
    c = Chain("error_resize_rounding", [1, 2, 3, 3], opset=13)
    c.node("Resize", ["", c.const(np.array([1, 1, 3, 3]))], mode="nearest", coordinate_transformation_mode="asymmetric")
    c.save(); errors.append({"name": c.name, "message": "does not repeat whole pixels"})
    # A MobileNetV2 inverted residual as torchvision exports it: 1x1 expand, BN, ReLU6 (Clip 0..6), 3x3
    # depthwise, BN, ReLU6, 1x1 project, BN, then the block's input added. Drawn last: earlier cases keep theirs.
    c = Chain("mobilenet_v2_block", [1, 8, 8, 8])
    x = c.current
    bn(c.conv(8, 24, 1, bias=False), 24).node("Clip", [c.const(np.float32(0)), c.const(np.float32(6))])
    bn(c.conv(24, 24, 3, bias=False, group=24, pads=[1, 1, 1, 1]), 24)
    c.node("Clip", [c.const(np.float32(0)), c.const(np.float32(6))])
    bn(c.conv(24, 8, 1, bias=False), 8)
    case(c.node("Add", [x]), spread=4.0)

    # ConvTranspose (a decoder's learned upsampling), opsets 9 to 18: strides, dilations, pads, output_padding,
    # auto_pad, output_shape, groups (depthwise too), a batch norm and ReLU folded in. Drawn after all the above.
    case(Chain("convtranspose_k4s2p1", [1, 6, 5, 5]).conv_transpose(6, 10, 4, strides=[2, 2], pads=[1, 1, 1, 1]))
    case(Chain("convtranspose_stride3_dilation2_outpad_opset11", [1, 4, 4, 5], opset=11).conv_transpose(
        4, 9, 3, bias=False, strides=[3, 2], dilations=[2, 1], pads=[1, 0, 2, 1], output_padding=[1, 1]))
    case(Chain("convtranspose_group2_same_upper_opset9", [1, 8, 4, 4], opset=9).conv_transpose(
        8, 6, 3, group=2, strides=[2, 2], auto_pad="SAME_UPPER"))
    case(Chain("convtranspose_same_lower_opset17", [1, 3, 5, 6], opset=17).conv_transpose(
        3, 5, 3, strides=[2, 2], auto_pad="SAME_LOWER"))
    case(Chain("convtranspose_output_shape_opset18", [1, 4, 5, 5], opset=18).conv_transpose(
        4, 12, 3, strides=[2, 2], output_shape=[10, 9], pads=[3, 3, 3, 3]))
    case(Chain("convtranspose_depthwise_relu", [1, 6, 5, 5]).conv_transpose(
        6, 6, 3, group=6, strides=[2, 2], pads=[1, 1, 1, 1], output_padding=[1, 1]).node("Relu"))
    c = Chain("convtranspose_bn_relu_opset15", [1, 8, 5, 5], opset=15).conv_transpose(8, 16, 2, strides=[2, 2])
    case(bn(c, 16).node("Relu"))
    # A U-Net-style decoder: conv down, conv, ConvTranspose up, concatenated with the skip, conv, head.
    c = Chain("convtranspose_decoder", [1, 3, 16, 16]).conv(3, 16, 3, pads=[1, 1, 1, 1]).node("Relu")
    skip = c.current
    c.conv(16, 32, 3, strides=[2, 2], pads=[1, 1, 1, 1]).node("Relu").conv(32, 32, 3, pads=[1, 1, 1, 1]).node("Relu")
    c.conv_transpose(32, 16, 2, strides=[2, 2]).node("Relu")
    c.node("Concat", [skip], axis=1).conv(32, 8, 3, pads=[1, 1, 1, 1]).node("Relu")
    case(c.conv(8, 2, 1).node("Sigmoid"))
    # A chain through a ConvTranspose (the planners split it by output channels, and pair it with the conv after).
    c = Chain("convtranspose_chain", [1, 3, 12, 12]).conv(3, 16, 3, strides=[2, 2], pads=[1, 1, 1, 1]).node("Relu")
    c.conv_transpose(16, 12, 4, strides=[2, 2], pads=[1, 1, 1, 1]).node("Relu")
    case(c.conv(12, 4, 3, pads=[1, 1, 1, 1]))
    c = Chain("error_convtranspose_output_padding", [1, 2, 3, 3]).conv_transpose(
        2, 2, 3, strides=[2, 2], output_padding=[2, 0])
    c.save(); errors.append({"name": c.name, "message": "output_padding [2, 0] must be"})
    # Two ResNet-50 bottlenecks (1x1, 3x3, 1x1, each with its batch norm) after a stem: the first adds its
    # input, the second strides in its 3x3 and adds a strided 1x1 projection of its input; then a head.
    c = Chain("bottleneck_net", [1, 3, 8, 8]).conv(3, 16, 3, pads=[1, 1, 1, 1]).node("Relu")
    x = c.current
    bn(c.conv(16, 8, 1, bias=False), 8).node("Relu")
    bn(c.conv(8, 8, 3, bias=False, pads=[1, 1, 1, 1]), 8).node("Relu")
    bn(c.conv(8, 16, 1, bias=False), 16)
    c.node("Add", [x]).node("Relu")
    x = c.current
    bn(c.conv(16, 12, 1, bias=False), 12).node("Relu")
    bn(c.conv(12, 12, 3, bias=False, strides=[2, 2], pads=[1, 1, 1, 1]), 12).node("Relu")
    bn(c.conv(12, 32, 1, bias=False), 32)
    main = c.current
    c.current = x
    bn(c.conv(16, 32, 1, bias=False, strides=[2, 2]), 32)
    c.node("Add", [main]).node("Relu").node("GlobalAveragePool").node("Flatten")
    case(c.node("Gemm", [c.const(c.weights(5, 32)), c.const(rng.uniform(-0.5, 0.5, 5))], transB=1))
    with open(os.path.join(HERE, "errors.json"), "w") as f:
        json.dump(errors, f, indent=1)


if __name__ == "__main__":
    main()
