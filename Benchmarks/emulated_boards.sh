#!/usr/bin/env bash
# Measured, not modelled: the planners' plans run on boards emulated on this
# machine, beside the cost model's figure for each.
#
#   sudo Benchmarks/emulated_boards.sh [--model vgg11] [--input-size S] [--planners coedge,iop,optimal]
#        [--requests 5] [--rate-mbit 100|R0,R1,...] [--cpu-percent 8|P0,P1,...] [--boards 4]
#        [--budget 512MiB] [--cost-model calibrated|nominal] [--calibrate PLANNER] [--wire fp32|fp16|auto]
#        [--rounds 1] [--keep DIR] [--json]
#
# Each board is a network namespace (iop-b0 is the leader) with an address from
# 198.18.0.0/15 on a bridge; each board's link is shaped to its --rate-mbit with
# a token bucket (tc tbf) at both ends. Each board's processes are held to its
# --cpu-percent of one core (cgroup v1 cpu quota, 25 ms period) and to the budget
# plus 64 MiB (memory cgroup, as `iop deploy`'s MemoryMax=). --rate-mbit and
# --cpu-percent take one value for every board or one per board (board 0 first).
# With --cost-model calibrated (the default) every board is profiled inside its
# own quota and namespace, all at once (`iop-node profile`), the leader probes each worker's
# link (`iop-node probe`), and `iop profile --from` writes both into the cluster
# file the plans are made for. With nominal the cluster file has no profile: each
# board's GFLOP/s is `iop bench` of the whole model under its quota (as before
# profiles existed). --calibrate PLANNER first runs PLANNER's plan as a trial: the nodes count their own
# CPU per inference, and `iop profile --calibrate` scales each board's profile by measured over modelled
# before every planner plans. --keep DIR keeps the cluster file, profiles and bundles.
# --wire is passed to `iop compile` (fp32 by default: activations as fp16 on the wire, or auto).
# --rounds N runs the planners' plans N times in turn (coedge, iop, optimal, coedge, ...), each plan compiled
# once: this VM's speed drifts by 10-20 % over minutes, and in turn every planner meets the same drift. Each
# measured figure is then the median over the rounds (p50_ms, p90_ms, each board's CPU, each segment's phases),
# and round_p50_ms lists the rounds' own p50s.
# --json prints one object: {model, boards, cpu_percent, rate_mbit, cost_model, wire,
# planners: [{planner, modelled_ms, p50_ms, p90_ms, arena_bytes: [...], bytes_per_inference, request_ms,
# boards: [{cpu_ms, modelled_cpu_ms, reported_cpu_ms, throttled, throttled_ms}], segments: [{modelled_ms, measured_ms, scatter_ms, own_ms,
# gather_ms, reduce_ms, modelled: {scatter_ms, own_ms, gather_ms, reduce_ms}}]}]}: per request, each board's
# CPU time beside the model's and the board's own count, and its quota stalls (board 0 first); with
# --calibrate also calibration: {planner, trial: {the trial's row}, cpu_scale: [per board]} and per planner
# uncalibrated_ms (`iop plan` on the profiles without the scales) and uncalibrated_same_plan;
# and each segment's modelled time and phases beside the leader's own clock of them, to see where the model is off.
# Needs root and `swift build -c release`.
set -euo pipefail
cd "$(dirname "$0")/.."

model=vgg11 size="" planners=coedge,iop,optimal requests=5 rate=100 cpu=8 boards=4 budget=512MiB
costmodel=calibrated keep="" json=0 wire=fp32 calibrate="" rounds=1
while [ $# -gt 0 ]; do
    case "$1" in
        --model) model=$2; shift 2 ;;
        --input-size) size=$2; shift 2 ;;
        --planners) planners=$2; shift 2 ;;
        --requests) requests=$2; shift 2 ;;
        --rate-mbit) rate=$2; shift 2 ;;
        --cpu-percent) cpu=$2; shift 2 ;;
        --boards) boards=$2; shift 2 ;;
        --budget) budget=$2; shift 2 ;;
        --cost-model) costmodel=$2; shift 2 ;;
        --wire) wire=$2; shift 2 ;;
        --calibrate) calibrate=$2; shift 2 ;;
        --keep) keep=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        --json) json=1; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "emulated_boards: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done
