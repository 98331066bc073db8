#!/usr/bin/env python3
"""Each kept emulated run re-planned with the boards' CPU per lone message as probed and as zero, beside the
same measured p50s: what modelling `message_cpu_us` changes, like for like (README, "Session 13").

    sudo Benchmarks/emulated_boards.sh ... --json --keep DIR > RUN.json     (once per setting)
    python3 Benchmarks/message_cpu_replay.py RUN.json:DIR [RUN.json:DIR ...] [--iop .build/release/iop]

For each run it takes DIR/cluster.uncalibrated.json (the profiles before any trial's scales; written by
--calibrate), plans each measured planner on it with `iop plan`, then again with every board's
message_cpu_us set to 0, and prints both figures' errors against the run's p50 and the mean |error| of each.
"""
import argparse
import copy
import json
import os
import subprocess
import sys


def modelled(iop, model, cluster, planner):
    r = subprocess.run([iop, "plan", "--model", model, "--cluster", cluster, "--planner", planner, "--json"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"message_cpu_replay: iop plan failed on {cluster}: {r.stderr.strip()}")
    return json.loads(r.stdout)["modeled_latency_ms"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", help="RUN.json:KEEPDIR pairs")
    ap.add_argument("--iop", default=os.path.join(os.path.dirname(__file__), "..", ".build", "release", "iop"))
    args = ap.parse_args()
    errors = {"probed": [], "zero": []}
    for pair in args.runs:
        run, sep, keep = pair.partition(":")
        if not sep:
            sys.exit(f"message_cpu_replay: '{pair}' is not RUN.json:KEEPDIR")
        d = json.load(open(run))
        probed = os.path.join(keep, "cluster.uncalibrated.json")
        if not os.path.exists(probed):
            sys.exit(f"message_cpu_replay: {probed} is missing (run emulated_boards.sh with --calibrate and --keep)")
        zero = copy.deepcopy(json.load(open(probed)))
        per_board = []
        for device in zero["devices"]:
            link = device.get("profile", {}).get("link")
            if link is not None:
                per_board.append(link.get("message_cpu_us", 0))
                link["message_cpu_us"] = 0
        zero_path = os.path.join(keep, "cluster.no-message-cpu.json")
        json.dump(zero, open(zero_path, "w"))
        print(f"{run}: {d['model']}, {d['cpu_percent']} %, {d['rate_mbit']} Mbit/s; "
              f"message_cpu_us per board {', '.join(f'{m:.0f}' for m in per_board)}")
        for p in d["planners"]:
            if "p50_ms" not in p:
                continue
            line = f"  {p['planner']:8s} measured {p['p50_ms']:7.0f} ms"
            for variant, path in (("probed", probed), ("zero", zero_path)):
                ms = modelled(args.iop, d["model"], path, p["planner"])
                e = (ms / p["p50_ms"] - 1) * 100
                errors[variant].append(abs(e))
                line += f"   {'with' if variant == 'probed' else 'without'}: {ms:7.0f} ms ({e:+.1f} %)"
            print(line)
    for variant, label in (("probed", "with message_cpu_us"), ("zero", "without")):
        e = errors[variant]
        print(f"{label}: mean |error| {sum(e) / len(e):.1f} %, {sum(x <= 10 for x in e)} of {len(e)} within 10 %")


if __name__ == "__main__":
    main()
