#!/usr/bin/env python3
"""ConvTranspose alone, iop beside ONNX Runtime on the same machine, in the same run.

One single-node ONNX model per decoder-style shape, timed with ONNX Runtime (1 intra-op thread) and with
`iop bench --json` (1 thread). Needs a release build (`swift build -c release`) and onnxruntime:
    python3 Benchmarks/convtranspose_vs_ort.py
"""
import argparse
import os
import platform
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from conv_vs_ort import time_iop, time_ort

# (label, input shape, output channels, kernel, attributes)
CASES = [
    ("k4 s2 p1, 64->32, 28x28", [1, 64, 28, 28], 32, 4, {"strides": [2, 2], "pads": [1, 1, 1, 1]}),
    ("k2 s2, 128->64, 14x14 (U-Net up)", [1, 128, 14, 14], 64, 2, {"strides": [2, 2]}),
    ("k3 s2 p1 outpad 1, 32->32, 28x28", [1, 32, 28, 28], 32, 3,
     {"strides": [2, 2], "pads": [1, 1, 1, 1], "output_padding": [1, 1]}),
    ("k3 s1 p1, 64->64, 28x28", [1, 64, 28, 28], 64, 3, {"pads": [1, 1, 1, 1]}),
    ("depthwise k4 s2 p1, 64, 28x28", [1, 64, 28, 28], 64, 4, {"strides": [2, 2], "pads": [1, 1, 1, 1], "group": 64}),
]


def model(shape, out_channels, k, attrs, path):
    rng = np.random.default_rng(0)
    group = attrs.get("group", 1)
    w = rng.standard_normal((shape[1], out_channels // group, k, k)).astype(np.float32) * 0.1
    b = rng.uniform(-0.5, 0.5, out_channels).astype(np.float32)
    node = helper.make_node("ConvTranspose", ["input", "w", "b"], ["output"], name="up", **attrs)
    graph = helper.make_graph([node], "convtranspose", [helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    m.ir_version = 8
    onnx.save(m, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iop", default=".build/release/iop", help="the iop binary (release build)")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    args = ap.parse_args()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")),
               platform.processor())
    print(f"Machine: {cpu}, {os.cpu_count()} cores; ONNX Runtime {ort.__version__}; one thread; "
          f"median of {args.runs} runs\n")
    print("| ConvTranspose | ORT ms | iop ms | iop / ORT |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as d:
        for i, (label, shape, oc, k, attrs) in enumerate(CASES):
            path = os.path.join(d, f"case{i}.onnx")
            model(shape, oc, k, attrs, path)
            ort_ms = time_ort(path, shape, args.runs, args.warmup)
            iop_ms = time_iop(args.iop, path, args.runs, args.warmup)
            print(f"| {label} | {ort_ms:.3f} | {iop_ms:.3f} | {ort_ms / iop_ms:.2f}x |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
