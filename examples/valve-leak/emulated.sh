#!/usr/bin/env bash
# The valve-leak stream on four EMULATED Pi-class boards, once per planner, side by side.
#
#   sudo examples/valve-leak/emulated.sh [--seed 90002] [--minutes 5] [--rate-mbit 1000]
#        [--cpu-percent auto|P] [--pi-gflops 6.7] [--planners single,coedge,iop] [--cluster four-pi.json]
#        [--deadline-ms D] [--out out/valve-leak-emulated] [--png docs/valve-leak.png | --no-png]
#
# Boards are made by Benchmarks/emulated_net.sh (as Benchmarks/emulated_boards.sh makes them): one
# network namespace per board on a bridge, 198.18.0.(i+1) for board i, links shaped by tc tbf to
# --rate-mbit, each board's processes held to --cpu-percent of one core (cgroup cpu quota) and to
# its budget + 64 MiB (memory cgroup). Pi-4-class means what README's emulated boards mean: 6.7
# GFLOP/s on vgg11 in `iop bench`, about one Pi 4B core (5 % of the development machine's core);
# --cpu-percent auto finds the share of THIS machine's core that gives --pi-gflops on vgg11 (iop bench
# inside the quota, one or two corrections). The boards' speed on valve is then measured the same way
# (`iop bench --model valve` inside the quota) and written into a copy of the cluster file, so
# every plan is made for the boards it runs on. The recording (synth.py, a held-out seed) is synthesised once.
# Per planner: `iop plan --json` (arenas), `iop compile` (a plan over a board's budget is refused:
# its one line is that planner's result), then the leader streams the recording in real time in
# board 0 (iop-node leader --audio X.wav --realtime), the workers in theirs, and report.py scores it.
# Prints one table; writes the folder (--out) and the iop run's figure (--png) only at the end.
# Needs root, `swift build -c release` and scripts/install-deps (numpy, matplotlib).
set -euo pipefail

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
die() { echo "emulated.sh: $*" >&2; exit 1; }
say() { echo "== $*" >&2; }

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
seed=90002 minutes=5 rate=1000 cpu=auto pi_gflops=6.7 planners=single,coedge,iop cluster=$here/four-pi.json deadline=""
out=$root/out/valve-leak-emulated png=$root/docs/valve-leak.png
while [ $# -gt 0 ]; do
    case "$1" in
        --seed) [ $# -ge 2 ] || die "--seed needs a number"; seed=$2; shift 2 ;;
        --minutes) [ $# -ge 2 ] || die "--minutes needs a number"; minutes=$2; shift 2 ;;
        --rate-mbit) [ $# -ge 2 ] || die "--rate-mbit needs a number"; rate=$2; shift 2 ;;
        --cpu-percent) [ $# -ge 2 ] || die "--cpu-percent needs a number or auto"; cpu=$2; shift 2 ;;
        --pi-gflops) [ $# -ge 2 ] || die "--pi-gflops needs a number"; pi_gflops=$2; shift 2 ;;
        --planners) [ $# -ge 2 ] || die "--planners needs a list"; planners=$2; shift 2 ;;
        --cluster) [ $# -ge 2 ] || die "--cluster needs a file"; cluster=$(realpath -m -- "$2"); shift 2 ;;
        --deadline-ms) [ $# -ge 2 ] || die "--deadline-ms needs a number"; deadline=$2; shift 2 ;;
        --out) [ $# -ge 2 ] || die "--out needs a folder"; out=$(realpath -m -- "$2"); shift 2 ;;
        --png) [ $# -ge 2 ] || die "--png needs a path"; png=$(realpath -m -- "$2"); shift 2 ;;
        --no-png) png=""; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown option '$1'" ;;
    esac
done
[[ "$seed" =~ ^[0-9]+$ ]] || die "--seed must be a non-negative integer, got '$seed'"
[[ "$minutes" =~ ^[0-9]+([.][0-9]+)?$ ]] || die "--minutes must be a number, got '$minutes'"
[[ "$rate" =~ ^[0-9]+$ ]] && [ "$rate" -ge 1 ] || die "--rate-mbit must be a positive integer, got '$rate'"
[ "$cpu" = auto ] || { [[ "$cpu" =~ ^[0-9]+([.][0-9]+)?$ ]] && awk -v p="$cpu" 'BEGIN { exit !(p >= 4 && p <= 100) }'; } ||
    die "--cpu-percent must be auto or 4..100, got '$cpu'"
