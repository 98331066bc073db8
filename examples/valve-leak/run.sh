#!/usr/bin/env bash
# The valve-leak main job on this machine: a held-out recording streamed in real time through the
# zoo's valve model split across four local iop-node processes, scored against its true leaks.
#
#   examples/valve-leak/run.sh [--out DIR] [--seed 90001] [--minutes 2] [--planner iop]
#                              [--cluster examples/valve-leak/four-pi.json] [--no-build]
#
# Steps: scripts/install-deps; swift build -c release; synth.py synthesises the recording (a seed no
# training or validation stream uses) and its events; `iop cluster --model valve --cluster FILE
# --planner P --audio X.wav --realtime --json` streams it; report.py scores the JSON lines against
# the events. The folder (default out/valve-leak/) gets, only once everything has run: report.txt
# (the table), report.json, valve-leak.png (spectrogram, score, alerts, latency), stream.jsonl (the
# leader's lines), events.json, recording.wav, cluster.log. Progress goes to stderr; the folder's
# path is the last line on stdout. Exits non-zero when the stream or any step fails.
# scripts/install-deps installs what it needs (libzmq, numpy, matplotlib). No root needed beyond that.
set -euo pipefail

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
die() { echo "run.sh: $*" >&2; exit 1; }
say() { echo "== $*" >&2; }

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=$root/out/valve-leak seed=90001 minutes=2 planner=iop cluster=$here/four-pi.json build=1
while [ $# -gt 0 ]; do
    case "$1" in
        --out) [ $# -ge 2 ] || die "--out needs a folder"; out=$(realpath -m -- "$2"); shift 2 ;;
        --seed) [ $# -ge 2 ] || die "--seed needs a number"; seed=$2; shift 2 ;;
        --minutes) [ $# -ge 2 ] || die "--minutes needs a number"; minutes=$2; shift 2 ;;
        --planner) [ $# -ge 2 ] || die "--planner needs a name"; planner=$2; shift 2 ;;
        --cluster) [ $# -ge 2 ] || die "--cluster needs a file"; cluster=$(realpath -m -- "$2"); shift 2 ;;
        --no-build) build=0; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown option '$1'" ;;
    esac
done
[[ "$seed" =~ ^[0-9]+$ ]] || die "--seed must be a non-negative integer, got '$seed'"
[[ "$minutes" =~ ^[0-9]+([.][0-9]+)?$ ]] || die "--minutes must be a number, got '$minutes'"
[ -f "$cluster" ] || die "no cluster file at $cluster"
# Seeds train.py and evaluate.py used, for this model and the previous ones (examples/valve-leak/model.json),
# and the development streams 9001-9012: a report on them would not be held out.
if [ "$seed" -ge 9001 ] && [ "$seed" -le 9012 ]; then die "seed $seed is a development stream of train.py"; fi
python3 "$here/evaluate.py" --check-fresh "$seed" || die "pick a seed train.py and evaluate.py have not used"

cd "$root"
work=$(mktemp -d "${TMPDIR:-/tmp}/valve-leak-run-XXXXXX")
stage=""
cleanup() { rm -rf "$work"; if [ -n "$stage" ]; then rm -rf "$stage"; fi; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say "dependencies (scripts/install-deps)"
scripts/install-deps >&2
# install-deps falls back to a virtualenv under .build when the system python takes no pip installs.
if [ -x .build/pyenv/bin/python3 ]; then export PATH="$root/.build/pyenv/bin:$PATH"; fi
python3 -c 'import numpy, matplotlib' 2>/dev/null ||
    die "python3 has no numpy or matplotlib even after scripts/install-deps"

if [ "$build" = 1 ]; then
    say "building (swift build -c release)"
    swift build -c release >&2 || die "swift build -c release failed"
fi
iop=$root/.build/release/iop
[ -x "$iop" ] && [ -x "$root/.build/release/iop-node" ] || die "no release build: run swift build -c release"
heads=$(grep -c , Sources/IOPModel/ValveHead.swift || true)
[ "$heads" -gt 1 ] || echo "run.sh: warning: ValveHead.swift holds no trained weights yet; scores are meaningless" >&2

say "synthesising $minutes min of held-out valve sound (seed $seed)"
mkdir "$work/result"
python3 "$here/synth.py" stream --seed "$seed" --minutes "$minutes" --out "$work/result/recording.wav" \
    --events "$work/result/events.json" >&2
python3 - "$work/result/events.json" <<'PY' >&2
import json, sys
snrs = sorted({e["snr_db"] for e in json.load(open(sys.argv[1]))["events"]})
if len(snrs) < 3:
    print(f"run.sh: warning: this recording has leaks at {snrs} dB only; a longer one covers -6, 0 and +6 dB")
PY

say "streaming it in real time through $(basename "$cluster") with the $planner plan (takes the recording's length)"
rc=0
"$iop" cluster --model valve --cluster "$cluster" --planner "$planner" --audio "$work/result/recording.wav" \
    --realtime --json > "$work/result/stream.jsonl" 2> "$work/result/cluster.log" || rc=$?
if [ "$rc" != 0 ] || ! grep -q '^{"summary"' "$work/result/stream.jsonl"; then
    tail -5 "$work/result/cluster.log" >&2
    die "the stream failed (iop cluster exited $rc$(grep -q '^{"summary"' "$work/result/stream.jsonl" || echo ', no summary line'))"
fi

say "scoring the alerts against the true leaks"
title="valve, $(basename "$cluster" .json), $planner plan, local iop-node processes: seed $seed, $minutes min"
python3 "$here/report.py" "$work/result/stream.jsonl" --events "$work/result/events.json" \
    --wav "$work/result/recording.wav" --title "$title" --png "$work/result/valve-leak.png" > "$work/result/report.txt"
python3 "$here/report.py" "$work/result/stream.jsonl" --events "$work/result/events.json" \
    --wav "$work/result/recording.wav" --json > "$work/result/report.json"
sed "s|$work/result/|$out/|" "$work/result/report.txt" > "$work/result/report.txt.new"
mv "$work/result/report.txt.new" "$work/result/report.txt"

# Only now the folder: staged beside it, then renamed into place, so a failed run leaves the last good
# one whole and never a half-written one.
mkdir -p "$(dirname "$out")"
stage=$(mktemp -d "$(dirname "$out")/.$(basename "$out").XXXXXX")
cp -a "$work/result/." "$stage/"
chmod 755 "$stage"
old=$stage.old
if [ -e "$out" ]; then mv "$out" "$old"; fi
mv "$stage" "$out"
stage=""
rm -rf "$old"
cat "$out/report.txt"
echo "$out"
