#!/usr/bin/env python3
"""Writes torchvision's ResNet-50 architecture as an ONNX file with seeded random weights (batch norms
folded into the convs, as the zoo's graphs are), for timing the planners on a graph the zoo does not have:

    python3 Benchmarks/resnet50_onnx.py /tmp/resnet50.onnx [--input-size 224]
    time iop plan --model /tmp/resnet50.onnx --cluster examples/clusters/compute-bound-gige.json --planner optimal

Needs only numpy and onnx (no torch): the weights are noise, the geometry is ResNet-50's.
"""
import argparse

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--input-size", type=int, default=224)
    args = ap.parse_args()
    rng = np.random.default_rng(50)
    nodes, inits = [], []

    def conv(x, cin, cout, k, s, p, name, relu=True):
        w = (rng.standard_normal((cout, cin, k, k)) * np.sqrt(2 / (cin * k * k))).astype(np.float32)
        b = (rng.standard_normal(cout) * 0.01).astype(np.float32)
        inits.extend([numpy_helper.from_array(w, name + ".weight"), numpy_helper.from_array(b, name + ".bias")])
        nodes.append(helper.make_node(
            "Conv", [x, name + ".weight", name + ".bias"], [name], kernel_shape=[k, k], strides=[s, s],
            pads=[p, p, p, p]))
        if not relu:
            return name
        nodes.append(helper.make_node("Relu", [name], [name + ".relu"]))
        return name + ".relu"

    x = conv("input", 3, 64, 7, 2, 3, "conv1")
    nodes.append(helper.make_node("MaxPool", [x], ["maxpool"], kernel_shape=[3, 3], strides=[2, 2], pads=[1] * 4))
    x, cin = "maxpool", 64
    for stage, (width, blocks) in enumerate([(64, 3), (128, 4), (256, 6), (512, 3)]):
        for block in range(blocks):
            name = f"layer{stage + 1}.{block}"
            stride = 2 if stage > 0 and block == 0 else 1
            y = conv(x, cin, width, 1, 1, 0, name + ".conv1")
            y = conv(y, width, width, 3, stride, 1, name + ".conv2")
            y = conv(y, width, 4 * width, 1, 1, 0, name + ".conv3", relu=False)
            shortcut = x
            if block == 0:
                shortcut = conv(x, cin, 4 * width, 1, stride, 0, name + ".downsample.0", relu=False)
            nodes.append(helper.make_node("Add", [y, shortcut], [name + ".add"]))
            nodes.append(helper.make_node("Relu", [name + ".add"], [name + ".out"]))
            x, cin = name + ".out", 4 * width
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["avgpool"]))
    nodes.append(helper.make_node("Flatten", ["avgpool"], ["flat"], axis=1))
    w = (rng.standard_normal((1000, 2048)) * 0.01).astype(np.float32)
    b = np.zeros(1000, np.float32)
    inits.extend([numpy_helper.from_array(w, "fc.weight"), numpy_helper.from_array(b, "fc.bias")])
    nodes.append(helper.make_node("Gemm", ["flat", "fc.weight", "fc.bias"], ["output"], transB=1))
    s = args.input_size
    graph = helper.make_graph(
        nodes, "resnet50", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, s, s])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 1000])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    onnx.save(model, args.out)


if __name__ == "__main__":
    main()
