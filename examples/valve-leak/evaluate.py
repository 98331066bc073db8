#!/usr/bin/env python3
"""Scores the trained leak detector on more held-out streams than train.py can afford.

train.py stays under ten minutes, so its held-out set (40 min) bounds the false-alarm rate only
loosely: no false alarm in half an hour of normal sound is still compatible with several per hour.
This script synthesises further streams with fresh seeds (never used for training or validation:
it refuses those in model.json), scores them with the weights in ValveHead.swift and the threshold
and K in model.json, through the same backbone (ONNX Runtime on the exported valve model), and
reports the same metrics as train.py. With --record it stores them in model.json as
"held_out_extra" (and the combined figures as "held_out_all").
"""
import argparse
import json
import multiprocessing
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import train  # noqa: E402
import verify  # noqa: E402


def used_seeds(model):
    """Every stream and clip seed train.py used, so none of them is taken for held-out data again."""
    lo, hi = model["train"]["clip_seeds"]
    return set(range(lo, hi + 1)) | set(model["validation"]["stream_seeds"]) | set(model["held_out"]["stream_seeds"])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default=",".join(str(s) for s in range(7101, 7116)),
                        help="held-out stream seeds, none of train.py's")
    parser.add_argument("--minutes", type=float, default=4.0)
    parser.add_argument("--iop", default=os.path.join(train.ROOT, ".build/release/iop"))
    parser.add_argument("--workdir", default="/tmp/valve-leak")
    parser.add_argument("--swift", default=os.path.join(train.ROOT, "Sources/IOPModel/ValveHead.swift"))
    parser.add_argument("--json", default=os.path.join(HERE, "model.json"))
    parser.add_argument("--record", action="store_true", help="store the metrics in model.json")
    args = parser.parse_args()
    began = time.time()

    model = json.load(open(args.json))
    seeds = [int(s) for s in args.seeds.split(",")]
    clash = sorted(set(seeds) & used_seeds(model))
    if clash:
        raise SystemExit(f"evaluate: seeds {clash} were used by train.py; held-out data needs fresh ones")
    w, b, threshold, k = verify.read_head(args.swift)
    if threshold != np.float32(model["threshold"]) or k != model["consecutive"]:
        raise SystemExit("evaluate: ValveHead.swift and model.json disagree; rerun train.py")
    threshold_logit = float(np.log(threshold / (1 - threshold)))

    os.makedirs(args.workdir, exist_ok=True)
    cache = os.path.join(args.workdir, "cache")
    os.makedirs(cache, exist_ok=True)
    onnx_path = train.export_model(args.iop, os.path.join(args.workdir, "valve.onnx"))
    digest = train.backbone_digest(onnx_path)
    if digest != model["backbone_digest"]:
        raise SystemExit("evaluate: the binary's backbone differs from the one train.py trained on")
    with multiprocessing.get_context("fork").Pool(1) as pool:
        embedder = train.Embedder(onnx_path)
        streams = train.embed_jobs([("stream", s, args.minutes, None, 1) for s in seeds], embedder, cache, digest, pool)
    extra = train.evaluate(streams, w, b[0], threshold_logit, k)
    print(f"extra held-out: {len(seeds)} streams x {args.minutes:g} min (seeds {seeds[0]}..{seeds[-1]}),"
          f" {time.time() - began:.0f} s")
    print(f"  {extra['audio_minutes']:g} min ({extra['normal_minutes']:g} min normal), window AUC {extra['window_auc']},"
          f" false alarms {extra['false_alarms']} = {extra['false_alarms_per_hour']:g}/h")
    for snr, s in extra["per_snr_db"].items():
        print(f"    {snr:>3} dB: {s['detected']}/{s['events']} detected, delay median {s['delay_s_median']} s,"
              f" max {s['delay_s_max']} s")
    if args.record:
        model["held_out_extra"] = {"stream_seeds": seeds, "minutes_each": args.minutes,
                                   "events": sum(len(i["events"]) for _, _, i in streams), "metrics": extra,
                                   "command": "python3 examples/valve-leak/evaluate.py --record"
                                   + ("" if args.seeds == parser.get_default("seeds") else f" --seeds {args.seeds}")
                                   + ("" if args.minutes == 4.0 else f" --minutes {args.minutes:g}")}
        model["held_out_all"] = combine(model["held_out"]["metrics"], extra)
        with open(args.json, "w") as f:
            json.dump(model, f, indent=1)
            f.write("\n")
        print(f"  recorded in {args.json} (held_out_extra, held_out_all)")


def combine(a, b):
    """Pools two metric sets (counts add; delays are pooled as event-weighted means and overall maxima)."""
    normal = a["normal_minutes"] + b["normal_minutes"]
    fa = a["false_alarms"] + b["false_alarms"]
    out = {"audio_minutes": round(a["audio_minutes"] + b["audio_minutes"], 2), "normal_minutes": round(normal, 2),
           "false_alarms": fa, "false_alarms_per_hour": round(fa / (normal / 60), 3),
           "false_alarms_per_hour_95pct_upper": round(poisson_upper(fa) / (normal / 60), 3), "per_snr_db": {}}
    for snr in a["per_snr_db"]:
        x, y = a["per_snr_db"][snr], b["per_snr_db"].get(snr, {"events": 0, "detected": 0})
        events, detected = x["events"] + y["events"], x["detected"] + y["detected"]
        means = [(s["delay_s_mean"], s["detected"]) for s in (x, y) if s.get("delay_s_mean") is not None]
        out["per_snr_db"][snr] = {
            "events": events, "detected": detected, "detected_fraction": round(detected / events, 4),
            "delay_s_mean": round(sum(m * n for m, n in means) / max(1, sum(n for _, n in means)), 3),
            "delay_s_max": max(s["delay_s_max"] for s in (x, y) if s.get("delay_s_max") is not None)}
    return out


def poisson_upper(n, confidence=0.95):
    """One-sided upper confidence bound on a Poisson mean after observing n events (exact, by bisection)."""
    def tail(mu):  # P(X <= n | mu)
        term, total = np.exp(-mu), np.exp(-mu)
        for i in range(1, n + 1):
            term *= mu / i
            total += term
        return total
    lo, hi = 0.0, 10.0 + 10 * n
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if tail(mid) > 1 - confidence else (lo, mid)
    return hi


if __name__ == "__main__":
    main()