fail() { echo "emulated_boards: $*" >&2; exit 2; }
# One value per board from "V" or "V0,V1,...".
per_board() {  # name value
    local name=$1 values
    IFS=, read -r -a values <<< "$2"
    if [ "${#values[@]}" = 1 ]; then
        for _ in $(seq 1 "$boards"); do printf '%s\n' "${values[0]}"; done
    elif [ "${#values[@]}" = "$boards" ]; then
        printf '%s\n' "${values[@]}"
    else
        fail "--$name takes one value or $boards (one per board), got '$2'"
    fi
}
mapfile -t cpus < <(per_board cpu-percent "$cpu")
mapfile -t rates < <(per_board rate-mbit "$rate")
for c in "${cpus[@]}"; do
    [[ "$c" =~ ^[0-9]+$ ]] && [ "$c" -ge 4 ] && [ "$c" -le 100 ] || fail "--cpu-percent values must be 4..100, got '$c'"
done
for r in "${rates[@]}"; do
    [[ "$r" =~ ^[0-9]+$ ]] && [ "$r" -ge 1 ] || fail "--rate-mbit values must be whole Mbit/s >= 1, got '$r'"
done
[ "$costmodel" = calibrated ] || [ "$costmodel" = nominal ] ||
    fail "--cost-model must be calibrated or nominal, got '$costmodel'"
[ -z "$calibrate" ] || [ "$costmodel" = calibrated ] || fail "--calibrate needs the calibrated cost model (profiles)"
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || fail "--rounds must be a whole number >= 1, got '$rounds'"
[ "$wire" = fp32 ] || [ "$wire" = fp16 ] || [ "$wire" = auto ] || fail "--wire must be fp32, fp16 or auto, got '$wire'"
[ "$(id -u)" = 0 ] || fail "needs root (network namespaces, tc, cgroups)"
bin=${IOP_BIN:-$PWD/.build/release}  # IOP_BIN=DIR: binaries copied aside, so a rebuild cannot swap them mid-run
[ -x "$bin/iop" ] && [ -x "$bin/iop-node" ] || fail "build first: swift build -c release"
sizeargs=(); [ -n "$size" ] && sizeargs=(--input-size "$size")
work=${keep:-$(mktemp -d /tmp/iop-emulated-XXXXXX)}
mkdir -p "$work/profiles"
budget_bytes=$(python3 -c "
import re,sys; m=re.fullmatch(r'([0-9.]+)\s*(B|KB|MB|GB|KiB|MiB|GiB)?','$budget')
if not m: sys.exit('emulated_boards: --budget must be a size like 512MiB, got $budget')
u={'B':1,'KB':1e3,'MB':1e6,'GB':1e9,'KiB':1024,'MiB':1<<20,'GiB':1<<30}[m.group(2) or 'B']; print(int(float(m.group(1))*u))")

# The namespaces, links and cgroups: Benchmarks/emulated_net.sh (shared with examples/valve-leak/emulated.sh).
EMU_PREFIX=${EMU_PREFIX:-iop} EMU_BOARDS=$boards  # EMU_PREFIX=x: namespaces x-b0..., beside another run
. Benchmarks/emulated_net.sh
emu_check || exit 2

pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    emu_cleanup
}
trap cleanup EXIT
trap "exit 130" INT TERM
cleanup

emu_setup "${rates[0]}" "${cpus[0]}" $((budget_bytes + (64 << 20)))
for i in $(seq 0 $((boards - 1))); do emu_set_cpu "$i" "${cpus[i]}"; emu_set_rate "$i" "${rates[i]}"; done

