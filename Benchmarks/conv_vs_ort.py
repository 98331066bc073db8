#!/usr/bin/env python3
"""iop beside ONNX Runtime on the same machine, in the same run.

Builds one single-Conv ONNX model per VGG 3x3 shape (pad 1, bias), times it with
ONNX Runtime (1 intra-op thread, sequential) and with `iop bench --json`, direct
and Winograd (`--conv direct|winograd`), and prints a Markdown table; then does
the same for whole zoo models exported with `iop export` (--models), direct and
`--conv auto`; with --layers, one single-op model per layer of a zoo model (each conv with its
real kernel, stride and pad, each Linear as a Gemm) at each thread count, to find where a whole
model loses; --baseline times a second iop binary interleaved with the first (an A/B in one run).
Run through scripts/bench-conv, which builds iop in
release mode and installs onnxruntime first.
"""
import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

SHAPES = [(64, 128, 112), (128, 256, 56), (256, 256, 28), (512, 512, 14)]


def conv_model(cin, cout, size, path):
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((cout, cin, 3, 3)) * np.sqrt(2 / (cin * 9))).astype(np.float32)
    b = rng.uniform(-0.1, 0.1, cout).astype(np.float32)
    node = helper.make_node("Conv", ["input", "w", "b"], ["output"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], name="conv")
    graph = helper.make_graph([node], f"conv_{cin}_{cout}_{size}",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, cin, size, size])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, cout, size, size])],
                              [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)


# Each layer of AlexNet (torchvision's, 224x224): (name, cin, cout, size, kernel, stride, pad) for a conv,
# (name, in, out) for a Linear.
LAYERS = {
    "alexnet": [("features.0", 3, 64, 224, 11, 4, 2), ("features.3", 64, 192, 27, 5, 1, 2),
                ("features.6", 192, 384, 13, 3, 1, 1), ("features.8", 384, 256, 13, 3, 1, 1),
                ("features.10", 256, 256, 13, 3, 1, 1),
                ("classifier.1", 9216, 4096), ("classifier.4", 4096, 4096), ("classifier.6", 4096, 1000)],
}


