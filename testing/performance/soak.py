#!/usr/bin/env python3
"""Soak: a bounded steady S load on one micronode, watching for leaks and drift.

Distinct runs arrive at a fixed rate (default 50/s): each is a fresh policy id (PUT
/rewarder/policies) and a real compute (POST …/compute, dry run) over the testkit's S document,
paced open-loop (a late request is sent at once; the schedule does not slip). Every 10 s the
node's VmRSS (/proc/PID/status) is sampled; latencies are grouped by minute.

The stores of a node are bounded (RUNS_MAX runs, DOCUMENTS_MAX_BYTES of parsed documents, the
same bytes of amnesia files) but large by default (256 MiB of documents take hours to fill at
this rate), so the soak runs the node with small caps (RUNS_MAX=256, DOCUMENTS_MAX_BYTES=2 MiB,
override with --env) that are full before the warm-up ends: from then on every run evicts one,
and RSS that still grows is a leak, not a cache filling.

Reports (one JSON line per minute, then a summary line):
  rss_growth_pct   mean RSS of the last minute vs the first minute after warm-up
  p95_drift_pct    p95 of the last minute vs the first minute after warm-up
  invariant_fail   reward_invariant_fail_total from /metrics (must stay 0)
  errors           requests that did not answer 200/201
  node_cpu_drift_pct  the node's CPU ms per run (/proc/PID/stat), last vs first minute: on a
                   shared machine, a p95 drift with flat node CPU is waiting outside the node
and exits 1 when growth > 5 %, drift > 10 %, any invariant failure or any error; 2 on bad usage.

Usage: soak.py [--minutes 10] [--warmup-minutes 2] [--rate 50] [--exe rewarder-micronode]
               [--env KEY=VALUE ...]
Needs release binaries: cargo build --release -p rewarder-micronode -p rewarder-testkit

The 24-hour procedure (not run in CI; record the figures in PERFORMANCE.md):
  1. cargo build --release -p rewarder-micronode -p rewarder-testkit
  2. nohup timeout 90000 python3 testing/performance/soak.py --minutes 1440 --warmup-minutes 10 \
         > soak-24h.jsonl 2>&1 &
     (about 4.3 M runs at 50/s; the output is one line per minute, ~1,500 lines)
  3. Run it on an otherwise idle machine (the client and the node share the cores); keep the
     defaults' small caps so the stores are full within the warm-up, or pass
     --env DOCUMENTS_MAX_BYTES=268435456 to soak with production caps (they fill after ~3 h:
     judge growth on the hours after that, e.g. by re-reading the per-minute lines).
  4. Pass: summary line verdict "pass" (growth ≤ 5 %, drift ≤ 10 %, 0 invariant failures,
     0 errors); also look at the per-minute lines for a slow trend hidden under the 5 %.
"""

import argparse
import http.client
import json
import os
import sys
import tempfile
import time

import common

SAMPLE_S = 10
GROWTH_MAX_PCT = 5.0
DRIFT_MAX_PCT = 10.0


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_per_run(m):
    """The node's mean CPU ms per run over a minute (PUT + compute), or None."""
    if not m or not m["times"] or m.get("cpu_end") is None:
        return None
    return (m["cpu_end"] - m["cpu_start"]) / len(m["times"])