# Each board's CPU so far, one line per board: "ms_on_cpu times_throttled ms_throttled" (its process's
# threads from /proc/PID/task/*/schedstat; the quota's counters from its cgroup's cpu.stat). $@: the pids, board order.
board_cpu() {
    local i=0 p
    for p in "$@"; do
        python3 -c "
import glob, sys
on = sum(int(open(f).read().split()[0]) for f in glob.glob('/proc/$p/task/*/schedstat'))
st = dict(l.split() for l in open('/sys/fs/cgroup/cpu/$EMU_PREFIX-b$i/cpu.stat'))
print(on / 1e6, st['nr_throttled'], int(st['throttled_time']) / 1e6)"
        i=$((i + 1))
    done
}

# Runs a command on board $1: its namespace, its cpu and memory cgroups.
on_board() { emu_on_board "$@"; }

gflops=()
if [ "$costmodel" = nominal ]; then
    # Board i's cpu quota only: the single-board engine holds the whole model, more than a board's budget.
    for i in $(seq 0 $((boards - 1))); do
        echo "measuring board $i's speed (${cpus[i]} % of a core): iop bench..." >&2
        gflops+=("$( (emu_on_board_cpu "$i" "$bin/iop" bench --model "$model" "${sizeargs[@]}" --runs 3 --warmup 1 \
            --json) | python3 -c "import json,sys; print(json.load(sys.stdin)['gflops'])")")
    done
else
    # Every board at once, as they will run: on this one machine the boards share its caches and memory bus,
    # and a board profiled alone times its kernels as no board runs them here.
    for i in $(seq 0 $((boards - 1))); do
        echo "profiling board $i (${cpus[i]} % of a core): iop-node profile..." >&2
        (on_board "$i" "$bin/iop-node" profile) > "$work/profiles/b$i.json" 2> "$work/profiles/b$i.err" &
        pids+=($!)
    done
    for i in $(seq 0 $((boards - 1))); do
        wait "${pids[i]}" || fail "board $i's profile failed: $(tail -1 "$work/profiles/b$i.err")"
        gflops+=("$(python3 -c "import json; print(json.load(open('$work/profiles/b$i.json'))['kernels']['conv_3x3']['giga_per_s'])")")
    done
    pids=()
    for i in $(seq 1 $((boards - 1))); do
        echo "probing the link b0 - b$i (${rates[0]} / ${rates[i]} Mbit/s): iop-node probe..." >&2
        on_board "$i" "$bin/iop-node" probe --serve --listen "tcp://198.18.0.$((i + 1)):5700" --once \
            2> "$work/profiles/b$i.serve.err" &
        pids+=($!); server=$!
        sleep 0.3
        (on_board 0 "$bin/iop-node" probe --connect "tcp://198.18.0.$((i + 1)):5700" --listen 'tcp://198.18.0.1:*' \
            --sizes 1024,65536,1048576 --burst-bytes 2097152) > "$work/profiles/b$i.probe.json"
        wait "$server" || true
        pids=()
    done
fi
python3 - "$work/cluster.json" "$budget" "${gflops[*]}" "${rates[*]}" <<'PY'
import json, sys
path, budget = sys.argv[1], sys.argv[2]
gflops, rates = [float(g) for g in sys.argv[3].split()], [float(r) for r in sys.argv[4].split()]
devices = [{"name": f"b{i}", "endpoint": f"tcp://198.18.0.{i + 1}:5555", "gflops": round(g, 3), "memory": budget,
            "bandwidth_mbps": r, "setup_ms": 1, "threads": 1} for i, (g, r) in enumerate(zip(gflops, rates))]
json.dump({"leader": "b0", "devices": devices}, open(path, "w"), indent=2)
PY
if [ "$costmodel" = calibrated ]; then
    "$bin/iop" profile --cluster "$work/cluster.json" --from "$work/profiles" >&2
