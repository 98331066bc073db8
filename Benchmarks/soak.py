#!/usr/bin/env python3
"""Soak: many inferences on a local cluster, each node's resident memory sampled as they go; it must stay flat.

    python3 Benchmarks/soak.py [--model lenet5] [--nodes 4] [--planner oc] [--requests 100000] [--png soak.png]

Starts a keyed cluster of iop-node processes on loopback (Benchmarks/localcluster.py), sends the requests with
`iop request --repeat` in batches, and samples every node's VmRSS (/proc/PID/status) after each batch. The first
tenth is warm-up (libzmq's and the allocator's pools fill); after it, a node whose RSS grows by more than
--max-growth-kib fails the run (exit 1). Needs `swift build -c release` first; numpy, and matplotlib for --png.
"""
import argparse
import os
import sys
import time

import numpy as np

from localcluster import LocalCluster, status


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="lenet5")
    ap.add_argument("--nodes", type=int, default=4)
    ap.add_argument("--planner", default="oc")
    ap.add_argument("--requests", type=int, default=100_000)
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--max-growth-kib", type=int, default=512)
    ap.add_argument("--bin", default=".build/release")
    ap.add_argument("--png")
    args = ap.parse_args()
    with LocalCluster(args.bin, args.model, args.nodes, args.planner) as cluster:
        shape = (1, 1, 32, 32) if args.model == "lenet5" else None
        if shape is None:
            sys.exit("soak.py: only lenet5 has a built-in input shape here; use --model lenet5")
        np.save(f"{cluster.dir}/x.npy", np.random.default_rng(3).uniform(-1, 1, shape).astype(np.float32))
        per = max(1, args.requests // args.batches)
        samples = []  # (requests so far, seconds, {node: rss})
        started, done = time.time(), 0
        while done < args.requests:
            n = min(per, args.requests - done)
            cluster.request(["--input", f"{cluster.dir}/x.npy", "--repeat", str(n)])
            done += n
            samples.append((done, time.time() - started,
                            {name: status(pid)["VmRSS"] for name, pid in cluster.pids().items()}))
            print(f"\r{done}/{args.requests} requests, {time.time() - started:.0f} s", end="", file=sys.stderr)
        print(file=sys.stderr)
        inferences = cluster.stats()["inferences"]
    warm = samples[max(0, len(samples) // 10 - 1)][2]
    last = samples[-1][2]
    print(f"{args.model}, {args.planner} plan, {args.nodes} nodes: {inferences} inferences in {samples[-1][1]:.0f} s")
    print(f"{'node':8} {'RSS after warm-up':>18} {'RSS at the end':>15} {'growth':>10}")
    failed = []
    for name in last:
        growth = (last[name] - warm[name]) / 1024
        print(f"{name:8} {warm[name] / 1024:14.0f} KiB {last[name] / 1024:11.0f} KiB {growth:6.0f} KiB")
        if growth > args.max_growth_kib:
            failed.append(name)
    if args.png:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(8, 4))
        for name in last:
            ax.plot([s[0] for s in samples], [s[2][name] / 2**20 for s in samples], label=name)
        ax.set_xlabel("requests")
        ax.set_ylabel("resident memory (MiB)")
        ax.set_title(f"soak: {args.model}, {args.nodes} nodes, {args.planner} plan")
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.png, dpi=100)
    if failed:
        sys.exit(f"soak.py: resident memory grew by more than {args.max_growth_kib} KiB on " + ", ".join(failed))


if __name__ == "__main__":
    main()
