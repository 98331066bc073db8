#!/usr/bin/env python3
"""The paper's comparisons, from `iop simulate`, as Markdown tables.

    python3 Benchmarks/paper_tables.py [--iop .build/release/iop]

Table 1: latency saved by iop against oc and coedge, and peak memory saved
against coedge, for LeNet, AlexNet and VGG11, on each cluster named below.
Table 2: the VGG11/13/16/19 sweep of per-message setup time, 1-8 ms.
All figures are modelled (the cost model of docs/planner.md), not measured.
"""
import argparse
import json
import subprocess

PAPER = {"lenet5": (31.53, 12.05, 49.98), "alexnet": (21.06, 16.83, 21.22), "vgg11": (12.82, 6.39, 40.79)}
PAPER_SWEEP = {"vgg11": "14.51–26.74", "vgg13": "12.99–24.99", "vgg16": "3.34–31.01", "vgg19": "15.01–34.87"}


def simulate(iop, models, cluster, setups=None):
    cmd = [iop, "simulate", "--model", ",".join(models), "--cluster", cluster, "--json"]
    if setups:
        cmd += ["--setup-ms", ",".join(map(str, setups))]
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iop", default=".build/release/iop")
    ap.add_argument("--clusters", default="examples/clusters/four-pi4-wifi.json,examples/clusters/compute-bound-gige.json")
    args = ap.parse_args()
    for cluster in args.clusters.split(","):
        print(f"\n#### `{cluster}`\n")
        print("| model | iop vs oc (paper) | iop vs coedge (paper) | iop peak memory vs coedge (paper) | optimal vs coedge | optimal ms / single ms |")
        print("|---|---|---|---|---|---|")
        for r in simulate(args.iop, ["lenet5", "alexnet", "vgg11"], cluster):
            p = {x["planner"]: x for x in r["planners"]}
            a, b, c = PAPER[r["model"]]
            print(f"| {r['model']} | {r['iop_latency_saved_vs_oc_pct']:.1f} % ({a} %) | {r['iop_latency_saved_vs_coedge_pct']:.1f} % ({b} %) | "
                  f"{r['iop_peak_memory_saved_vs_coedge_pct']:.1f} % ({c} %) | {r['optimal_latency_saved_vs_coedge_pct']:.1f} % | "
                  f"{p['optimal']['modeled_latency_ms']:.1f} / {p['single']['modeled_latency_ms']:.1f} |")
        setups = [1, 2, 3, 4, 5, 6, 7, 8]
        rows = simulate(args.iop, ["vgg11", "vgg13", "vgg16", "vgg19"], cluster, setups)
        print("\n| model | iop vs coedge, setup 1 → 8 ms | range | paper | optimal vs coedge range |")
        print("|---|---|---|---|---|")
        for model in ["vgg11", "vgg13", "vgg16", "vgg19"]:
            mine = [r for r in rows if r["model"] == model]
            iop = [r["iop_latency_saved_vs_coedge_pct"] for r in mine]
            opt = [r["optimal_latency_saved_vs_coedge_pct"] for r in mine]
            print(f"| {model} | {' / '.join(f'{v:.1f}' for v in iop)} | {min(iop):.1f}–{max(iop):.1f} % | {PAPER_SWEEP[model]} % | "
                  f"{min(opt):.1f}–{max(opt):.1f} % |")


if __name__ == "__main__":
    main()
