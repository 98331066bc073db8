#!/usr/bin/env bash
# Measured, not modelled: the planners' plans run on boards emulated on this
# machine, beside the cost model's figure for each.
#
#   sudo Benchmarks/emulated_boards.sh [--model vgg11] [--input-size S] [--planners coedge,iop,optimal]
#                                      [--requests 5] [--rate-mbit 100] [--cpu-percent 8] [--boards 4] [--budget 512MiB]
#
# Each board is a network namespace (iop-b0 is the leader) with an address from
# 198.18.0.0/15 on a bridge; every link is shaped to --rate-mbit with a token
# bucket (tc tbf) at both ends. Each board's processes are held to
# --cpu-percent of one core (cgroup v1 cpu quota, 25 ms period) and to its budget plus 64 MiB
# (memory cgroup, as `iop deploy`'s MemoryMax=). The boards' speed is measured
# (`iop bench` inside the quota) and written into the cluster file, so the plan
# models the boards it runs on. Needs root and `swift build -c release`.
set -euo pipefail
cd "$(dirname "$0")/.."

model=vgg11 size="" planners=coedge,iop,optimal requests=5 rate=100 cpu=8 boards=4 budget=512MiB
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
        -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "emulated_boards: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done
[ "$cpu" -ge 4 ] && [ "$cpu" -le 100 ] || { echo "emulated_boards: --cpu-percent must be 4..100, got $cpu" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "emulated_boards: needs root (network namespaces, tc, cgroups)" >&2; exit 2; }
bin=$PWD/.build/release
[ -x "$bin/iop" ] && [ -x "$bin/iop-node" ] || { echo "emulated_boards: build first: swift build -c release" >&2; exit 2; }
sizeargs=(); [ -n "$size" ] && sizeargs=(--input-size "$size")
work=$(mktemp -d /tmp/iop-emulated-XXXXXX)
budget_bytes=$(python3 -c "
import re,sys; m=re.fullmatch(r'([0-9.]+)\s*(B|KB|MB|GB|KiB|MiB|GiB)?','$budget')
if not m: sys.exit('emulated_boards: --budget must be a size like 512MiB, got $budget')
u={'B':1,'KB':1e3,'MB':1e6,'GB':1e9,'KiB':1024,'MiB':1<<20,'GiB':1<<30}[m.group(2) or 'B']; print(int(float(m.group(1))*u))")

# The namespaces, links and cgroups: Benchmarks/emulated_net.sh (shared with examples/valve-leak/emulated.sh).
EMU_PREFIX=iop EMU_BOARDS=$boards
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

emu_setup "$rate" "$cpu" $((budget_bytes + (64 << 20)))

# Runs a command on board $1: its namespace, its cpu and memory cgroups.
on_board() { emu_on_board "$@"; }

echo "measuring one emulated board ($cpu % of a core)..." >&2
# Board 0's cpu quota only: the single-board engine holds the whole model, more than a board's budget.
gflops=$(emu_on_board_cpu 0 "$bin/iop" bench --model "$model" "${sizeargs[@]}" --runs 3 --warmup 1 --json | python3 -c "import json,sys; print(json.load(sys.stdin)['gflops'])")
python3 - "$work/cluster.json" "$boards" "$gflops" "$budget" "$rate" <<'PY'
import json, sys
path, n, gflops, budget, rate = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], float(sys.argv[5])
devices = [{"name": f"b{i}", "endpoint": f"tcp://198.18.0.{i + 1}:5555", "gflops": round(gflops, 3), "memory": budget,
            "bandwidth_mbps": rate, "setup_ms": 1, "threads": 1} for i in range(n)]
json.dump({"leader": "b0", "devices": devices}, open(path, "w"), indent=2)
PY
"$bin/iop" models --json | python3 -c "
import json, sys
import numpy as np
shape = [m for m in json.load(sys.stdin) if m['model'] == '$model'][0]['input_shape']
if '$size': shape[-2:] = [int('$size')] * 2
np.save('$work/x.npy', np.random.default_rng(1).uniform(-1, 1, shape).astype(np.float32))"

echo "boards: $boards x $gflops GFLOP/s ($cpu % of a core), ${rate} Mbit/s links, budget $budget" >&2
printf "%-8s %12s %12s %12s  %s\n" planner modelled p50 p90 "arenas (MiB)"
for planner in ${planners//,/ }; do
    out=$work/$planner
    if ! "$bin/iop" compile --model "$model" "${sizeargs[@]}" --cluster "$work/cluster.json" --planner "$planner" --out "$out" >/dev/null 2>"$work/$planner.err"; then
        printf "%-8s %s\n" "$planner" "does not fit: $(tail -1 "$work/$planner.err")"
        continue
    fi
    modelled=$(python3 -c "import json; print(json.load(open('$out/manifest.json'))['modeled_latency_ms'])")
    on_board 0 "$bin/iop-node" leader --bundle "$out" --listen tcp://198.18.0.1:5555 --requests tcp://198.18.0.1:5600 \
        --timeout-ms 600000 > "$work/$planner.leader.out" 2> "$work/$planner.leader.err" &
    pids+=($!); leader=$!
    for i in $(seq 1 $((boards - 1))); do
        on_board "$i" "$bin/iop-node" worker --name "b$i" --listen "tcp://198.18.0.$((i + 1)):5555" --leader tcp://198.18.0.1:5555 \
            --memory-budget "$budget" 2> "$work/$planner.b$i.err" &
        pids+=($!)
    done
    for _ in $(seq 1 1200); do grep -q '^ready ' "$work/$planner.leader.out" && break; kill -0 "$leader" 2>/dev/null || break; sleep 0.5; done
    grep -q '^ready ' "$work/$planner.leader.out" || { echo "emulated_boards: $planner: the leader did not become ready: $(tail -2 "$work/$planner.leader.err")" >&2; exit 1; }
    result=$(ip netns exec iop-b0 "$bin/iop" request --leader tcp://198.18.0.1:5600 --reply 'tcp://198.18.0.1:*' \
        --input "$work/x.npy" --repeat "$requests" --json)
    stats=$(ip netns exec iop-b0 "$bin/iop" request --leader tcp://198.18.0.1:5600 --reply 'tcp://198.18.0.1:*' --stats --json)
    kill -TERM "$leader"; wait "$leader" || true
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    pids=()
    arenas=$(python3 -c "
import json; s=json.loads('''$stats''')
print(' '.join(f'{b[\"arena_bytes\"]/(1<<20):.1f}' for b in s['boards']))")
    python3 -c "
import json; r=json.loads('''$result''')
print(f\"{'$planner':8} {float('$modelled'):9.1f} ms {r['p50_ms']:9.1f} ms {r['p90_ms']:9.1f} ms  $arenas\")"
done
