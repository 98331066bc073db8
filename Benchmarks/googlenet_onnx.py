#!/usr/bin/env python3
"""Writes GoogLeNet's architecture (Szegedy et al. 2015: nine Inception blocks, the 5x5 branches as the paper
has them, no auxiliary classifiers) as an ONNX file with seeded random weights, for timing the planners on
Inception blocks, which the zoo does not have:

    python3 Benchmarks/googlenet_onnx.py /tmp/googlenet.onnx [--input-size 224]
    iop simulate --model /tmp/googlenet.onnx --cluster examples/clusters/compute-bound-gige.json

Needs only numpy and onnx (no torch): the weights are noise, the geometry is GoogLeNet's.
"""
import argparse

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# in, 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool projection (the paper's table 1).
BLOCKS = {
    "3a": (192, 64, 96, 128, 16, 32, 32), "3b": (256, 128, 128, 192, 32, 96, 64),
    "4a": (480, 192, 96, 208, 16, 48, 64), "4b": (512, 160, 112, 224, 24, 64, 64),
    "4c": (512, 128, 128, 256, 24, 64, 64), "4d": (512, 112, 144, 288, 32, 64, 64),
    "4e": (528, 256, 160, 320, 32, 128, 128), "5a": (832, 256, 160, 320, 32, 128, 128),
    "5b": (832, 384, 192, 384, 48, 128, 128),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--input-size", type=int, default=224)
    args = ap.parse_args()
    rng = np.random.default_rng(22)
    nodes, inits = [], []

    def conv(x, cin, cout, k, s, p, name):
        w = (rng.standard_normal((cout, cin, k, k)) * np.sqrt(2 / (cin * k * k))).astype(np.float32)
        b = (rng.standard_normal(cout) * 0.01).astype(np.float32)
        inits.extend([numpy_helper.from_array(w, name + ".weight"), numpy_helper.from_array(b, name + ".bias")])
        nodes.append(helper.make_node(
            "Conv", [x, name + ".weight", name + ".bias"], [name], kernel_shape=[k, k], strides=[s, s],
            pads=[p, p, p, p]))
        nodes.append(helper.make_node("Relu", [name], [name + ".relu"]))
        return name + ".relu"

    def maxpool(x, k, s, p, name):
        nodes.append(helper.make_node("MaxPool", [x], [name], kernel_shape=[k, k], strides=[s, s], pads=[p] * 4))
        return name

    x = conv("input", 3, 64, 7, 2, 3, "conv1")
    x = maxpool(x, 3, 2, 1, "maxpool1")
    x = conv(x, 64, 64, 1, 1, 0, "conv2")
    x = conv(x, 64, 192, 3, 1, 1, "conv3")
    x = maxpool(x, 3, 2, 1, "maxpool2")
    for name, (cin, c1, r3, c3, r5, c5, pp) in BLOCKS.items():
        if name == "4a":
            x = maxpool(x, 3, 2, 1, "maxpool3")
        if name == "5a":
            x = maxpool(x, 2, 2, 0, "maxpool4")
        n = "inception" + name
        b1 = conv(x, cin, c1, 1, 1, 0, n + ".branch1")
        b2 = conv(conv(x, cin, r3, 1, 1, 0, n + ".branch2.0"), r3, c3, 3, 1, 1, n + ".branch2.1")
        b3 = conv(conv(x, cin, r5, 1, 1, 0, n + ".branch3.0"), r5, c5, 5, 1, 2, n + ".branch3.1")
        b4 = conv(maxpool(x, 3, 1, 1, n + ".branch4.0"), cin, pp, 1, 1, 0, n + ".branch4.1")
        nodes.append(helper.make_node("Concat", [b1, b2, b3, b4], [n + ".cat"], axis=1))
        x = n + ".cat"
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["avgpool"]))
    nodes.append(helper.make_node("Flatten", ["avgpool"], ["flat"], axis=1))
    w = (rng.standard_normal((1000, 1024)) * 0.01).astype(np.float32)
    b = np.zeros(1000, np.float32)
    inits.extend([numpy_helper.from_array(w, "fc.weight"), numpy_helper.from_array(b, "fc.bias")])
    nodes.append(helper.make_node("Gemm", ["flat", "fc.weight", "fc.bias"], ["output"], transB=1))
    s = args.input_size
    graph = helper.make_graph(
        nodes, "googlenet", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, s, s])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 1000])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    onnx.save(model, args.out)


if __name__ == "__main__":
    main()