def threads(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return 0


def report_minute(minute, m, pid):
    """One JSON line for a minute of the soak."""
    m = m or {"times": [], "rss": [], "errors": 0}
    line = {"minute": minute, "runs": len(m["times"]), "errors": m["errors"],
            "rss_kib": round(sum(m["rss"]) / max(1, len(m["rss"]))), "threads": threads(pid)}
    if m["times"]:
        line.update(common.summary(m["times"]))
    cpu = cpu_per_run(m)
    if cpu is not None:
        line["node_cpu_ms_per_run"] = round(cpu, 3)
    print(json.dumps(line), flush=True)


def metric(conn, name):
    status, body = common.request(conn, "GET", "/metrics")
    if status != 200:
        return None
    total = 0.0
    for line in body.decode().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--warmup-minutes", type=float, default=2)
    ap.add_argument("--rate", type=float, default=50, help="runs per second")
    ap.add_argument("--exe", default="rewarder-micronode")
    ap.add_argument("--env", action="append", default=[], help="KEY=VALUE for the node (overrides)")
    a = ap.parse_args()
    if a.minutes <= a.warmup_minutes + 1 or a.rate <= 0:
        print("soak.py: --minutes must exceed --warmup-minutes by at least 1, --rate > 0", file=sys.stderr)
        return 2
    env = {"TENANT_RPS_MAX": "1000000", "RUNS_MAX": "256", "DOCUMENTS_MAX_BYTES": str(2 << 20), "LOG": "warn"}
    env.update(dict(kv.split("=", 1) for kv in a.env))
    total_s = a.minutes * 60
    interval = 1.0 / a.rate
    with common.Node(a.exe, env=env) as node, tempfile.TemporaryDirectory() as tmp:
        pid = node.proc.pid
        conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=60)
        inputs, policy = common.generate("S", tmp, epoch="soak")
        cid, _, _ = common.upload(conn, inputs, policy)
        base = json.loads(policy)
        per_minute = {}  # minute -> {"times": [...], "rss": [...], "errors": n}
        started = time.perf_counter()
        next_send = started
        next_sample = started
        n = 0
        errors = 0
        printed = -1
        while True:
            now = time.perf_counter()
            elapsed = now - started
            if elapsed >= total_s:
                break
            minute = int(elapsed // 60)
            if minute not in per_minute:
                cpu_now = common.cpu_seconds(pid) * 1e3
                if minute - 1 in per_minute:
                    per_minute[minute - 1]["cpu_end"] = cpu_now
                per_minute[minute] = {"times": [], "rss": [], "errors": 0, "cpu_start": cpu_now, "cpu_end": None}
            while printed < minute - 1:
                printed += 1
                report_minute(printed, per_minute.get(printed), pid)
            bucket = per_minute[minute]
            if now >= next_sample:
                bucket["rss"].append(rss_kib(pid))
                next_sample += SAMPLE_S
            if now < next_send:
                time.sleep(min(next_send - now, 0.05))
                continue
            next_send += interval
            doc = dict(base, policy_id=f"soak-{n}")
            n += 1
            s1, b1 = common.request(conn, "PUT", "/rewarder/policies", json.dumps(doc).encode())
            if s1 not in (200, 201):
                errors += 1
                bucket["errors"] += 1
                continue
            p = json.loads(b1)
            body = json.dumps({"inputs_cid": cid, "policy_id": p["policy_id"], "policy_hash": p["policy_hash"], "dry_run": True})
            t0 = time.perf_counter()
            s2, _ = common.request(conn, "POST", "/rewarder/epochs/soak/compute", body)
            bucket["times"].append((time.perf_counter() - t0) * 1e3)
            if s2 != 200:
                errors += 1
                bucket["errors"] += 1
        per_minute[max(per_minute)]["rss"].append(rss_kib(pid))
        per_minute[max(per_minute)]["cpu_end"] = common.cpu_seconds(pid) * 1e3
        while printed < max(per_minute):
            printed += 1
            report_minute(printed, per_minute.get(printed), pid)
        invariants = metric(conn, "reward_invariant_fail_total")
        spills = metric(conn, "amnesia_spill_total")
        first = int(a.warmup_minutes)
        full = [k for k in sorted(per_minute) if k >= first and per_minute[k]["times"] and per_minute[k]["rss"]]
        # The last whole minute (the final one may be a partial minute).
        last_whole = full[-1] if total_s % 60 == 0 or len(full) < 2 else full[-2]
        f, l = per_minute[full[0]], per_minute[last_whole]
        rss_f, rss_l = sum(f["rss"]) / len(f["rss"]), sum(l["rss"]) / len(l["rss"])
        p95_f, p95_l = common.summary(f["times"])["p95_ms"], common.summary(l["times"])["p95_ms"]
        growth = (rss_l - rss_f) / rss_f * 100
        drift = (p95_l - p95_f) / p95_f * 100
        cpu_f, cpu_l = cpu_per_run(f), cpu_per_run(l)
        shm = [d for d in os.listdir("/dev/shm") if d.startswith(f"rewarder-{pid}-")] if os.path.isdir("/dev/shm") else []
        amnesia_bytes = sum(
            os.path.getsize(os.path.join("/dev/shm", d, f)) for d in shm for f in os.listdir(os.path.join("/dev/shm", d))
        )
        ok = growth <= GROWTH_MAX_PCT and drift <= DRIFT_MAX_PCT and invariants == 0 and errors == 0
        summary = {
            "verdict": "pass" if ok else "fail",
            "minutes": a.minutes, "warmup_minutes": a.warmup_minutes, "rate_per_s": a.rate, "runs": n,
            "achieved_rate_per_s": round(n / total_s, 2), "errors": errors,
            "compared_minutes": [full[0], last_whole],
            "rss_first_kib": round(rss_f), "rss_last_kib": round(rss_l), "rss_growth_pct": round(growth, 2),
            "p95_first_ms": p95_f, "p95_last_ms": p95_l, "p95_drift_pct": round(drift, 2),
            # The node's own CPU per run, first vs last minute: flat while p95 drifts means
            # the wait was outside the node (a shared machine); rising means the node slowed.
            "node_cpu_ms_per_run_first": round(cpu_f, 3), "node_cpu_ms_per_run_last": round(cpu_l, 3),
            "node_cpu_drift_pct": round((cpu_l - cpu_f) / cpu_f * 100, 2),
            "invariant_fail": invariants, "amnesia_spill_total": spills, "amnesia_dir_bytes": amnesia_bytes,
            "threads": threads(pid), "env": env,
        }
        print(json.dumps(summary), flush=True)
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