[[ "$pi_gflops" =~ ^[0-9]+([.][0-9]+)?$ ]] || die "--pi-gflops must be a number, got '$pi_gflops'"
[ -z "$deadline" ] || [[ "$deadline" =~ ^[0-9]+$ ]] || die "--deadline-ms must be a whole number of ms, got '$deadline'"
[[ "$planners" =~ ^[a-z]+(,[a-z]+)*$ ]] || die "--planners must be a comma-separated list, got '$planners'"
[ -f "$cluster" ] || die "no cluster file at $cluster"
# Seeds train.py and evaluate.py used, for this model and the previous ones (examples/valve-leak/model.json),
# and the development streams 9001-9012: a report on them would not be held out.
if [ "$seed" -ge 9001 ] && [ "$seed" -le 9012 ]; then die "seed $seed is a development stream of train.py"; fi
python3 "$here/evaluate.py" --check-fresh "$seed" || die "pick a seed train.py and evaluate.py have not used"
[ "$(id -u)" = 0 ] || die "needs root (network namespaces, tc, cgroups): sudo $0"
bin=$root/.build/release
[ -x "$bin/iop" ] && [ -x "$bin/iop-node" ] || die "build first: swift build -c release"
cd "$root"
# scripts/install-deps puts numpy and matplotlib in a virtualenv under .build when the system python takes no pip installs.
if [ -x .build/pyenv/bin/python3 ]; then export PATH="$root/.build/pyenv/bin:$PATH"; fi
python3 -c 'import numpy, matplotlib' 2>/dev/null || die "python3 has no numpy or matplotlib: run scripts/install-deps"
heads=$(grep -c , Sources/IOPModel/ValveHead.swift || true)
[ "$heads" -gt 1 ] || echo "emulated.sh: warning: ValveHead.swift holds no trained weights yet; scores are meaningless" >&2

# The boards as the cluster file has them: names, budgets (bytes), the leader's index.
work=$(mktemp -d "${TMPDIR:-/tmp}/valve-leak-emulated-XXXXXX")
python3 - "$cluster" "$work/boards.txt" <<'PY' || die "cannot read the cluster file $cluster"
import json, re, sys
c = json.load(open(sys.argv[1]))
units = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}
names = [d["name"] for d in c["devices"]]
with open(sys.argv[2], "w") as f:
    f.write(f"{names.index(c['leader'])}\n")
    for d in c["devices"]:
        m = re.fullmatch(r"([0-9.]+)\s*(B|KB|MB|GB|KiB|MiB|GiB)?", str(d["memory"]))
        if not m or not re.fullmatch(r"[A-Za-z0-9_.-]+", d["name"]):
            sys.exit(f"bad device {d}")
        f.write(f"{d['name']} {int(float(m.group(1)) * units[m.group(2) or 'B'])}\n")
