#!/usr/bin/env python3
"""Scores a valve-leak stream run against the recording's true leak events.

Reads what `iop-node leader --audio` (or `iop cluster --audio ... --json`) printed, one JSON line per
window ({"t", "score", "alert", "latency_ms", "met"}) and a final {"summary": ...}; other lines are
skipped. Beside it the events JSON and the WAV that synth.py wrote for the same recording.

Why a separate script: the board prints only what a board can know (its score, its alert state, its
latency); whether an alert was a detection or a false alarm needs the ground truth, which only the
synthesiser has. The rules below are the ones train.py chose its threshold with, so the figures are
comparable with model.json's held-out metrics:

- an alert starts at the first window of the run that raised it (the K consecutive windows at or
  above the threshold; the leader logs the same instant as "leak alert from S s"); its window's
  start in seconds of audio is the alert's start, and it lasts until the last window with
  "alert": true;
- an event is detected when an alert starts within [event start - 1 s, event end + 1 s];
- detection delay = t (end, seconds of audio) of the first window with "alert": true, minus the
  event's start: how long after the leak began the alarm went off;
- a false alarm is an alert overlapping no event widened by 1 s on each side; per hour of normal
  sound = false alarms / (recording length - total event length).

Prints a table (or with --json one object) and, with --png, a figure: the log-mel spectrogram, the
score per window with the threshold, true leaks shaded and alerts marked, and the latency per
window with the deadline, on one time axis.
"""
import argparse
import json
import os
import re
import sys
import wave

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import frontend  # noqa: E402

PARAMS = frontend.Parameters()
# Seconds of audio one window spans (its first sample to its last): 0.975 s.
WINDOW_S = (PARAMS.frame_hop * (PARAMS.patch_frames - 1) + PARAMS.frame_length) / PARAMS.sample_rate
HOP_S = PARAMS.frame_hop * PARAMS.patch_hop / PARAMS.sample_rate
GRACE_S = 1.0


# ---------------------------------------------------------------------------
# Inputs.

def read_lines(path):
    """The window lines and the summary (None if the stream did not finish) from a file or '-'.

    Lines that are not JSON objects (`listening tcp://...`, progress) are skipped, so the leader's
    raw stdout can be fed as it is."""
    f = sys.stdin if path == "-" else open(path)
    windows, summary, skipped = [], None, 0
    with f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                skipped += 1
                continue
            if "summary" in obj:
                summary = obj["summary"]
            elif "t" in obj and "score" in obj:
                windows.append(obj)
    if skipped:
        print(f"report: skipped {skipped} malformed JSON line(s)", file=sys.stderr)
    return windows, summary


def read_wav(path):
    """int16 mono samples at the front end's rate (what synth.py writes and the leader takes)."""
    with wave.open(path, "rb") as w:
        if w.getnchannels() != 1 or w.getsampwidth() != 2 or w.getframerate() != PARAMS.sample_rate:
            raise SystemExit(f"report: {path}: need {PARAMS.sample_rate} Hz mono 16-bit WAV")
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


def default_rule():
    """Threshold and K as trained: model.json if train.py wrote one, else the literals in
    ValveHead.swift, else the untrained slot's 0.5 and no K (runs are then found from the scores)."""
    path = os.path.join(HERE, "model.json")
    if os.path.exists(path):
        m = json.load(open(path))
        return float(m["threshold"]), int(m["consecutive"]), "model.json"
    path = os.path.join(ROOT, "Sources/IOPModel/ValveHead.swift")
    if os.path.exists(path):
        text = open(path).read()
        t = re.search(r"static let threshold: Float = ([-+0-9.eE]+)", text)
        k = re.search(r"static let consecutive(?:: Int)? = (\d+)", text)
        if t:
            return float(t.group(1)), int(k.group(1)) if k else None, "ValveHead.swift"
    return 0.5, None, "default"


# ---------------------------------------------------------------------------
# Analysis.

