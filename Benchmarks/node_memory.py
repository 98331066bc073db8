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
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np


def status(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "RssAnon", "RssFile"):
                fields[key] = int(value.split()[0]) * 1024
    return fields


def wait_line(proc, prefix, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            line = proc.stdout.readline()
            if line.startswith(prefix):
                return line[len(prefix):].strip()
        if proc.poll() is not None:
            break
    sys.exit(f"no '{prefix}' line from pid {proc.pid}: {proc.stderr.read() if proc.poll() is not None else 'timed out'}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="vgg11")
    ap.add_argument("--input-size", type=int)
    ap.add_argument("--nodes", type=int, default=4)
    ap.add_argument("--planner", default="iop")
    ap.add_argument("--requests", type=int, default=5)
    ap.add_argument("--bin", default=".build/release")
    args = ap.parse_args()
    iop, node = os.path.join(args.bin, "iop"), os.path.join(args.bin, "iop-node")
    out = tempfile.mkdtemp(prefix="iop-node-memory-")
    size = ["--input-size", str(args.input_size)] if args.input_size else []
    subprocess.run([iop, "compile", "--model", args.model, *size, "--nodes", str(args.nodes), "--planner", args.planner, "--out", out],
                   check=True, stdout=subprocess.DEVNULL)
    # CURVE on, as deployed: its per-message buffers are part of the memory measured.
    subprocess.run([iop, "keys", "--nodes", str(args.nodes), "--out", f"{out}/keys"], check=True, stdout=subprocess.DEVNULL)
    client = ["--keys", f"{out}/keys/operator"]
    pipes = dict(stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    leader = subprocess.Popen([node, "leader", "--bundle", f"{out}/bundle.iop", "--listen", "tcp://127.0.0.1:*",
                               "--requests", "tcp://127.0.0.1:*", "--timeout-ms", "60000",
                               "--keys", f"{out}/keys/node0"], **pipes)
    endpoint = wait_line(leader, "listening ", 60)
    workers = [subprocess.Popen([node, "worker", "--name", f"node{i}", "--listen", "tcp://127.0.0.1:*", "--leader", endpoint,
                                 "--memory-budget", "4GiB", "--keys", f"{out}/keys/node{i}"], **pipes)
               for i in range(1, args.nodes)]
    requests = wait_line(leader, "ready ", 300)
    listing = subprocess.run([iop, "models"], check=True, capture_output=True, text=True).stdout
    shape = [int(v) for v in listing.split(f"\n{args.model} ")[1].split()[0].split("x")]
    if args.input_size:
        shape[-2:] = [args.input_size, args.input_size]
    x = np.random.default_rng(1).uniform(-1, 1, shape).astype(np.float32)
    np.save(f"{out}/x.npy", x)
    for _ in range(args.requests):
        subprocess.run([iop, "request", "--leader", requests, "--input", f"{out}/x.npy", *client], check=True,
                       stdout=subprocess.DEVNULL)
    figures = {"node0": status(leader.pid)}
    for i, w in enumerate(workers, 1):
        figures[f"node{i}"] = status(w.pid)
    stats = json.loads(subprocess.run([iop, "request", "--leader", requests, "--stats", "--json", *client], check=True,
                                      capture_output=True, text=True).stdout)
    arenas = {b["name"]: b["arena_bytes"] for b in stats["boards"]}
    leader.send_signal(signal.SIGTERM)
    leader.communicate(timeout=30)
    for w in workers:
        w.wait(timeout=30)
    mib = 1 << 20
    print(f"{args.model}, {args.planner} plan, {args.nodes} nodes, {args.requests} requests")
    print(f"{'node':8} {'arena':>12} {'peak RSS':>12} {'anon RSS':>12} {'peak - arena':>13}")
    for name, f in figures.items():
        a = arenas.get(name, 0)
        print(f"{name:8} {a / mib:9.1f} MiB {f['VmHWM'] / mib:9.1f} MiB {f['RssAnon'] / mib:9.1f} MiB {(f['VmHWM'] - a) / mib:10.1f} MiB")


if __name__ == "__main__":
    main()
