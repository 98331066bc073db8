#!/usr/bin/env python3
"""Soak: many inferences on a local cluster, each node's resident memory sampled as they go; it must stay flat.

    python3 Benchmarks/soak.py [--model lenet5] [--nodes 4] [--planner oc] [--requests 100000] [--png soak.png]
    python3 Benchmarks/soak.py --stream-minutes 60 [--nodes 4] [--planner iop] [--png stream-soak.png]

Starts a keyed cluster of iop-node processes on loopback (Benchmarks/localcluster.py), sends the requests with
`iop request --repeat` in batches, and samples every node's VmRSS (/proc/PID/status) after each batch. The first
tenth is warm-up (libzmq's and the allocator's pools fill); after it, a node whose RSS grows by more than
--max-growth-kib fails the run (exit 1). With --stream-minutes, the leader instead streams that much synthesised
valve sound (examples/valve-leak/synth.py, leaks included) through the `valve` model in real time, and RSS is
sampled every 10 s. Needs `swift build -c release` first; numpy, and matplotlib for --png.
"""
import argparse
import os
import subprocess
import sys
import threading
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
    ap.add_argument("--stream-minutes", type=float)
    args = ap.parse_args()
    if args.stream_minutes:
        return stream_soak(args)
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
    report(args, samples, f"{args.model}, {args.planner} plan, {args.nodes} nodes: {inferences} inferences "
           f"in {samples[-1][1]:.0f} s", "requests")


def stream_soak(args):
    """The valve stream for --stream-minutes, in real time; RSS every 10 s."""
    here = os.path.dirname(os.path.abspath(__file__))
    work = f"/tmp/iop-stream-soak-{os.getpid()}"
    os.makedirs(work, exist_ok=True)
    wav = f"{work}/valve.wav"
    subprocess.run([sys.executable, os.path.join(here, "../examples/valve-leak/synth.py"), "stream", "--seed",
                    "90050", "--minutes", str(args.stream_minutes), "--out", wav, "--events", f"{work}/events.json"],
                   check=True)
    samples, last = [], {}
    with LocalCluster(args.bin, "valve", args.nodes, args.planner, audio=wav) as cluster:
        # The leader's JSON lines are read as they come: a full pipe would stall the stream.
        lines = []
        reader = threading.Thread(target=lambda: lines.extend(cluster.leader.stdout), daemon=True)
        reader.start()
        started = time.time()
        while cluster.leader.poll() is None:
            try:
                now = {name: status(pid) for name, pid in cluster.pids().items()}
            except FileNotFoundError:
                break
            samples.append((time.time() - started, time.time() - started,
                            {name: s["VmRSS"] for name, s in now.items()}))
            last = now
            print(f"\r{time.time() - started:.0f} s streamed", end="", file=sys.stderr)
            time.sleep(10)
        reader.join(timeout=10)
    print(file=sys.stderr)
    summary = [line.strip() for line in lines if line.startswith('{"summary"')]
    print(summary[-1] if summary else "no summary: the stream failed")
    # Anonymous memory (heap, arena) is what a leak grows; file-backed is the mapped bundle and sound.
    print("at the end: " + ", ".join(f"{name} {s['RssAnon'] // 1024} KiB anonymous + {s['RssFile'] // 1024} KiB "
                                    "file-backed" for name, s in last.items()))
    report(args, samples, f"valve stream, {args.planner} plan, {args.nodes} nodes: {samples[-1][1]:.0f} s",
           "seconds streamed")


def report(args, samples, title, unit):
    # Warm-up: the first tenth, and for a stream at least its first minute (arenas fill as weights load).
    after = max(samples[len(samples) // 10][1] if len(samples) >= 10 else 0, 60 if args.stream_minutes else 0)
    warm = next((s[2] for s in samples if s[1] >= after), samples[-1][2])
    last = samples[-1][2]
    print(title)
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
        ax.set_xlabel(unit)
        ax.set_ylabel("resident memory (MiB)")
        ax.set_title("soak: " + title)
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.png, dpi=100)
    if failed:
        sys.exit(f"soak.py: resident memory grew by more than {args.max_growth_kib} KiB on " + ", ".join(failed))


if __name__ == "__main__":
    main()
