#!/usr/bin/env python3
"""Two iop binaries on single convs and zoo models, one process of each in turn: old / new speed.

    python3 Benchmarks/kernel_ab.py --old OLD_IOP [--new .build/release/iop] [--rounds 10] [--runs 30]
        [--conv CIN:COUT:SIZE:K:STRIDE:PAD[:dw][:relu6]]... [--model NAME]... [--threads 1]

A conv is built as a one-layer ONNX model (`conv_vs_ort.layer_model`: seeded weights and bias; `dw` makes it
depthwise, `relu6` appends a Clip(0, 6)); a model is a zoo name. Each is timed with `iop bench --json` (median
of --runs), alternating the two binaries --rounds times, and the table gives each binary's median over its
processes and their ratio. On a VM whose speed moves from one process to the next, only such medians over
alternating processes separate a kernel change from the noise (README, "Performance", session 14).
"""
import argparse
import os
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from conv_vs_ort import layer_model, time_iop  # noqa: E402


def conv_case(spec, directory):
    parts = spec.split(":")
    try:
        cin, cout, size, k, stride, pad = (int(x) for x in parts[:6])
    except ValueError:
        sys.exit(f"kernel_ab: --conv {spec}: expected CIN:COUT:SIZE:K:STRIDE:PAD[:dw][:relu6]")
    flags = set(parts[6:])
    if flags - {"dw", "relu6"}:
        sys.exit(f"kernel_ab: --conv {spec}: unknown flag(s) {', '.join(sorted(flags - {'dw', 'relu6'}))}")
    path = os.path.join(directory, spec.replace(":", "_") + ".onnx")
    layer_model(("conv", cin, cout, size, k, stride, pad), path, group=cin if "dw" in flags else 1,
                relu6="relu6" in flags)
    return spec, path


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--old", required=True, help="the baseline iop binary")
    ap.add_argument("--new", default=".build/release/iop")
    ap.add_argument("--conv", action="append", default=[], help="CIN:COUT:SIZE:K:STRIDE:PAD[:dw][:relu6]")
    ap.add_argument("--model", action="append", default=[], help="a zoo model")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    if not args.conv and not args.model:
        sys.exit("kernel_ab: name at least one --conv or --model")
    with tempfile.TemporaryDirectory() as d:
        cases = [conv_case(c, d) for c in args.conv] + [(m, m) for m in args.model]
        print(f"| case | threads | old ms | new ms | old / new |  ({args.rounds} processes of each, in turn)")
        print("|---|---|---|---|---|")
        for label, model in cases:
            old, new = [], []
            for r in range(args.rounds):
                print(f"{label}: round {r + 1}/{args.rounds}", end="\r", file=sys.stderr, flush=True)
                old.append(time_iop(args.old, model, args.runs, 3, args.threads))
                new.append(time_iop(args.new, model, args.runs, 3, args.threads))
            o, n = statistics.median(old), statistics.median(new)
            print(f"| {label} | {args.threads} | {o:.3f} | {n:.3f} | {o / n:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
