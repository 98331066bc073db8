#!/usr/bin/env python3
"""Each node's real memory against its arena, through setup and a few inferences.

    python3 Benchmarks/node_memory.py [--model vgg11] [--nodes 4] [--planner iop] [--requests 5]

Compiles a bundle, starts `iop-node leader` and N-1 `iop-node worker`
processes on loopback, sends requests with `iop request`, and prints per node
the arena (as the node reports it) beside the kernel's figures from
/proc/PID/status: peak resident memory (VmHWM) and anonymous memory (RssAnon).
A node loading its weight shards should peak near its arena plus the runtime,
not near twice its arena. Needs `swift build -c release` first.
"""
import argparse
import os
import subprocess

import numpy as np

from localcluster import LocalCluster, status


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="vgg11")
    ap.add_argument("--input-size", type=int)
    ap.add_argument("--nodes", type=int, default=4)
    ap.add_argument("--planner", default="iop")
    ap.add_argument("--requests", type=int, default=5)
    ap.add_argument("--bin", default=".build/release")
    args = ap.parse_args()
    with LocalCluster(args.bin, args.model, args.nodes, args.planner, args.input_size) as cluster:
        listing = subprocess.run([os.path.join(args.bin, "iop"), "models"], check=True, capture_output=True,
                                 text=True).stdout
        shape = [int(v) for v in listing.split(f"\n{args.model} ")[1].split()[0].split("x")]
        if args.input_size:
            shape[-2:] = [args.input_size, args.input_size]
        x = np.random.default_rng(1).uniform(-1, 1, shape).astype(np.float32)
        np.save(f"{cluster.dir}/x.npy", x)
        for _ in range(args.requests):
            cluster.request(["--input", f"{cluster.dir}/x.npy"])
        figures = {name: status(pid) for name, pid in cluster.pids().items()}
        arenas = {b["name"]: b["arena_bytes"] for b in cluster.stats()["boards"]}
    mib = 1 << 20
    print(f"{args.model}, {args.planner} plan, {args.nodes} nodes, {args.requests} requests")
    print(f"{'node':8} {'arena':>12} {'peak RSS':>12} {'anon RSS':>12} {'peak - arena':>13}")
    for name, f in figures.items():
        a = arenas.get(name, 0)
        print(f"{name:8} {a / mib:9.1f} MiB {f['VmHWM'] / mib:9.1f} MiB {f['RssAnon'] / mib:9.1f} MiB {(f['VmHWM'] - a) / mib:10.1f} MiB")


if __name__ == "__main__":
    main()