def alert_runs(t, score, alert, threshold, k):
    """Every alert as a dict: start (s of audio, the first window of its run), raised (t of the
    window that turned it on), end (t of its last alerting window).

    The leader's debouncer raises an alert when the K-th scored window in a row reaches the
    threshold, so the run began K-1 lines before the first "alert": true line (dropped windows are
    never scored, so lines and the debouncer count alike). Without K, walk back while the printed
    score is at or above the threshold."""
    runs = []
    i = 0
    n = len(t)
    while i < n:
        if not alert[i] or (i > 0 and alert[i - 1]):
            i += 1
            continue
        if k is not None:
            first = max(0, i - k + 1)
        else:
            first = i
            while first > 0 and score[first - 1] >= threshold and not alert[first - 1]:
                first -= 1
        last = i
        while last + 1 < n and alert[last + 1]:
            last += 1
        runs.append({"start": round(float(t[first]) - WINDOW_S, 3), "raised": float(t[i]), "end": float(t[last])})
        i = last + 1
    return runs


def analyse(windows, summary, info, samples, threshold, k, deadline_ms):
    """Every figure of the run as one JSON-ready dict."""
    t = np.array([w["t"] for w in windows], dtype=float)
    score = np.array([w["score"] for w in windows], dtype=float)
    alert = np.array([bool(w["alert"]) for w in windows])
    latency = np.array([w["latency_ms"] for w in windows], dtype=float)
    met = np.array([bool(w["met"]) for w in windows])
    frames = 0 if len(samples) < PARAMS.frame_length else 1 + (len(samples) - PARAMS.frame_length) // PARAMS.frame_hop
    expected = 0 if frames < PARAMS.patch_frames else 1 + (frames - PARAMS.patch_frames) // PARAMS.patch_hop
    seconds = float(info.get("seconds", len(samples) / PARAMS.sample_rate))
    streamed_to = float(t[-1]) if len(t) else 0.0

    runs = alert_runs(t, score, alert, threshold, k)
    events = info["events"]
    # Events the stream reached; a stream that stopped early is not blamed for what it never heard.
    covered = [e for e in events if e["start"] <= streamed_to]
    for a in runs:
        a["events"] = [i for i, e in enumerate(events) if a["start"] <= e["end"] + GRACE_S
                       and a["end"] >= e["start"] - GRACE_S]
        a["false_alarm"] = not a["events"]
    per_event = []
    for i, e in enumerate(covered):
        hits = [a for a in runs if e["start"] - GRACE_S <= a["start"] <= e["end"] + GRACE_S]
        first = min(hits, key=lambda a: a["raised"]) if hits else None
        per_event.append({"start": e["start"], "end": e["end"], "snr_db": e["snr_db"], "detected": bool(hits),
                          "delay_s": round(first["raised"] - e["start"], 3) if first else None})
    per_snr = {}
    for e in per_event:
        per_snr.setdefault(e["snr_db"], []).append(e)
    snr_table = {}
    for snr in sorted(per_snr):
        d = [e["delay_s"] for e in per_snr[snr] if e["detected"]]
        snr_table[f"{snr:+g}"] = {"events": len(per_snr[snr]), "detected": len(d),
                                  "delay_s_median": round(float(np.median(d)), 3) if d else None,
                                  "delay_s_max": round(float(np.max(d)), 3) if d else None}
    event_s = sum(e["end"] - e["start"] for e in events)
    normal_s = max(0.0, min(seconds, streamed_to) - sum(
        max(0.0, min(e["end"], streamed_to) - e["start"]) for e in covered)) if len(t) else 0.0
    false_alarms = sum(a["false_alarm"] for a in runs)
    delays = [e["delay_s"] for e in per_event if e["detected"]]

    def pct(q):
        # Nearest rank, as the leader's own percentiles.
        return round(float(np.percentile(latency, q, method="inverted_cdf")), 1) if len(latency) else None

    return {
        "seconds": seconds,
        "streamed_to_s": streamed_to,
        "complete": summary is not None,
        "windows": int(len(t)),
        "windows_expected": int(expected),
        "met": int(met.sum()),
        "missed": int((~met).sum()),
        "met_percent": round(100.0 * met.sum() / len(t), 2) if len(t) else None,
        "dropped": int(summary["dropped"]) if summary else None,
        "deadline_ms": deadline_ms,
        "p50_ms": pct(50),
        "p99_ms": pct(99),
        "max_ms": round(float(latency.max()), 1) if len(latency) else None,
        "threshold": threshold,
        "consecutive": k,
        "events": len(events),
        "events_covered": len(covered),
        "events_detected": sum(e["detected"] for e in per_event),
        "delay_s_median": round(float(np.median(delays)), 3) if delays else None,
        "per_snr_db": snr_table,
        "per_event": per_event,
        "alerts": runs,
        "alerts_count": len(runs),
        "false_alarms": int(false_alarms),
        "normal_minutes": round(normal_s / 60, 3),
        "false_alarms_per_hour": round(false_alarms / (normal_s / 3600), 2) if normal_s > 0 else None,
        "leak_minutes": round(event_s / 60, 3),
        "leader_summary": summary,
    }


