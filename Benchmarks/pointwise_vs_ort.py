#!/usr/bin/env python3
"""The operators of issue 15 alone, iop beside ONNX Runtime on the same machine, in the same run.

One single-node ONNX model per operator on a [1, 64, 56, 56] tensor (a ResNet stage's size), timed
with ONNX Runtime (1 intra-op thread) and with `iop bench --json` (1 thread), Relu first as the
cheapest layer there is. Needs a release build (`swift build -c release`) and onnxruntime:
    python3 Benchmarks/pointwise_vs_ort.py
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

SHAPE = [1, 64, 56, 56]


def cases():
    rng = np.random.default_rng(0)
    slope = numpy_helper.from_array(rng.uniform(0, 0.3, (64, 1, 1)).astype(np.float32), "slope")
    pads = numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], dtype=np.int64), "pads")
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], dtype=np.float32), "scales")
    return [
        ("Relu", [], {}, []), ("LeakyRelu", [], {"alpha": 0.1}, []), ("PRelu", ["slope"], {}, [slope]),
        ("Sigmoid", [], {}, []), ("HardSwish", [], {}, []), ("Tanh", [], {}, []),
        ("LRN", [], {"size": 5, "alpha": 1e-4, "beta": 0.75, "bias": 2.0}, []), ("Softmax", [], {"axis": 1}, []),
        ("Pad", ["pads"], {"mode": "reflect"}, [pads]), ("Resize", ["", "scales"], {"mode": "nearest"}, [scales]),
    ]


def model(op, inputs, attrs, inits, path):
    node = helper.make_node(op, ["input", *inputs], ["output"], name=op.lower(), **attrs)
    graph = helper.make_graph([node], op, [helper.make_tensor_value_info("input", TensorProto.FLOAT, SHAPE)],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, None)], inits)
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
          f"median of {args.runs} runs; input {'x'.join(map(str, SHAPE))}\n")
    print("| operator | ORT ms | iop ms | iop / ORT |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as d:
        for op, inputs, attrs, inits in cases():
            path = os.path.join(d, op + ".onnx")
            model(op, inputs, attrs, inits, path)
            ort_ms = time_ort(path, SHAPE, args.runs, args.warmup)
            iop_ms = time_iop(args.iop, path, args.runs, args.warmup)
            print(f"| {op} | {ort_ms:.3f} | {iop_ms:.3f} | {ort_ms / iop_ms:.2f}x |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
