#!/usr/bin/env python3
"""Memory of a node (goal: micronode ≤ 64 MiB): RSS with L loaded and under steady load,
plus heap allocations per compute from the `allocs` bench.

Phases, on one fresh node (TENANT_RPS_MAX lifted; other knobs at their defaults unless --env):
  idle      after /readyz
  loaded    after PUT of the L inputs and policy
  repeat    --seconds of back-to-back computes of the SAME L run (memo hit, re-signed and
            re-rendered answer each time): the steady state of a node serving one epoch
  distinct  --distinct computes of L, each a DISTINCT run (its own policy): every run is
            computed and kept in the run store (bounded by RUNS_MAX), so RSS grows per run
            until the store is full; the slope (MiB per stored run) and the projection at
            RUNS_MAX are reported
RSS is VmRSS / VmHWM of /proc/PID/status. The micronode keeps its documents and artifacts in
an amnesia directory on tmpfs (/dev/shm): that memory is not in the process's RSS but is RAM
all the same, so its size is reported too (tmpfs_mb).

Usage: memory.py [--exe rewarder-micronode] [--seconds 15] [--distinct 40] [--env K=V]
                 [--no-allocs] [--out testing/performance/baselines/memory.json]
"""

import argparse
import datetime
import glob
import http.client
import json
import os
import re
import statistics
import subprocess
import tempfile
import time

import common

GOAL_MIB = 64


def status_mib(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"):
                out[key] = round(int(rest.split()[0]) / 1024, 1)
    return out


def tmpfs_mib(pid):
    total = 0
    for d in glob.glob(f"/dev/shm/rewarder-{pid}-*"):
        for root, _, files in os.walk(d):
            for name in files:
                try:
                    total += os.path.getsize(os.path.join(root, name))
                except OSError:
                    pass
    return round(total / 1048576, 1)


def put_policy(conn, doc):
    status, body = common.request(conn, "PUT", "/rewarder/policies", json.dumps(doc).encode())
    assert status in (200, 201), (status, body[:300])
    p = json.loads(body)
    return p["policy_id"], p["policy_hash"]


def compute(conn, epoch, cid, pid, phash):
    body = json.dumps({"inputs_cid": cid, "policy_id": pid, "policy_hash": phash, "dry_run": True})
    status, resp = common.request(conn, "POST", f"/rewarder/epochs/{epoch}/compute", body)
    assert status == 200, (status, resp[:300])


def allocs_table():
    """Runs the allocs bench and returns its rows {scale: {...}}."""
    out = subprocess.run(
        ["cargo", "bench", "--locked", "-q", "-p", "rewarder-benches", "--bench", "allocs"],
        cwd=common.ROOT, check=True, capture_output=True, text=True,
    ).stdout
    rows = {}
    for line in out.splitlines():
        m = re.match(r"^(S|M|L)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*$", line)
        if m:
            rows[m.group(1)] = {
                "actors": int(m.group(2)), "events": int(m.group(3)), "parse_allocs": int(m.group(4)),
                "compute_allocs": int(m.group(5)), "compute_bytes": int(m.group(6)),
            }
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--exe", default="rewarder-micronode")
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--distinct", type=int, default=40)
    ap.add_argument("--env", action="append", default=[], help="KEY=VALUE for the node")
    ap.add_argument("--no-allocs", action="store_true")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "baselines", "memory.json"))
    a = ap.parse_args()
    env = {"TENANT_RPS_MAX": "1000000", **dict(kv.split("=", 1) for kv in a.env)}
    runs_max = int(env.get("RUNS_MAX", "1024"))
    result = {"exe": a.exe, "env": env, "goal_mib": GOAL_MIB, "loadavg_before": [round(x, 2) for x in os.getloadavg()]}
    with common.Node(a.exe, env=env) as node, tempfile.TemporaryDirectory() as tmp:
        pid = node.proc.pid
        conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=300)
        result["idle"] = status_mib(pid)
        epoch = "mem-L"
        inputs, policy = common.generate("L", tmp, epoch=epoch)
        result["l_inputs_bytes"] = len(inputs)
        cid, pid_, phash = common.upload(conn, inputs, policy)
        result["loaded"] = {**status_mib(pid), "tmpfs_mb": tmpfs_mib(pid)}

        # repeat: the same run, back to back, for --seconds.
        samples, n, t_end = [], 0, time.monotonic() + a.seconds
        while time.monotonic() < t_end:
            compute(conn, epoch, cid, pid_, phash)
            n += 1
            samples.append(status_mib(pid)["VmRSS"])
        half = samples[len(samples) // 2:]
        result["repeat"] = {
            "computes": n, "seconds": a.seconds, "rss_steady_mb": round(statistics.median(half), 1),
            "rss_max_sample_mb": max(samples), **status_mib(pid), "tmpfs_mb": tmpfs_mib(pid),
        }

        # distinct: every compute a new run, kept in the run store.
        base = json.loads(policy)
        rss = []
        for i in range(a.distinct):
            p, h = put_policy(conn, dict(base, policy_id=f"mem-{i}"))
            compute(conn, epoch, cid, p, h)
            rss.append(status_mib(pid)["VmRSS"])
        # Least-squares slope of RSS over the stored runs (second half: past allocator warm-up).
        xs = list(range(len(rss)))[len(rss) // 2:]
        ys = rss[len(rss) // 2:]
        mx, my = statistics.mean(xs), statistics.mean(ys)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / max(1e-9, sum((x - mx) ** 2 for x in xs))
        final = status_mib(pid)
        result["distinct"] = {
            "runs": a.distinct, **final, "tmpfs_mb": tmpfs_mib(pid),
            "rss_per_stored_run_mb": round(slope, 3),
            "runs_max": runs_max,
            "projected_rss_at_runs_max_mb": round(final["VmRSS"] + slope * max(0, runs_max - a.distinct), 1),
        }
    if not a.no_allocs:
        result["allocs_per_op"] = allocs_table()
    result["timestamp"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    result["command"] = "testing/performance/memory.py " + " ".join(
        [f"--seconds {a.seconds:g}", f"--distinct {a.distinct}"] + [f"--env {kv}" for kv in a.env])
    print(json.dumps(result, indent=2))
    if a.out:
        os.makedirs(os.path.dirname(a.out), exist_ok=True)
        with open(a.out, "w") as f:
            json.dump(result, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