# ---------------------------------------------------------------------------
# Output.

def fmt(v, spec="", none="-"):
    return none if v is None else format(v, spec)


def print_table(r, title):
    """The run, readably: stream health first, then detection."""
    print(title)
    done = "" if r["complete"] else "  (INCOMPLETE: no summary line, the stream stopped early)"
    print(f"  audio      {r['seconds']:.1f} s streamed to {r['streamed_to_s']:.1f} s{done}")
    print(f"  windows    {r['windows']} scored of {r['windows_expected']} in the recording, "
          f"{fmt(r['dropped'])} dropped")
    print(f"  deadline   {r['met']} of {r['windows']} within {r['deadline_ms']:g} ms ({fmt(r['met_percent'], '.1f')} %), "
          f"{r['missed']} late")
    print(f"  latency    p50 {fmt(r['p50_ms'], '.1f')} ms, p99 {fmt(r['p99_ms'], '.1f')} ms, "
          f"max {fmt(r['max_ms'], '.1f')} ms")
    rule = f"score >= {r['threshold']:.4g}" + (f" for K = {r['consecutive']} windows" if r["consecutive"] else "")
    print(f"  rule       {rule}")
    print(f"  leaks      {r['events_detected']} of {r['events_covered']} detected"
          + (f" ({r['events'] - r['events_covered']} after the stream stopped)" if r["events_covered"] < r["events"]
             else "") + f", median delay {fmt(r['delay_s_median'], '.2f')} s")
    print(f"  {'SNR':>8} {'events':>7} {'detected':>9} {'delay median':>13} {'delay max':>10}")
    for snr, s in r["per_snr_db"].items():
        print(f"  {snr + ' dB':>8} {s['events']:>7} {s['detected']:>9} {fmt(s['delay_s_median'], '.2f'):>11} s"
              f" {fmt(s['delay_s_max'], '.2f'):>8} s")
    print(f"  alerts     {r['alerts_count']}, false alarms {r['false_alarms']} in {r['normal_minutes']:.2f} min of "
          f"normal sound = {fmt(r['false_alarms_per_hour'], '.1f')} per hour")


