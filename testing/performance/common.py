"""Helpers shared by the performance scripts: free ports, node processes, HTTP, percentiles.

Every script binds 127.0.0.1 only, bounds its loops in count and time, and stops what it starts.
"""

import http.client
import json
import os
import socket
import subprocess
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))


def binary(name):
    """Path of a release binary of the workspace (built by the caller's script)."""
    path = os.path.join(TARGET, "release", name)
    if not os.path.exists(path):
        raise SystemExit(f"{path} missing: run `cargo build --release -p {name}` first")
    return path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(round(p / 100.0 * len(s) + 0.5)) - 1))]


def summary(values_ms):
    return {
        "n": len(values_ms),
        "median_ms": round(percentile(values_ms, 50), 3),
        "p95_ms": round(percentile(values_ms, 95), 3),
        "p99_ms": round(percentile(values_ms, 99), 3),
        "max_ms": round(max(values_ms), 3),
    }


def generate(scale, out_dir, epoch="demo", seed=0):
    """Writes inputs.json and policy.json of a scale with the testkit; returns their bytes."""
    subprocess.run(
        [binary("rewarder-testkit"), "vectors", "--scale", scale, "--epoch", epoch, "--seed", str(seed), "--out", out_dir],
        check=True,
        stderr=subprocess.DEVNULL,
    )
    with open(os.path.join(out_dir, "inputs.json"), "rb") as f:
        inputs = f.read()
    with open(os.path.join(out_dir, "policy.json"), "rb") as f:
        policy = f.read()
    return inputs, policy


class Stopped:
    """A child process in `self.proc`, terminated (then killed) when the `with` block ends."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def cpu_seconds(pid):
    """CPU time of a process so far (utime + stime of every thread, exited ones included), in s."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def metrics(port):
    """A node's /metrics as {series: value} (series written out with their labels)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            try:
                out[name] = float(value)
            except ValueError:
                pass
    return out


class Node(Stopped):
    """A node process on a free loopback port, stopped (SIGTERM) on exit."""

    def __init__(self, exe="rewarder-micronode", env=None, args=("serve",), wrap=()):
        self.port = free_port()
        full_env = dict(os.environ)
        full_env.update({"BIND_ADDR": f"127.0.0.1:{self.port}", "LOG": "warn"})
        full_env.update(env or {})
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            list(wrap) + [binary(exe)] + list(args), env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_ready(self.port, deadline_s=10)
        self.ready_after_s = time.perf_counter() - self.started



def wait_ready(port, deadline_s):
    """Polls /readyz until 200 (tight loop: cold start is measured in milliseconds)."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < deadline_s:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", "/readyz")
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.0002)
    raise SystemExit(f"node on port {port} not ready within {deadline_s}s")


def request(conn, method, path, body=None, headers=None):
    h = {"Content-Type": "application/json"} if body is not None else {}
    h.update(headers or {})
    conn.request(method, path, body=body, headers=h)
    r = conn.getresponse()
    return r.status, r.read()


def upload(conn, inputs, policy):
    s, b = request(conn, "PUT", "/rewarder/inputs", inputs)
    assert s in (200, 201), (s, b[:300])
    cid = json.loads(b)["inputs_cid"]
    s, b = request(conn, "PUT", "/rewarder/policies", policy)
    assert s in (200, 201), (s, b[:300])
    p = json.loads(b)
    return cid, p["policy_id"], p["policy_hash"]


def write_report(out, what, command, load_before, **figures):
    """Writes a baseline file: what was measured, when, by which command, the figures, and the
    host's CPUs, nice level and load average before and after (figures from a loaded machine
    are read as such)."""
    import datetime
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    doc = {
        "what": what,
        "timestamp": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": command,
        **figures,
        "host": {"cpus": os.cpu_count(), "nice": os.nice(0), "loadavg_before": [round(x, 2) for x in load_before],
                 "loadavg_after": [round(x, 2) for x in os.getloadavg()]},
    }
    with open(out, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
