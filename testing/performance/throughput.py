#!/usr/bin/env python3
"""HTTP throughput and latency of dry-run computes, macronode vs micronode, on loopback.

Two workloads over one stored inputs document (scale M by default), `?allocations=false`:
- distinct: wrk + compute.lua cycling through --policies compute bodies (one policy id each,
  so each body is its own run) with RUNS_MAX below their number: every request is a real
  compute, none a run-memo hit (checked: the node's reward_runs_total{status="cached"} is
  reported);
- same: hey posting one body: after the first request every answer is a run-memo hit (lookup,
  ledger step, fresh signature, serialization), the ceiling of the HTTP path.

- paced: paced.py, open loop at each of --rates (distinct runs as above), for the 1x and 2x
  points with load shedding: latency counted from each request's due time, 2xx and 503 apart.

Each (node, workload, connections or rate) point runs --duration after a short warm-up and prints one
JSON line: throughput, latency percentiles (wrk: every answer; hey: of the 2xx answers and of
all), statuses, cached/ok run counts, the node's CPU seconds. Client and node share this
machine's cores, so figures are conservative.

Usage: throughput.py [--exe rewarder-macronode] [--scale M] [--conns 128,256] [--rates 150,300]
                     [--workload distinct,same,paced] [--duration 20] [--env KEY=VALUE ...]
"""

import argparse
import asyncio
import csv
import io
import json
import os
import subprocess
import tempfile
import time

import common
import paced

HERE = os.path.dirname(os.path.abspath(__file__))
PATH = "/rewarder/epochs/perf/compute?allocations=false"


def prepare(port, scale, policies, tmp):
    conn = __import__("http.client").client.HTTPConnection("127.0.0.1", port, timeout=120)
    inputs, policy = common.generate(scale, tmp, epoch="perf")
    cid, _, _ = common.upload(conn, inputs, policy)
    base = json.loads(policy)
    bodies = []
    for i in range(policies):
        doc = dict(base, policy_id=f"perf-{i}")
        status, b = common.request(conn, "PUT", "/rewarder/policies", json.dumps(doc).encode())
        assert status in (200, 201), (status, b[:300])
        p = json.loads(b)
        bodies.append(json.dumps({"inputs_cid": cid, "policy_id": p["policy_id"], "policy_hash": p["policy_hash"], "dry_run": True}))
    bodies_file = os.path.join(tmp, "bodies.txt")
    with open(bodies_file, "w") as f:
        f.write("\n".join(bodies) + "\n")
    same_file = os.path.join(tmp, "same.json")
    with open(same_file, "w") as f:
        f.write(bodies[0])
    return bodies_file, same_file


def run_wrk(port, conns, seconds, bodies_file, path=PATH, statuses=True):
    """wrk with compute.lua; statuses=False drops the per-status count (and the copy of every
    body into Lua it costs the client), keeping wrk's count of answers outside 2xx/3xx."""
    env = dict(os.environ, BODIES_FILE=bodies_file, WRK_STATUSES="1" if statuses else "0")
    threads = str(min(2, conns))
    out = subprocess.run(
        ["wrk", "-t", threads, "-c", str(conns), "-d", f"{seconds}s", "--timeout", "30s", "-s",
         os.path.join(HERE, "compute.lua"), f"http://127.0.0.1:{port}{path}"],
        env=env, check=True, capture_output=True, text=True,
    ).stdout
    line = next(l for l in out.splitlines() if l.startswith("WRK_JSON "))
    return json.loads(line[len("WRK_JSON "):])


def run_hey(port, conns, seconds, body_file):
    out = subprocess.run(
        ["hey", "-z", f"{seconds}s", "-c", str(conns), "-m", "POST", "-T", "application/json", "-D", body_file,
         "-o", "csv", f"http://127.0.0.1:{port}{PATH}"],
        check=True, capture_output=True, text=True,
    ).stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    by_status = {}
    ok, every = [], []
    end = 0.0
    for r in rows:
        ms = float(r["response-time"]) * 1e3
        status = r["status-code"]
        by_status[status] = by_status.get(status, 0) + 1
        every.append(ms)
        if status.startswith("2"):
            ok.append(ms)
        end = max(end, float(r["offset"]) + float(r["response-time"]))
    seconds = max(end, 1e-9)
    res = {"requests": len(rows), "seconds": round(seconds, 2), "rps": round(len(rows) / seconds, 1),
           "ok_rps": round(len(ok) / seconds, 1), "statuses": by_status}
    if ok:
        s = common.summary(ok)
        res.update({"ok_p50_ms": s["median_ms"], "ok_p95_ms": s["p95_ms"], "ok_p99_ms": s["p99_ms"]})
    if every:
        s = common.summary(every)
        res.update({"all_p50_ms": s["median_ms"], "all_p95_ms": s["p95_ms"], "all_p99_ms": s["p99_ms"]})
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--exe", default="rewarder-macronode")
    ap.add_argument("--scale", default="M")
    ap.add_argument("--conns", default="128,256")
    ap.add_argument("--workload", default="distinct,same")
    ap.add_argument("--rates", default="150,300", help="offered runs/s of the paced workload")
    ap.add_argument("--duration", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--policies", type=int, default=256)
    ap.add_argument("--env", action="append", default=[], help="KEY=VALUE for the node")
    a = ap.parse_args()
    env = {
        # One tenant drives the load: lift its clamp; let every client connection in.
        "TENANT_RPS_MAX": "1000000",
        "CONNECTIONS_MAX": "1024",
        # Below the number of distinct bodies: cycling through them never hits the run memo.
        "RUNS_MAX": "16",
    }
    env.update(dict(kv.split("=", 1) for kv in a.env))
    with tempfile.TemporaryDirectory() as tmp, common.Node(a.exe, env=env) as node:
        bodies_file, same_file = prepare(node.port, a.scale, a.policies, tmp)
        def run_paced(port, rate, seconds, body):
            args = argparse.Namespace(port=port, rate=rate, seconds=seconds, bodies=body, path=PATH, connections=512)
            return asyncio.run(paced.run(args))

        for workload in a.workload.split(","):
            points = [float(r) for r in a.rates.split(",")] if workload == "paced" else [int(c) for c in a.conns.split(",")]
            for conns in points:
                run = {"distinct": run_wrk, "same": run_hey, "paced": run_paced}[workload]
                body = same_file if workload == "same" else bodies_file
                run(node.port, conns, a.warmup, body)
                before, cpu0 = common.metrics(node.port), common.cpu_seconds(node.proc.pid)
                t0 = time.perf_counter()
                res = run(node.port, conns, a.duration, body)
                wall = time.perf_counter() - t0
                after, cpu1 = common.metrics(node.port), common.cpu_seconds(node.proc.pid)
                delta = lambda k: int(after.get(k, 0) - before.get(k, 0))
                res.update({
                    "exe": a.exe, "scale": a.scale, "workload": workload,
                    ("rate" if workload == "paced" else "conns"): conns,
                    "node_env": {k: v for k, v in env.items() if k not in ("TENANT_RPS_MAX",)},
                    "runs_ok": delta('reward_runs_total{status="ok"}'),
                    "runs_cached": delta('reward_runs_total{status="cached"}'),
                    "queue_full": delta('rejected_total{reason="queue_full"}'),
                    "node_cpu_cores": round((cpu1 - cpu0) / wall, 2),
                })
                print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
