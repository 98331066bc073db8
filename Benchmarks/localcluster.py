"""A keyed iop cluster of local processes for the benchmarks: compile, keys, leader and workers on loopback.

    with LocalCluster(".build/release", "lenet5", nodes=4, planner="oc") as c:
        c.request(["--input", "x.npy"]); c.stats(); c.pids()
"""
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time


def status(pid):
    """Peak, anonymous and file-backed resident memory of a process, in bytes (/proc/PID/status)."""
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
                fields[key] = int(value.split()[0]) * 1024
    return fields


def wait_line(proc, prefix, seconds, log):
    deadline = time.time() + seconds
    while time.time() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            line = proc.stdout.readline()
            if line.startswith(prefix):
                return line[len(prefix):].strip()
        if proc.poll() is not None:
            break
    with open(log) as f:
        said = f.read() if proc.poll() is not None else "timed out"
    sys.exit(f"no '{prefix}' line from pid {proc.pid}: {said}")


class LocalCluster:
    """CURVE on, as deployed: its per-message buffers are part of what is measured."""

    def __init__(self, bin_dir, model, nodes, planner, input_size=None, audio=None):
        """With `audio` (a WAV path) the leader streams it in real time instead of serving requests."""
        self.iop, node = os.path.join(bin_dir, "iop"), os.path.join(bin_dir, "iop-node")
        self.dir = tempfile.mkdtemp(prefix="iop-bench-")
        size = ["--input-size", str(input_size)] if input_size else []
        subprocess.run([self.iop, "compile", "--model", model, *size, "--nodes", str(nodes), "--planner", planner,
                        "--out", self.dir, "--no-fallbacks"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run([self.iop, "keys", "--nodes", str(nodes), "--out", f"{self.dir}/keys"], check=True,
                       stdout=subprocess.DEVNULL)
        self.client = ["--keys", f"{self.dir}/keys/operator"]
        # Each node's log goes to a file: an unread stderr pipe would stall a node once it filled.
        self.logs = {f"node{i}": f"{self.dir}/node{i}.log" for i in range(nodes)}

        def pipes(name):
            return dict(stdout=subprocess.PIPE, stderr=open(self.logs[name], "w"), text=True)
        role = ["--audio", audio, "--realtime"] if audio else ["--requests", "tcp://127.0.0.1:*"]
        self.leader = subprocess.Popen([node, "leader", "--bundle", f"{self.dir}/bundle.iop", "--listen",
                                        "tcp://127.0.0.1:*", *role, "--timeout-ms", "60000",
                                        "--keys", f"{self.dir}/keys/node0"], **pipes("node0"))
        endpoint = wait_line(self.leader, "listening ", 60, self.logs["node0"])
        self.workers = [subprocess.Popen([node, "worker", "--name", f"node{i}", "--listen", "tcp://127.0.0.1:*",
                                          "--leader", endpoint, "--memory-budget", "4GiB",
                                          "--keys", f"{self.dir}/keys/node{i}"], **pipes(f"node{i}"))
                        for i in range(1, nodes)]
        self.requests = None if audio else wait_line(self.leader, "ready ", 300, self.logs["node0"])

    def __enter__(self):
        return self

    def __exit__(self, *_):
        if self.leader.poll() is None:
            self.leader.send_signal(signal.SIGTERM)
        self.leader.communicate(timeout=30)
        for w in self.workers:
            w.wait(timeout=30)

    def pids(self):
        return {"node0": self.leader.pid, **{f"node{i}": w.pid for i, w in enumerate(self.workers, 1)}}

    def request(self, args):
        return subprocess.run([self.iop, "request", "--leader", self.requests, *self.client, *args], check=True,
                              capture_output=True, text=True).stdout

    def stats(self):
        return json.loads(self.request(["--stats", "--json"]))