def layer_model(layer, path, group=1, relu6=False):
    """A single-op ONNX model for one LAYERS entry (ReLU-free unless relu6: a Clip(0, 6) after the conv, which
    iop fuses into its store), and its input shape and GFLOP. group: a grouped conv (cin = cout = group is
    depthwise)."""
    rng = np.random.default_rng(0)
    if len(layer) == 3:
        _, k, n = layer
        w = (rng.standard_normal((n, k)) * np.sqrt(2 / k)).astype(np.float32)
        b = rng.uniform(-0.1, 0.1, n).astype(np.float32)
        node = helper.make_node("Gemm", ["input", "w", "b"], ["output"], transB=1, name="fc")
        shape, out, gflop = [1, k], [1, n], 2 * k * n / 1e9
    else:
        _, cin, cout, size, k, s, p = layer
        w = (rng.standard_normal((cout, cin // group, k, k)) * np.sqrt(2 * group / (cin * k * k))).astype(np.float32)
        b = rng.uniform(-0.1, 0.1, cout).astype(np.float32)
        node = helper.make_node("Conv", ["input", "w", "b"], ["conv_out" if relu6 else "output"], kernel_shape=[k, k],
                                strides=[s, s], pads=[p] * 4, group=group, name="conv")
        o = (size + 2 * p - k) // s + 1
        shape, out, gflop = [1, cin, size, size], [1, cout, o, o], 2 * cin // group * k * k * cout * o * o / 1e9
    nodes, inits = [node], [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")]
    if relu6:
        nodes.append(helper.make_node("Clip", ["conv_out", "lo", "hi"], ["output"], name="relu6"))
        inits += [numpy_helper.from_array(np.array(0, np.float32), "lo"),
                  numpy_helper.from_array(np.array(6, np.float32), "hi")]
    graph = helper.make_graph(nodes, "layer", [helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, out)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return shape, gflop


def layer_table(args, model, d):
    """Per layer of `model`: ONNX Runtime beside iop direct and auto (and the baseline binary's auto, if any),
    each thread count, in one run."""
    base = " | base auto ms | auto / base" if args.baseline else ""
    print(f"\n| {model} layer | GFLOP | threads | ORT ms | direct ms | direct / ORT | auto ms | auto / ORT{base} |")
    print("|---|---|---|---|---|---|---|---|" + ("---|---|" if args.baseline else ""))
    for layer in LAYERS[model]:
        path = os.path.join(d, f"{model}_{layer[0]}.onnx")
        shape, gflop = layer_model(layer, path)
        geometry = "x".join(map(str, shape[1:]))
        if len(layer) == 7:
            geometry += f" k{layer[4]} s{layer[5]} p{layer[6]}"
        for threads in [int(t) for t in args.threads.split(",")]:
            ort_ms = time_ort(path, shape, args.runs, args.warmup, threads)
            direct_ms = time_iop(args.iop, path, args.runs, args.warmup, threads)
            auto_ms = time_iop(args.iop, path, args.runs, args.warmup, threads, conv="auto")
            row = (f"| {layer[0]} {geometry} | {gflop:.3f} | {threads} | {ort_ms:.3f} | {direct_ms:.3f} | "
                   f"{ort_ms / direct_ms:.2f}x | {auto_ms:.3f} | {ort_ms / auto_ms:.2f}x |")
            if args.baseline:
                base_ms = time_iop(args.baseline, path, args.runs, args.warmup, threads, conv="auto")
                row += f" {base_ms:.3f} | {base_ms / auto_ms:.2f}x |"
            print(row, flush=True)


def warm_session(path, shape, warmup, threads):
    """An ONNX Runtime session on `threads` threads, run `warmup` times on a seeded input, and that input."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).uniform(-1, 1, shape).astype(np.float32)
    for _ in range(warmup):
        sess.run(None, {"input": x})
    return sess, x


def time_ort(path, shape, runs, warmup, threads=1):
    sess, x = warm_session(path, shape, warmup, threads)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        sess.run(None, {"input": x})
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def cpu_seconds(who):
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def cpu_ort(path, shape, runs, warmup, threads=1):
    """CPU milliseconds per inference this process spent in ONNX Runtime: on a machine shared with other
    jobs, time descheduled does not count, so engines timed in turn compare more fairly than by wall time."""
    sess, x = warm_session(path, shape, warmup, threads)
    t = cpu_seconds(resource.RUSAGE_SELF)
    for _ in range(runs):
        sess.run(None, {"input": x})
    return (cpu_seconds(resource.RUSAGE_SELF) - t) * 1e3 / runs


def cpu_iop(iop, path, runs, warmup, threads=1, conv="direct"):
    """CPU milliseconds per inference of `iop bench`: its `cpu_ms`, the process's CPU time over the timed runs
    alone. A binary older than `cpu_ms` (a --baseline) is timed as two runs that differ by `runs` inferences,
    so loading and packing the weights cancel out, as far as their variance allows."""
    def bench(extra_warmup, timed):
        return subprocess.run([iop, "bench", "--model", path, "--threads", str(threads), "--runs", str(timed),
                               "--warmup", str(warmup + extra_warmup), "--conv", conv, "--json"],
                              check=True, capture_output=True, text=True).stdout
    own = json.loads(bench(0, runs)).get("cpu_ms")
    if own is not None:
        return own
    used = []
    for extra in (0, runs):
        t = cpu_seconds(resource.RUSAGE_CHILDREN)
        bench(extra, 1)
        used.append(cpu_seconds(resource.RUSAGE_CHILDREN) - t)
    return (used[1] - used[0]) * 1e3 / runs


def time_iop(iop, path, runs, warmup, threads=1, conv="direct"):
    out = subprocess.run([iop, "bench", "--model", path, "--threads", str(threads), "--runs", str(runs), "--warmup", str(warmup), "--json",
                          "--conv", conv],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)["median_ms"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iop", default=".build/release/iop", help="the iop binary (release build)")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--models", default="vgg11,alexnet", help="comma-separated zoo models to time whole ('' for none)")
    ap.add_argument("--threads", default="1,2", help="thread counts for the whole-model table")
    ap.add_argument("--layers", default="",
                    help="comma-separated zoo models to time layer by layer: " + ", ".join(LAYERS))
    ap.add_argument("--baseline", help="a second iop binary, timed beside --iop in the whole-model and layer tables")
    ap.add_argument("--no-shapes", action="store_true", help="skip the VGG 3x3 table")
    ap.add_argument("--input-size", type=int, help="spatial input size of the whole models (iop export's default if none)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="time the engines of each whole-model row this many times in turn and take each one's median "
                         "(a VM's speed drifts between runs: interleaving spreads the drift over all of them)")
    ap.add_argument("--cpu-time", action="store_true",
                    help="compare CPU time per inference instead of wall time (for a machine shared with other jobs)")
    args = ap.parse_args()
    global time_ort, time_iop
    if args.cpu_time:
        time_ort, time_iop = cpu_ort, cpu_iop
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    print(f"Machine: {cpu}, {os.cpu_count()} cores; ONNX Runtime {ort.__version__}; one thread; {'CPU ms per inference over' if args.cpu_time else 'median of'} {args.runs} runs\n")
    with tempfile.TemporaryDirectory() as d:
        if not args.no_shapes:
            print("| conv 3x3, pad 1 | GFLOP | ORT ms | ORT GFLOP/s | direct ms | direct / ORT | Winograd ms "
                  "| Winograd / ORT |")
            print("|---|---|---|---|---|---|---|---|")
        for cin, cout, size in [] if args.no_shapes else SHAPES:
            path = os.path.join(d, f"conv_{cin}_{cout}_{size}.onnx")
            conv_model(cin, cout, size, path)
            gflop = 2 * cin * cout * 9 * size * size / 1e9
            ort_ms = time_ort(path, (1, cin, size, size), args.runs, args.warmup)
            direct_ms = time_iop(args.iop, path, args.runs, args.warmup)
            wino_ms = time_iop(args.iop, path, args.runs, args.warmup, conv="winograd")
            print(f"| {cin}→{cout} at {size}x{size} | {gflop:.2f} | {ort_ms:.2f} | {gflop / ort_ms * 1e3:.1f} | "
                  f"{direct_ms:.2f} | {ort_ms / direct_ms:.2f}x | {wino_ms:.2f} | {ort_ms / wino_ms:.2f}x |", flush=True)
        for model in [m for m in args.layers.split(",") if m]:
            layer_table(args, model, d)
        models = [m for m in args.models.split(",") if m]
        base = " | base auto ms | auto / base" if args.baseline else ""
        if models:
            print(f"\n| whole model | threads | ORT ms | direct ms | direct / ORT | auto ms | auto / ORT{base} |")
            print("|---|---|---|---|---|---|---|" + ("---|---|" if args.baseline else ""))
        for model in models:
            path = os.path.join(d, model + ".onnx")
            size = ["--input-size", str(args.input_size)] if args.input_size else []
            subprocess.run([args.iop, "export", "--model", model, "--out", path] + size, check=True,
                           capture_output=True)
            shape = [d.dim_value for d in onnx.load(path).graph.input[0].type.tensor_type.shape.dim]
            for threads in [int(t) for t in args.threads.split(",")]:
                engines = {
                    "ort": lambda: time_ort(path, shape, args.runs, args.warmup, threads),
                    "direct": lambda: time_iop(args.iop, path, args.runs, args.warmup, threads),
                    "auto": lambda: time_iop(args.iop, path, args.runs, args.warmup, threads, conv="auto"),
                }
                if args.baseline:
                    engines["base"] = lambda: time_iop(args.baseline, path, args.runs, args.warmup, threads,
                                                       conv="auto")
                times = {k: [] for k in engines}
                for _ in range(max(1, args.repeat)):
                    for k, timed in engines.items():
                        times[k].append(timed())
                ms = {k: statistics.median(v) for k, v in times.items()}
                ort_ms, direct_ms, auto_ms = ms["ort"], ms["direct"], ms["auto"]
                row = (f"| {model} {'x'.join(map(str, shape))} | {threads} | {ort_ms:.2f} | {direct_ms:.2f} | "
                       f"{ort_ms / direct_ms:.2f}x | {auto_ms:.2f} | {ort_ms / auto_ms:.2f}x |")
                if args.baseline:
                    row += f" {ms['base']:.2f} | {ms['base'] / auto_ms:.2f}x |"
                print(row, flush=True)


if __name__ == "__main__":
    sys.exit(main())