def plot(r, windows, info, samples, path, title):
    """Spectrogram, score and latency on one time axis, 12x8 in at 150 dpi."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch
    from matplotlib.lines import Line2D

    t = np.array([w["t"] for w in windows], dtype=float)
    score = np.array([w["score"] for w in windows], dtype=float)
    alert = np.array([bool(w["alert"]) for w in windows])
    latency = np.array([w["latency_ms"] for w in windows], dtype=float)
    met = np.array([bool(w["met"]) for w in windows])
    seconds = r["seconds"]

    fig, axes = plt.subplots(3, 1, figsize=(12, 8), sharex=True, gridspec_kw={"height_ratios": [1.15, 1.3, 0.9]})
    fig.suptitle(title, fontsize=12, fontweight="bold")

    # 1. Log-mel spectrogram, exactly the front end's features. Frames are averaged in blocks so the
    # image is about as wide as the figure's pixels (less to draw, a smaller PNG, same look).
    ax = axes[0]
    mel = frontend.log_mel_frames(samples).astype(np.float32)
    block = max(1, len(mel) // 2400)
    if block > 1:
        mel = mel[:len(mel) // block * block].reshape(-1, block, mel.shape[1]).mean(1)
    lo, hi = np.percentile(mel, [2, 99.5])
    im = ax.imshow(mel.T, origin="lower", aspect="auto", cmap="magma", vmin=lo, vmax=hi, interpolation="nearest",
                   extent=(0, len(mel) * block * PARAMS.frame_hop / PARAMS.sample_rate, 0, PARAMS.mel_bins))
    # Label the mel axis in Hz: band b's centre sits at fraction b/64 of the mel range.
    mel_lo, mel_hi = frontend.hz_to_mel(PARAMS.f_min), frontend.hz_to_mel(PARAMS.f_max)
    hz = np.array([250, 500, 1000, 2000, 4000, 7000])
    ax.set_yticks((frontend.hz_to_mel(hz) - mel_lo) / (mel_hi - mel_lo) * PARAMS.mel_bins)
    ax.set_yticklabels([f"{f / 1000:g}" for f in hz])
    ax.set_ylabel("frequency (kHz, mel)")
    ax.set_title("log-mel spectrogram (front end: 64 mel bands, 25 ms frames)", fontsize=10, loc="left")
    cbar = fig.colorbar(im, ax=ax, pad=0.01, fraction=0.025)
    cbar.set_label("log mel", fontsize=8)
    cbar.ax.tick_params(labelsize=7)
    for e in info["events"]:
        ax.plot([e["start"], e["end"]], [PARAMS.mel_bins - 1.2] * 2, color="#2ca02c", lw=3, solid_capstyle="butt")
    ax.legend(handles=[Line2D([], [], color="#2ca02c", lw=3, label="true leak")], loc="lower left",
              bbox_to_anchor=(1.07, 0.0), fontsize=8, frameon=False)

    # 2. Score per window, threshold, true leaks and alerts.
    ax = axes[1]
    for e in info["events"]:
        ax.axvspan(e["start"], e["end"], color="#2ca02c", alpha=0.18, lw=0)
        ax.text((e["start"] + e["end"]) / 2, 1.13, f"{e['snr_db']:+g} dB", ha="center", va="center", fontsize=8,
                color="#1b6e1b")
    ax.plot(t, score, color="#1f77b4", lw=1.0, marker="o", ms=1.8, zorder=3)
    ax.axhline(r["threshold"], color="#d62728", ls="--", lw=1.0, zorder=2)
    for a in r["alerts"]:
        color = "#d62728" if a["false_alarm"] else "#ff7f0e"
        ax.plot([a["start"], a["end"]], [1.04, 1.04], color=color, lw=4, solid_capstyle="butt", zorder=4)
        ax.plot([a["raised"]], [1.04], marker="v", color="black", ms=5, zorder=5)
    ax.set_ylim(-0.03, 1.2)
    ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0])
    ax.set_ylabel("leak score (0-1)")
    ax.set_title("score per window (0.96 s, every 0.5 s) and alerts", fontsize=10, loc="left")
    handles = [Line2D([], [], color="#1f77b4", marker="o", ms=3, lw=1, label="score"),
               Line2D([], [], color="#d62728", ls="--", label=f"threshold {r['threshold']:.3g}"),
               Patch(color="#2ca02c", alpha=0.3, label="true leak (SNR above)"),
               Line2D([], [], color="#ff7f0e", lw=4, label="alert"),
               Line2D([], [], color="#d62728", lw=4, label="false alarm"),
               Line2D([], [], color="black", marker="v", lw=0, label="alert raised")]
    ax.legend(handles=handles, loc="center left", bbox_to_anchor=(1.005, 0.5), fontsize=8, frameon=False)

    # 3. Latency per window and the deadline; gaps in t are dropped windows.
    ax = axes[2]
    ax.axhline(r["deadline_ms"], color="#d62728", ls="--", lw=1.0)
    ax.plot(t[met], latency[met], ".", color="#1f77b4", ms=3, label="within deadline")
    if (~met).any():
        ax.plot(t[~met], latency[~met], "x", color="#d62728", ms=4, label="late")
    gaps = np.nonzero(np.diff(t) > 1.5 * HOP_S)[0]
    if len(gaps):
        ax.plot(t[gaps + 1], np.zeros(len(gaps)), "|", color="grey", ms=8, label="after dropped windows")
    top = max(r["deadline_ms"] * 1.25, float(latency.max()) * 1.1 if len(latency) else 0)
    ax.set_ylim(0, top)
    ax.set_ylabel("latency (ms)")
    ax.set_xlabel("time (s of audio)")
    ax.set_title(f"latency per window: p50 {fmt(r['p50_ms'], '.0f')} ms, p99 {fmt(r['p99_ms'], '.0f')} ms, "
                 f"{fmt(r['met_percent'], '.1f')} % within the deadline", fontsize=10, loc="left")
    handles, _ = ax.get_legend_handles_labels()
    handles.insert(0, Line2D([], [], color="#d62728", ls="--", label=f"deadline {r['deadline_ms']:g} ms"))
    ax.legend(handles=handles, loc="center left", bbox_to_anchor=(1.005, 0.5), fontsize=8, frameon=False)

    for ax in axes:
        ax.set_xlim(0, seconds)
    for ax in axes[1:]:
        ax.grid(axis="x", color="0.85", lw=0.5)
    axes[2].grid(axis="y", color="0.9", lw=0.5)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    # The colour bar narrows the spectrogram; give the two lower axes the same width.
    pos0 = axes[0].get_position()
    for ax in axes[1:]:
        p = ax.get_position()
        ax.set_position([pos0.x0, p.y0, pos0.width, p.height])
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    save_png(fig, path)
    plt.close(fig)


def save_png(fig, path):
    """150 dpi, as a 256-colour palette PNG when Pillow is there (matplotlib depends on it): the
    spectrogram's noise makes a true-colour PNG several times larger for no visible difference,
    and the figure is committed to the repository."""
    import io
    buf = io.BytesIO()
    fig.savefig(buf, dpi=150, format="png")
    try:
        from PIL import Image
    except ImportError:
        with open(path, "wb") as f:
            f.write(buf.getvalue())
        return
    image = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(path, optimize=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stream", nargs="?", default="-", help="the leader's JSON lines (a file, or - for stdin)")
    parser.add_argument("--events", required=True, help="synth.py's events JSON for the recording")
    parser.add_argument("--wav", required=True, help="the recording that was streamed")
    parser.add_argument("--threshold", type=float, default=None,
                        help="alert threshold (default: model.json's, else ValveHead.swift's)")
    parser.add_argument("--consecutive", type=int, default=None,
                        help="windows in a row that raise an alert (default: as the threshold)")
    parser.add_argument("--deadline-ms", type=float, default=HOP_S * 1000,
                        help="the deadline the leader ran with (default: the 500 ms hop, as the leader)")
    parser.add_argument("--title", default="valve leak stream", help="the table's and the figure's title")
    parser.add_argument("--png", help="write the figure here")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args()

    threshold, k, source = default_rule()
    if args.threshold is not None:
        threshold, source = args.threshold, "--threshold"
        k = args.consecutive
    elif args.consecutive is not None:
        k = args.consecutive
    if not 0 < threshold < 1:
        parser.error(f"--threshold must lie strictly between 0 and 1, got {threshold}")
    if k is not None and k < 1:
        parser.error(f"--consecutive must be at least 1, got {k}")

    windows, summary = read_lines(args.stream)
    if not windows:
        raise SystemExit(f"report: no window lines in {args.stream}")
    info = json.load(open(args.events))
    samples = read_wav(args.wav)
    r = analyse(windows, summary, info, samples, threshold, k, args.deadline_ms)
    r["rule_from"] = source
    if args.png:
        plot(r, windows, info, samples, args.png, args.title)
    if args.json:
        print(json.dumps(r))
    else:
        print_table(r, args.title)
        if args.png:
            print(f"  figure     {args.png}")
    if summary is None:
        print("report: the stream has no summary line: it did not run to the end", file=sys.stderr)


if __name__ == "__main__":
    main()