PY
leader=$(head -1 "$work/boards.txt")
mapfile -t names < <(tail -n +2 "$work/boards.txt" | cut -d' ' -f1)
mapfile -t budgets < <(tail -n +2 "$work/boards.txt" | cut -d' ' -f2)
boards=${#names[@]}
[ "$boards" -ge 1 ] && [ "$boards" -le 200 ] || die "the cluster file has $boards boards"

EMU_PREFIX=vl EMU_BOARDS=$boards
. "$root/Benchmarks/emulated_net.sh"
emu_check || exit 2

pids=() stage=""
cleanup() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    emu_cleanup
    rm -rf "$work"
    if [ -n "$stage" ]; then rm -rf "$stage" "$stage.png"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
emu_cleanup  # leftovers of an earlier run that was killed

say "synthesising $minutes min of held-out valve sound (seed $seed)"
mkdir "$work/result"
wav=$work/result/recording.wav events=$work/result/events.json
python3 "$here/synth.py" stream --seed "$seed" --minutes "$minutes" --out "$wav" --events "$events" >&2

say "making $boards boards: namespaces $EMU_PREFIX-b0..$((boards - 1)) on 198.18.0.0/24, ${rate} Mbit/s, budget + 64 MiB"
emu_setup "$rate" "$([ "$cpu" = auto ] && echo 25 || echo "$cpu")" $((budgets[0] + (64 << 20)))
for i in $(seq 0 $((boards - 1))); do emu_set_memory "$i" $((budgets[i] + (64 << 20))); done

# GFLOP/s of a model in board $leader's cpu quota only: the single-board engine holds the whole
# model, more than a board's memory budget.
bench() {
    emu_on_board_cpu "$leader" "$bin/iop" bench --model "$1" --runs 3 --warmup 1 --json 2>>"$work/result/bench.log" |
        python3 -c "import json, sys; print(round(json.load(sys.stdin)['gflops'], 3))" ||
        die "iop bench --model $1 failed: $(tail -1 "$work/result/bench.log")"
}
vgg_gflops=""
if [ "$cpu" = auto ]; then
    # The quota scales CPU time, so GFLOP/s scale with it: start at 25 %, correct towards the target.
    cpu=25
    for round in 1 2 3; do
        for i in $(seq 0 $((boards - 1))); do emu_set_cpu "$i" "$cpu"; done
        say "calibrating: iop bench --model vgg11 at $cpu % of a core (target $pi_gflops GFLOP/s)"
        vgg_gflops=$(bench vgg11)
        next=$(python3 -c "print(round(min(100.0, max(4.0, $cpu * $pi_gflops / $vgg_gflops)), 1))")
        say "  vgg11: $vgg_gflops GFLOP/s at $cpu %"
        if python3 -c "import sys; sys.exit(abs($vgg_gflops - $pi_gflops) <= 0.08 * $pi_gflops)" && [ "$round" -lt 3 ]; then
            cpu=$next
        else
            break
        fi
    done
fi
for i in $(seq 0 $((boards - 1))); do emu_set_cpu "$i" "$cpu"; done

say "measuring one board: iop bench --model valve at $cpu % of a core"
gflops=$(bench valve)
python3 - "$cluster" "$work/result/cluster.json" "$gflops" "$rate" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
for i, d in enumerate(c["devices"]):
    d.update(endpoint=f"tcp://198.18.0.{i + 1}:5555", gflops=float(sys.argv[3]), bandwidth_mbps=float(sys.argv[4]))
json.dump(c, open(sys.argv[2], "w"), indent=2)
lifted = json.loads(json.dumps(c))
for d in lifted["devices"]:
    d["memory"] = "64GiB"
json.dump(lifted, open(sys.argv[2].replace(".json", "-unbounded.json"), "w"), indent=2)
PY
say "boards: $boards x $gflops GFLOP/s on valve ($cpu % of a core${vgg_gflops:+; vgg11 $vgg_gflops GFLOP/s}), ${rate} Mbit/s links"

leader_ep=tcp://198.18.0.$((leader + 1)):5555
audio_s=$(python3 -c "import json; print(json.load(open('$events'))['seconds'])")
limit_s=$(python3 -c "print(int($audio_s + 900))")
deadline_args=() report_args=()
[ -z "$deadline" ] || { deadline_args=(--deadline-ms "$deadline"); report_args=(--deadline-ms "$deadline"); }
for planner in ${planners//,/ }; do
    r=$work/result/$planner
    say "$planner: plan and compile"
    "$bin/iop" plan --model valve --cluster "$work/result/cluster.json" --planner "$planner" --json > "$r.plan.json" \
        2> "$r.plan.err" || true
    if ! "$bin/iop" compile --model valve --cluster "$work/result/cluster.json" --planner "$planner" \
        --out "$work/bundle-$planner" > "$r.compile.out" 2> "$r.compile.err"; then
        grep -v '^building ' "$r.compile.err" | tail -1 | sed 's/^error: //' > "$r.refused"
        [ -s "$r.refused" ] || echo "iop compile failed without a message" > "$r.refused"
        say "$planner: refused: $(cat "$r.refused")"
        # What the refused plan would need, planned the same way with the budgets lifted.
        "$bin/iop" plan --model valve --cluster "$work/result/cluster-unbounded.json" --planner "$planner" --json \
            > "$r.plan-unbounded.json" 2>/dev/null || rm -f "$r.plan-unbounded.json"
        continue
    fi
    say "$planner: streaming ${audio_s} s of audio in real time through the boards"
    # Every link CURVE-encrypted, as deployed: fresh keys per run.
    rm -rf "$work/keys-$planner"
    "$bin/iop" keys --cluster "$work/result/cluster.json" --out "$work/keys-$planner" > /dev/null
    (emu_on_board "$leader" "$bin/iop-node" leader --bundle "$work/bundle-$planner" --listen "$leader_ep" \
        --audio "$wav" --realtime "${deadline_args[@]}" --timeout-ms 600000 --keys "$work/keys-$planner/${names[leader]}" \
        > "$r.stream.jsonl" 2> "$r.leader.log") &
    lpid=$!
    pids+=("$lpid")
    for i in $(seq 0 $((boards - 1))); do
        [ "$i" = "$leader" ] && continue
        (emu_on_board "$i" "$bin/iop-node" worker --name "${names[i]}" --listen "tcp://198.18.0.$((i + 1)):5555" \
            --leader "$leader_ep" --memory-budget "${budgets[i]}" --timeout-ms 600000 --keys "$work/keys-$planner/${names[i]}" \
            > "$r.${names[i]}.log" 2>&1) &
        pids+=("$!")
    done
    started=$SECONDS rc=0
    while kill -0 "$lpid" 2>/dev/null; do
        if [ $((SECONDS - started)) -gt "$limit_s" ]; then
            echo "emulated.sh: $planner: the leader was still running after $limit_s s; stopping it" >&2
            kill -TERM "$lpid" 2>/dev/null || true
            break
        fi
        sleep 1
    done
    wait "$lpid" || rc=$?
    # Workers leave when their leader shuts down; any still there after 20 s are stopped.
    for _ in $(seq 1 20); do
        alive=0
        for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && break
        sleep 1
    done
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    pids=()
    rm -rf "$work/bundle-$planner"
    if [ "$rc" != 0 ] || ! grep -q '^{"summary"' "$r.stream.jsonl"; then
        echo "the stream failed (leader exit $rc): $(grep -v '^ *$' "$r.leader.log" | tail -1)" > "$r.failed"
        say "$planner: $(cat "$r.failed")"
        continue
    fi
    say "$planner: scoring"
    title="valve on $boards emulated boards ($gflops GFLOP/s, ${rate} Mbit/s), $planner plan: seed $seed, $minutes min"
    pngargs=()
    [ "$planner" = iop ] && pngargs=(--png "$work/result/valve-leak-iop.png")
    python3 "$here/report.py" "$r.stream.jsonl" --events "$events" --wav "$wav" "${report_args[@]}" \
        --title "$title" "${pngargs[@]}" > "$r.report.txt"
    python3 "$here/report.py" "$r.stream.jsonl" --events "$events" --wav "$wav" "${report_args[@]}" --json \
        > "$r.report.json"
done

python3 - "$work/result" "$planners" "$gflops" "$rate" "$cpu" "$seed" "$minutes" "$vgg_gflops" "$boards" > "$work/result/table.txt" <<'PY'
"""The side-by-side table, from each planner's files in the result folder."""
import json, os, re, sys
d, planners, gflops, rate, cpu, seed, minutes, vgg, boards = sys.argv[1:]
MiB = 1 << 20
rows, notes, summary = [], [], {}
for p in planners.split(","):
    f = lambda ext: os.path.join(d, f"{p}.{ext}")
    arenas, row = "-", {"planner": p}
    for plan_file, mark in ((f("plan.json"), ""), (f("plan-unbounded.json"), " (would need)")):
        if os.path.exists(plan_file) and os.path.getsize(plan_file):
            plan = json.load(open(plan_file))
            arenas = " ".join(f"{x['name']} {x['peak_memory_bytes'] / MiB:.1f}/{x['budget_bytes'] / MiB:.0f}"
                              if "(would" not in mark else
                              f"{x['name']} {x['peak_memory_bytes'] / MiB:.1f}" for x in plan["devices"]) + mark
            row["arenas_mib"] = {x["name"]: round(x["peak_memory_bytes"] / MiB, 1) for x in plan["devices"]}
            row["modelled_ms"] = round(plan["modeled_latency_ms"], 1)
            break
    if os.path.exists(f("refused")):
        row.update(result="refused", reason=open(f("refused")).read().strip())
        rows.append([p, "refused", "-", "-", "-", "-", "-", "-", arenas])
        notes.append(f"{p}: {row['reason']}")
    elif os.path.exists(f("failed")):
        row.update(result="failed", reason=open(f("failed")).read().strip())
        rows.append([p, "FAILED", "-", "-", "-", "-", "-", "-", arenas])
        notes.append(f"{p}: {row['reason']}")
    else:
        r = json.load(open(f("report.json")))
        row.update(result="ran", report={k: v for k, v in r.items() if k not in ("per_event", "alerts")})
        # The workers log the arena they allocated: it must be the plan's figure, byte for byte.
        plan = json.load(open(f("plan.json")))
        checked = []
        for x in plan["devices"]:
            log = f(f"{x['name']}.log")
            m = re.search(r"arena (\d+) bytes allocated", open(log).read()) if os.path.exists(log) else None
            if m:
                checked.append(int(m.group(1)) == x["peak_memory_bytes"])
                row.setdefault("worker_arenas_allocated", {})[x["name"]] = int(m.group(1))
        if checked:
            notes.append(f"{p}: {sum(checked)} of {len(checked)} workers allocated exactly the plan's arena"
                         + ("" if all(checked) else " (MISMATCH: see the worker logs)"))
        det = " ".join(f"{s['detected']}/{s['events']}" for s in r["per_snr_db"].values())
        snrs = "/".join(r["per_snr_db"])
        fa = r["false_alarms_per_hour"]
        rows.append([p, "ran", str(r["windows"]), f"{r['met_percent']:.1f}", f"{r['p50_ms']:.0f}/{r['p99_ms']:.0f}",
                     str(r["dropped"]), f"{det} ({snrs} dB)", f"{r['false_alarms']} = {fa:.1f}/h" if fa is not None
                     else "-", arenas])
    summary[p] = row
head = ["planner", "result", "windows", "% met", "p50/p99 ms", "dropped", "events detected per SNR",
        "false alarms", "arena/budget per board (MiB)"]
widths = [max(len(str(x[i])) for x in rows + [head]) for i in range(len(head))]
vgg_text = f", vgg11 {vgg} GFLOP/s" if vgg else ""
print(f"valve stream, seed {seed}, {minutes} min, on {boards} "
      f"emulated boards, each {cpu} % of a core: valve {gflops} GFLOP/s{vgg_text}; {rate} Mbit/s links")
for x in [head] + rows:
    print("  ".join(str(v).ljust(w) for v, w in zip(x, widths)).rstrip())
for n in notes:
    print(n)
json.dump({"gflops": float(gflops), "vgg11_gflops": float(vgg) if vgg else None, "rate_mbit": float(rate), "cpu_percent": float(cpu), "seed": int(seed),
           "minutes": float(minutes), "planners": summary}, open(os.path.join(d, "summary.json"), "w"), indent=1)
PY

# Only now the outputs: the folder staged beside it and renamed into place, the figure likewise.
mkdir -p "$(dirname "$out")"
stage=$(mktemp -d "$(dirname "$out")/.$(basename "$out").XXXXXX")
cp -a "$work/result/." "$stage/"
chmod 755 "$stage"
for f in "$stage"/*.report.txt; do
    if [ -f "$f" ]; then sed -i "s|$work/result/|$out/|" "$f"; fi
done
if [ -n "$png" ]; then
    if [ -f "$work/result/valve-leak-iop.png" ]; then
        mkdir -p "$(dirname "$png")"
        cp "$work/result/valve-leak-iop.png" "$stage.png"
        mv "$stage.png" "$png"
    else
        echo "emulated.sh: no iop run, so $png is left as it was" >&2
    fi
fi
old=$stage.old
if [ -e "$out" ]; then mv "$out" "$old"; fi
mv "$stage" "$out"
stage=""
rm -rf "$old"
cat "$out/table.txt"
for p in ${planners//,/ }; do
    if [ -f "$out/$p.report.txt" ]; then cat "$out/$p.report.txt"; fi
done
[ -z "$png" ] || [ ! -f "$out/valve-leak-iop.png" ] || echo "figure: $png" >&2
echo "$out"
if ls "$out"/*.failed >/dev/null 2>&1; then die "a plan that compiled did not stream to the end (see above)"; fi