fi
"$bin/iop" models --json | python3 -c "
import json, sys
import numpy as np
shape = [m for m in json.load(sys.stdin) if m['model'] == '$model'][0]['input_shape']
if '$size': shape[-2:] = [int('$size')] * 2
np.save('$work/x.npy', np.random.default_rng(1).uniform(-1, 1, shape).astype(np.float32))"

echo "boards: $boards, cpu ${cpus[*]} % of a core, links ${rates[*]} Mbit/s, budget $budget, $costmodel model," \
    "$wire on the wire" >&2
# Compiles PLANNER's plan (unless $work/NAME holds it from an earlier round), runs it on the boards and appends
# its row to RESULTS (JSON lines); its files go to $work/NAME. $1: planner, $2: NAME, $3: RESULTS.
run_plan() {
    local planner=$1 out=$work/$2 results=$3 modelled leader result before stats cpu_before cpu_after
    if [ -f "$out/manifest.json" ]; then
        :
    elif ! "$bin/iop" compile --model "$model" "${sizeargs[@]}" --cluster "$work/cluster.json" --planner "$planner" \
        --wire "$wire" --out "$out" --no-fallbacks >/dev/null 2>"$out.err"; then
        [ "$json" = 1 ] || printf "%-8s %s\n" "$planner" "does not fit: $(tail -1 "$out.err")"
        echo "{\"planner\": \"$planner\", \"error\": $(tail -1 "$out.err" | python3 -c 'import json,sys; print(json.dumps(sys.stdin.read().strip()))')}" >> "$results"
        return
    fi
    modelled=$(python3 -c "import json; print(json.load(open('$out/manifest.json'))['modeled_latency_ms'])")
    # With --calibrate, the same planner on the profiles alone, to see what the trial's scales changed.
    uncalibrated='{}'
    if [ -f "$work/cluster.uncalibrated.json" ]; then
        uncalibrated=$("$bin/iop" plan --model "$model" "${sizeargs[@]}" --cluster "$work/cluster.uncalibrated.json" \
            --planner "$planner" --wire "$wire" --json 2>/dev/null || echo '{}')
    fi
    # Plain links: the probe measures plain ZeroMQ messages, and CURVE's CPU per byte is not in the profile yet.
    # Heartbeats every second: a board at 8 % of a core answers a ping only once it has taken in the megabytes of
    # weight shards queued ahead of it, and at the default 250 ms (dropped after 750) its link dropped while loading.
    on_board 0 "$bin/iop-node" leader --bundle "$out" --listen tcp://198.18.0.1:5555 --requests tcp://198.18.0.1:5600 \
        --timeout-ms 600000 --heartbeat-ms 1000 --insecure > "$out.leader.out" 2> "$out.leader.err" &
    pids+=($!); leader=$!
    for i in $(seq 1 $((boards - 1))); do
        on_board "$i" "$bin/iop-node" worker --name "b$i" --listen "tcp://198.18.0.$((i + 1)):5555" --leader tcp://198.18.0.1:5555 \
            --memory-budget "$budget" --timeout-ms 600000 --heartbeat-ms 1000 --insecure 2> "$out.b$i.err" &
        pids+=($!)
    done
    for _ in $(seq 1 1200); do grep -q '^ready ' "$out.leader.out" && break; kill -0 "$leader" 2>/dev/null || break; sleep 0.5; done
    grep -q '^ready ' "$out.leader.out" || { echo "emulated_boards: $planner: the leader did not become ready: $(tail -2 "$out.leader.err")" >&2; exit 1; }
    # One request first: its page faults and first connections are not what the plan costs.
    ip netns exec "$EMU_PREFIX-b0" "$bin/iop" request --leader tcp://198.18.0.1:5600 --reply 'tcp://198.18.0.1:*' \
        --insecure --input "$work/x.npy" --json > /dev/null
    cpu_before=$(board_cpu "${pids[@]}")
    before=$(ip netns exec "$EMU_PREFIX-b0" "$bin/iop" request --leader tcp://198.18.0.1:5600 --reply 'tcp://198.18.0.1:*' \
        --insecure --stats --json)
    result=$(ip netns exec "$EMU_PREFIX-b0" "$bin/iop" request --leader tcp://198.18.0.1:5600 --reply 'tcp://198.18.0.1:*' \
        --insecure --input "$work/x.npy" --repeat "$requests" --json)
    cpu_after=$(board_cpu "${pids[@]}")
    stats=$(ip netns exec "$EMU_PREFIX-b0" "$bin/iop" request --leader tcp://198.18.0.1:5600 --reply 'tcp://198.18.0.1:*' --insecure \
        --stats --json)
    printf '%s\n' "$stats" > "$out.stats.json"
    kill -TERM "$leader"; wait "$leader" || true
    # A worker whose leader has gone keeps waiting for it to come back (boards reboot), and the leader's
    # goodbye can miss a worker: give them a moment, then stop them.
    for p in "${pids[@]}"; do timeout 10 tail --pid="$p" -f /dev/null 2>/dev/null || kill -TERM "$p" 2>/dev/null; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    pids=()
    python3 -c "
import json; r=json.loads('''$result'''); s=json.loads('''$stats''')
b=json.loads('''$before'''); m=json.load(open('$out/manifest.json')); u=json.loads('''$uncalibrated''')
c0=[[float(x) for x in l.split()] for l in '''$cpu_before'''.splitlines()]
c1=[[float(x) for x in l.split()] for l in '''$cpu_after'''.splitlines()]
# What each board spent per request over the measured ones (the --stats request between is negligible), and
# what the board counted itself and reported to the leader over the same requests (iop request --stats).
modelled=[b.get('cpu_ms_per_inference') for b in m['boards']]
reported=[b.get('cpu_ms_per_inference') for b in s['boards']]
cpu=[{'cpu_ms': round((y[0] - x[0]) / $requests, 2), 'modelled_cpu_ms': None if mc is None else round(mc, 2),
      'reported_cpu_ms': rc, 'throttled': round((y[1] - x[1]) / $requests, 2),
      'throttled_ms': round((y[2] - x[2]) / $requests, 2)}
     for x, y, mc, rc in zip(c0, c1, modelled, reported)]
# The requests' share of each segment: the counters after them minus those after the warm-up request.
n=max(1, s['plan_inferences'] - b['plan_inferences'])
def mean(k, key): return round((s['segments'][k][key] * s['plan_inferences'] - b['segments'][k][key] * b['plan_inferences']) / n, 3)
same=len(m['segment_ms']) == len(s['segments']); phases=m.get('segment_phases_ms', [])
segments=[{'modelled_ms': m['segment_ms'][k] if same else None, 'measured_ms': mean(k, 'total_ms'),
           **{key: mean(k, key) for key in ('scatter_ms', 'own_ms', 'gather_ms', 'reduce_ms')},
           'modelled': phases[k] if same and len(phases) == len(s['segments']) else None}
          for k in range(len(s['segments']))]
print(json.dumps({'planner': '$planner', 'modelled_ms': round(float('$modelled'), 2), 'p50_ms': round(r['p50_ms'], 2),
                  'p90_ms': round(r['p90_ms'], 2), 'arena_bytes': [b['arena_bytes'] for b in s['boards']],
                  'bytes_per_inference': sum(b['bytes_sent'] for b in s['boards']) // max(1, s['inferences']),
                  'request_ms': m['request_ms'], 'boards': cpu, 'segments': segments,
                  **({'uncalibrated_ms': round(u['modeled_latency_ms'], 2),
                      'uncalibrated_same_plan': [d['peak_memory_bytes'] for d in u['devices']]
                                                == [b['arena_bytes'] for b in s['boards']]} if u else {})}))" \
        >> "$results"
    [ "$json" = 1 ] || python3 -c "
import json; r=json.loads(open('$results').read().splitlines()[-1])
arenas=' '.join(f'{b/(1<<20):.1f}' for b in r['arena_bytes'])
print(f\"{r['planner']:8} {r['modelled_ms']:9.1f} ms {r['p50_ms']:9.1f} ms {r['p90_ms']:9.1f} ms  {arenas}\")"
}

if [ -n "$calibrate" ]; then
    # A trial run of one plan: each board's CPU per inference as the nodes counted it, against the model's.
    echo "trial run of the $calibrate plan, to calibrate each board's CPU..." >&2
    cp "$work/cluster.json" "$work/cluster.uncalibrated.json"
    rm -rf "${work:?}/trial-$calibrate"
    : > "$work/trial.jsonl"
    json_was=$json; json=1
    run_plan "$calibrate" "trial-$calibrate" "$work/trial.jsonl"
    json=$json_was
    [ -s "$work/trial-$calibrate.stats.json" ] || fail "the trial of $calibrate did not run: $(tail -1 "$work/trial-$calibrate.err")"
    "$bin/iop" profile --cluster "$work/cluster.json" --calibrate "$work/trial-$calibrate" \
        --stats "$work/trial-$calibrate.stats.json" >&2
fi
[ "$json" = 1 ] || printf "%-8s %12s %12s %12s  %s\n" planner modelled p50 p90 "arenas (MiB)"
: > "$work/results.jsonl"
for planner in ${planners//,/ }; do rm -rf "${work:?}/$planner"; done  # an earlier run's, in the same --keep DIR
for round in $(seq 1 "$rounds"); do
    [ "$rounds" = 1 ] || echo "round $round of $rounds" >&2
    for planner in ${planners//,/ }; do run_plan "$planner" "$planner" "$work/results.jsonl"; done
done
if [ "$json" = 1 ]; then
    cpu_list=$(IFS=,; echo "${cpus[*]}") rate_list=$(IFS=,; echo "${rates[*]}")
    python3 - "$work/results.jsonl" > "$work/planners.json" <<'PY'
import json, statistics, sys
# One row per planner: its rounds' measured figures, median by median; what the plan and the model say is the
# same in every round (one bundle).
rows = [json.loads(l) for l in open(sys.argv[1])]
def median(values):
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 3) if values else None
out = []
for name in dict.fromkeys(r["planner"] for r in rows):
    runs = [r for r in rows if r["planner"] == name]
    row = dict(runs[0])
    if "p50_ms" in row and len(runs) > 1:
        row["round_p50_ms"] = [r["p50_ms"] for r in runs]
        for key in ("p50_ms", "p90_ms"):
            row[key] = median([r[key] for r in runs])
        row["boards"] = [dict(b, **{k: median([r["boards"][i][k] for r in runs])
                                    for k in ("cpu_ms", "reported_cpu_ms", "throttled", "throttled_ms")})
                         for i, b in enumerate(row["boards"])]
        row["segments"] = [dict(g, **{k: median([r["segments"][i][k] for r in runs])
                                      for k in ("measured_ms", "scatter_ms", "own_ms", "gather_ms", "reduce_ms")})
                           for i, g in enumerate(row["segments"])]
    out.append(row)
json.dump(out, sys.stdout)
PY
    python3 -c "
import json
planners = json.load(open('$work/planners.json'))
out = {'model': '$model', 'boards': $boards, 'cpu_percent': [$cpu_list], 'rate_mbit': [$rate_list],
       'cost_model': '$costmodel', 'wire': '$wire', 'requests': $requests, 'planners': planners}
if '$calibrate':
    devices = json.load(open('$work/cluster.json'))['devices']
    out['calibration'] = {'planner': '$calibrate', 'trial': json.loads(open('$work/trial.jsonl').read()),
                          'cpu_scale': [d['profile'].get('cpu_scale', 1) for d in devices]}
print(json.dumps(out))"
fi
