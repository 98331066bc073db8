#!/usr/bin/env python3
"""fp16 activations on the wire, measured on local clusters (`iop cluster`, loopback).

    python3 Benchmarks/wire_fp16.py accuracy [--models lenet5,alexnet,...] [--requests 5] [--planner iop]
    python3 Benchmarks/wire_fp16.py latency [--model alexnet] [--requests 20] [--planner iop]

accuracy: for every zoo model (`iop models`), four local nodes with `--wire fp16 --check`: the
largest scaled error max |y - y_ref| / max(1, max |y_ref|) of the cluster's outputs against
single-board fp32 inference, over the requests' seeded random inputs. This is what README's fp16
tolerance for `--check` is measured from.
latency: the same model and plan with `--wire fp32` and `--wire fp16`, in turn: activation bytes
per inference (every board's, as the leader counts them) and p50 / p90 latency.
Prints Markdown tables. Needs `swift build -c release`.
"""
import argparse
import json
import subprocess

ZOO = ["lenet5", "alexnet", "vgg11", "vgg13", "vgg16", "vgg19", "valve"]


def cluster(iop, model, planner, wire, requests, check):
    cmd = [iop, "cluster", "--model", model, "--nodes", "4", "--planner", planner, "--wire", wire,
           "--requests", str(requests), "--json"] + (["--check"] if check else [])
    r = subprocess.run(cmd, capture_output=True, text=True)
    if not r.stdout.strip():
        raise SystemExit(f"{' '.join(cmd)} failed: {r.stderr.strip()}")
    return json.loads(r.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["accuracy", "latency"])
    ap.add_argument("--iop", default=".build/release/iop")
    ap.add_argument("--models", default=",".join(ZOO))
    ap.add_argument("--model", default="alexnet")
    ap.add_argument("--planner", default="iop")
    ap.add_argument("--requests", type=int, default=None)
    args = ap.parse_args()
    if args.what == "accuracy":
        print("| model | segments in fp16 | max scaled error (fp16) | max abs error |")
        print("|---|---|---|---|")
        for m in args.models.split(","):
            o = cluster(args.iop, m, args.planner, "fp16", args.requests or 5, True)
            wires = o["segment_wire"]
            print(f"| {m} | {wires.count('fp16')} of {len(wires)} | {o['max_scaled_error']:.2e} "
                  f"| {o['max_abs_diff']:.2e} |", flush=True)
    else:
        print("| wire | bytes per inference | messages | p50 ms | p90 ms | max scaled error |")
        print("|---|---|---|---|---|---|")
        for wire in ["fp32", "fp16"]:
            o = cluster(args.iop, args.model, args.planner, wire, args.requests or 20, True)
            sent = sum(d["bytes_sent_per_inference"] for d in o["devices"])
            messages = sum(d["messages_per_inference"] for d in o["devices"])
            print(f"| {wire} | {sent:,} | {messages} | {o['p50_ms']:.1f} | {o['p90_ms']:.1f} "
                  f"| {o['max_scaled_error']:.2e} |", flush=True)


if __name__ == "__main__":
    main()
