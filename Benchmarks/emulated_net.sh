# Emulated boards on this machine, sourced by Benchmarks/emulated_boards.sh and
# examples/valve-leak/emulated.sh (one copy of the setup, so both measure the same kind of board).
#
# Board i is the network namespace $EMU_PREFIX-b$i with the address 198.18.0.(i+1)/24 (RFC 2544's
# benchmarking range: nothing here routes anywhere else) on a bridge in the namespace
# $EMU_PREFIX-sw. Every link is shaped to the same rate with a token bucket (tc tbf) at both ends.
# Each board's processes are held to a share of one core (cgroup v1 cpu quota, 25 ms period) and to
# a memory limit (cgroup v1 memory, as `iop deploy`'s MemoryMax=). Needs root.
#
#   EMU_PREFIX=iop EMU_BOARDS=4      # before sourcing, or set after: names and count
#   emu_cleanup                      # namespaces and cgroups gone (safe to call twice; call it in a trap)
#   emu_setup RATE_MBIT CPU_PERCENT MEMORY_LIMIT_BYTES
#   emu_set_memory I BYTES           # one board's memory limit
#   emu_set_cpu I PERCENT            # one board's share of a core (4..100, decimals allowed)
#   emu_set_rate I RATE_MBIT         # one board's link rate (both ends of its veth pair)
#   emu_on_board I CMD...            # exec CMD in board I (namespace, cpu and memory cgroups)
#   emu_on_board_cpu I CMD...        # exec CMD under board I's cpu quota only, in this namespace
# The two emu_on_board* functions exec: call them in the background (&) or in a subshell, so that
# $! is the command's own pid.

EMU_PREFIX=${EMU_PREFIX:-iop}
EMU_BOARDS=${EMU_BOARDS:-4}

emu_check() {
    [ "$(id -u)" = 0 ] || { echo "emulated boards need root (network namespaces, tc, cgroups)" >&2; return 2; }
    local tool
    for tool in ip tc; do
        command -v "$tool" >/dev/null || { echo "emulated boards need '$tool' (Debian: iproute2)" >&2; return 2; }
    done
    [ -d /sys/fs/cgroup/cpu ] && [ -d /sys/fs/cgroup/memory ] ||
        { echo "emulated boards need cgroup v1 cpu and memory hierarchies under /sys/fs/cgroup" >&2; return 2; }
}

emu_cleanup() {
    local i c
    for i in $(seq 0 $((EMU_BOARDS - 1))); do
        ip netns del "$EMU_PREFIX-b$i" 2>/dev/null || true
        for c in cpu memory; do rmdir "/sys/fs/cgroup/$c/$EMU_PREFIX-b$i" 2>/dev/null || true; done
    done
    ip netns del "$EMU_PREFIX-sw" 2>/dev/null || true
}

emu_setup() {
    local rate=$1 cpu=$2 memory=$3 i ns burst
    ip netns add "$EMU_PREFIX-sw"
    ip -n "$EMU_PREFIX-sw" link add br0 type bridge
    ip -n "$EMU_PREFIX-sw" link set br0 up
    for i in $(seq 0 $((EMU_BOARDS - 1))); do
        ns=$EMU_PREFIX-b$i
        ip netns add "$ns"
        # Each veth pair is created here, then both ends moved out: distinct names per prefix, so two
        # sets of boards never clash while one is being made.
        ip link add "${EMU_PREFIX}v$i" type veth peer name "${EMU_PREFIX}s$i"
        ip link set "${EMU_PREFIX}v$i" netns "$ns"
        ip link set "${EMU_PREFIX}s$i" netns "$EMU_PREFIX-sw"
        ip -n "$ns" addr add "198.18.0.$((i + 1))/24" dev "${EMU_PREFIX}v$i"
        ip -n "$ns" link set lo up
        ip -n "$ns" link set "${EMU_PREFIX}v$i" up
        ip -n "$EMU_PREFIX-sw" link set "${EMU_PREFIX}s$i" master br0
        ip -n "$EMU_PREFIX-sw" link set "${EMU_PREFIX}s$i" up
        emu_set_rate "$i" "$rate" add
        mkdir -p "/sys/fs/cgroup/cpu/$ns" "/sys/fs/cgroup/memory/$ns"
        # A 25 ms period: short enough that a step is slowed evenly, not run at full speed and then parked.
        echo 25000 > "/sys/fs/cgroup/cpu/$ns/cpu.cfs_period_us"
        emu_set_cpu "$i" "$cpu"
        emu_set_memory "$i" "$memory"
    done
}

emu_set_rate() {
    local i=$1 rate=$2 verb=${3:-change} burst
    # The bucket holds 10 ms of traffic: a smaller one caps the rate below the link's (one refill per timer tick).
    burst=$((rate * 1250 > 65536 ? rate * 1250 : 65536))
    tc -n "$EMU_PREFIX-b$i" qdisc "$verb" dev "${EMU_PREFIX}v$i" root tbf rate "${rate}mbit" burst "$burst" latency 500ms
    tc -n "$EMU_PREFIX-sw" qdisc "$verb" dev "${EMU_PREFIX}s$i" root tbf rate "${rate}mbit" burst "$burst" latency 500ms
}

emu_set_memory() {
    echo "$2" > "/sys/fs/cgroup/memory/$EMU_PREFIX-b$1/memory.limit_in_bytes"
}

emu_set_cpu() {
    awk -v p="$2" 'BEGIN { printf "%d\n", p * 250 }' > "/sys/fs/cgroup/cpu/$EMU_PREFIX-b$1/cpu.cfs_quota_us"
}

emu_on_board() {
    local ns=$EMU_PREFIX-b$1
    shift
    # exec all the way down, so a background call's $! is the command's own pid.
    exec sh -c 'echo $$ > /sys/fs/cgroup/cpu/'"$ns"'/cgroup.procs; echo $$ > /sys/fs/cgroup/memory/'"$ns"'/cgroup.procs; exec "$@"' \
        _ ip netns exec "$ns" "$@"
}

emu_on_board_cpu() {
    local ns=$EMU_PREFIX-b$1
    shift
    exec sh -c 'echo $$ > /sys/fs/cgroup/cpu/'"$ns"'/cgroup.procs; exec "$@"' _ "$@"
}
