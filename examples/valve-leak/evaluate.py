#!/usr/bin/env python3
"""Scores the trained leak detector on more held-out streams than train.py can afford.

train.py stays under ten minutes, so its held-out set (40 min) bounds the false-alarm rate only
loosely: no false alarm in half an hour of normal sound is still compatible with several per hour.
This script synthesises further streams with fresh seeds (never used for training or validation:
it refuses those in model.json), scores them with the weights in ValveHead.swift and the threshold
and K in model.json, through the same backbone (ONNX Runtime on the exported valve model), and
reports the same metrics as train.py. With --record it stores them in model.json as
"held_out_extra" (and the combined figures as "held_out_all").

With --normal-only the streams hold no leak at all (synth.py stream --no-leaks): every alert is a
false alarm, which bounds the false-alarm rate with hours of normal sound, each stream its own valve
and factory. With --record those figures go to "held_out_normal" (with every held-out minute of
normal sound pooled), the other keys untouched.
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


RECORDS = {False: "held_out_extra", True: "held_out_normal"}  # model.json's key for each mode
DEFAULTS = {False: (range(7501, 7516), 4.0), True: (range(7301, 7341), 5.0)}  # seeds, minutes per stream


def used_seeds(model, rerun=None):
    """Every stream and clip seed train.py used and every evaluation's, this model's and the previous models'
    (model.json keeps them under previous_model), so none of them is taken for held-out data again (the
    record `rerun`'s own seeds may be run again: that reproduces it). Clip seeds are stored as [first, last]
    ranges (every seed looked at, also those the scene filter skipped), stream seeds as lists."""
    used = set()

    def walk(node, top):
        if isinstance(node, dict):
            for key, value in node.items():
                if top and key == rerun:
                    continue
                if key.endswith("clip_seeds") or key.endswith("seeds_looked_at"):
                    used.update(range(value[0], value[1] + 1))
                elif key.endswith("stream_seeds"):
                    used.update(value)
                else:
                    walk(value, False)
        elif isinstance(node, list):
            for value in node:
                walk(value, False)

    walk(model, True)
    return used


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", help="held-out stream seeds, none of train.py's (default 7501..7515,"
                        " with --normal-only 7301..7340)")
    parser.add_argument("--minutes", type=float, help="minutes per stream (default 4, with --normal-only 5)")
    parser.add_argument("--normal-only", action="store_true",
                        help="streams without leaks: false alarms in hours of normal sound (held_out_normal)")
    parser.add_argument("--iop", default=os.path.join(train.ROOT, ".build/release/iop"))
    parser.add_argument("--workdir", default="/tmp/valve-leak")
    parser.add_argument("--swift", default=os.path.join(train.ROOT, "Sources/IOPModel/ValveHead.swift"))
    parser.add_argument("--json", default=os.path.join(HERE, "model.json"))
    parser.add_argument("--record", action="store_true", help="store the metrics in model.json")
    parser.add_argument("--check-fresh", type=int, metavar="SEED",
                        help="only check that SEED is none of model.json's (exit status 1 if it is one); run.sh"
                             " and emulated.sh use this")
    args = parser.parse_args()
    began = time.time()

    model = json.load(open(args.json))
    if args.check_fresh is not None:
        if args.check_fresh in used_seeds(model):
            raise SystemExit(f"seed {args.check_fresh} was used by train.py or an evaluation"
                             " (examples/valve-leak/model.json); pick another")
        return
    default_seeds, default_minutes = DEFAULTS[args.normal_only]
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else list(default_seeds)
    minutes = args.minutes if args.minutes is not None else default_minutes
    clash = sorted(set(seeds) & used_seeds(model, rerun=RECORDS[args.normal_only]))
    if clash:
        raise SystemExit(f"evaluate: seeds {clash} were used by train.py or another evaluation;"
                         " held-out data needs fresh ones")
    head, threshold, k = verify.read_head(args.swift)
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
    # One synthesis worker beside ONNX Runtime's single thread: two cores.
    kind = "normal" if args.normal_only else "stream"
    with multiprocessing.get_context("fork").Pool(1) as pool:
        embedder = train.Embedder(onnx_path)
        streams = train.embed_jobs([(kind, s, minutes, None, 1) for s in seeds], embedder, cache, digest, pool)
    command = ("python3 examples/valve-leak/evaluate.py" + (" --normal-only" if args.normal_only else "")
               + " --record" + ("" if args.seeds is None else f" --seeds {args.seeds}")
               + ("" if args.minutes is None else f" --minutes {args.minutes:g}"))
    if args.normal_only:
        record_normal(args, model, streams, seeds, minutes, head, threshold_logit, k, command, began)
        return
    extra = train.evaluate(streams, head, threshold_logit, k)
    print(f"extra held-out: {len(seeds)} streams x {minutes:g} min (seeds {seeds[0]}..{seeds[-1]}),"
          f" {time.time() - began:.0f} s")
    print(f"  {extra['audio_minutes']:g} min ({extra['normal_minutes']:g} min normal),"
          f" window AUC {extra['window_auc']},"
          f" false alarms {extra['false_alarms']} = {extra['false_alarms_per_hour']:g}/h")
    for snr, s in extra["per_snr_db"].items():
        print(f"    {snr:>3} dB: {s['detected']}/{s['events']} detected, delay median {s['delay_s_median']} s,"
              f" max {s['delay_s_max']} s")
    if args.record:
        model["held_out_extra"] = {"stream_seeds": seeds, "minutes_each": minutes,
                                   "events": sum(len(i["events"]) for _, _, i in streams), "metrics": extra,
                                   "command": command}
        model["held_out_all"] = combine(model["held_out"]["metrics"], extra)
        write_model(args.json, model)
        print(f"  recorded in {args.json} (held_out_extra, held_out_all)")


def write_model(path, model):
    with open(path, "w") as f:
        json.dump(model, f, indent=1)
        f.write("\n")


def normal_metrics(streams, head, threshold_logit, k):
    """False alarms on leak-free streams: every alert is one. Also how close the quietest miss came:
    the highest score any run of K windows held throughout (an alert needs it at the threshold)."""
    alarms, windows, above, closest = [], 0, 0, -np.inf
    seconds = 0.0
    for emb, ends, info in streams:
        if info["events"]:
            raise SystemExit(f"evaluate: stream {info['seed']} has leak events; --normal-only needs none")
        logit = train.scores(emb, head)
        for start, raised, end in train.alerts(logit, ends, threshold_logit, k):
            run = (ends - train.WINDOW_S >= start - 1e-9) & (ends <= end + 1e-9)
            alarms.append({"stream_seed": info["seed"], "start_s": round(float(start), 3),
                           "raised_s": round(float(raised), 3), "end_s": round(float(end), 3),
                           "peak_probability": round(float(train.sigmoid(logit[run].max())), 4)})
        windows += len(logit)
        above += int((logit >= threshold_logit).sum())
        if len(logit) >= k:
            held = np.lib.stride_tricks.sliding_window_view(logit, k).min(axis=1)
            closest = max(closest, float(held.max()))
        seconds += info["seconds"]
    hours = seconds / 3600
    return {"normal_minutes": round(seconds / 60, 2), "streams": len(streams), "windows": windows,
            "windows_at_or_above_threshold": above, "false_alarms": len(alarms),
            "false_alarms_per_hour": round(len(alarms) / hours, 3),
            "false_alarms_per_hour_95pct_upper": round(poisson_upper(len(alarms)) / hours, 3),
            "highest_k_window_probability": round(float(train.sigmoid(closest)), 4),
            "highest_k_window_logit": round(closest, 3), "alarms": alarms}


def record_normal(args, model, streams, seeds, minutes, head, threshold_logit, k, command, began):
    """--normal-only: prints the false alarms and, with --record, stores them as held_out_normal, pooled
    with the normal sound of the earlier held-out streams."""
    m = normal_metrics(streams, head, threshold_logit, k)
    elapsed = time.time() - began
    print(f"normal-only held-out: {len(seeds)} streams x {minutes:g} min (seeds {seeds[0]}..{seeds[-1]}),"
          f" {elapsed:.0f} s")
    print(f"  {m['normal_minutes']:g} min of normal sound, {m['windows']} windows"
          f" ({m['windows_at_or_above_threshold']} at or above the threshold): false alarms {m['false_alarms']}"
          f" = {m['false_alarms_per_hour']:g}/h, 95% upper bound {m['false_alarms_per_hour_95pct_upper']:g}/h")
    print(f"  closest to an alarm: {k} windows in a row at probability >= {m['highest_k_window_probability']:g}"
          f" (threshold {np.float32(train.sigmoid(threshold_logit)):.4g})")
    for a in m["alarms"]:
        print(f"    false alarm: seed {a['stream_seed']}, {a['start_s']:g}-{a['end_s']:g} s,"
              f" peak probability {a['peak_probability']:g}")
    earlier = model.get("held_out_all", model["held_out"]["metrics"])
    pooled_minutes = earlier["normal_minutes"] + m["normal_minutes"]
    pooled_fa = earlier["false_alarms"] + m["false_alarms"]
    pooled = {"normal_minutes": round(pooled_minutes, 2), "false_alarms": pooled_fa,
              "false_alarms_per_hour": round(pooled_fa / (pooled_minutes / 60), 3),
              "false_alarms_per_hour_95pct_upper": round(poisson_upper(pooled_fa) / (pooled_minutes / 60), 3)}
    print(f"  with the earlier held-out streams' normal sound: {pooled_fa} in {pooled_minutes / 60:.2f} h,"
          f" 95% upper bound {pooled['false_alarms_per_hour_95pct_upper']:g}/h")
    if args.record:
        model["held_out_normal"] = {
            "stream_seeds": seeds, "minutes_each": minutes, "metrics": m,
            "pooled_with": "held_out_all" if "held_out_all" in model else "held_out", "pooled": pooled,
            "seconds": round(elapsed, 1), "command": command}
        write_model(args.json, model)
        print(f"  recorded in {args.json} (held_out_normal)")


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
