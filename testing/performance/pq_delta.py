#!/usr/bin/env python3
"""PQ delta (seed §1.1): p95 of M and L computes over HTTP, REQUIRE_PQ_ON=false vs true.

Two nodes run side by side (A: PQ off, B: PQ on) with the same inputs stored. Requests are
interleaved in ABBA order (A,B,B,A,A,B,…) so drift of the machine hits both alike, one at a
time (never concurrent), each a distinct run (its own policy id): every answer is a real
compute, signed with Ed25519 (A) or Ed25519 + ML-DSA-65 (B). Client-side latency, keep-alive.

Usage: pq_delta.py [--scales M,L] [--runs 100] [--exe rewarder-micronode] [--allocations true|false]
       [--out testing/performance/baselines/pq_delta.json]
Prints one JSON line per scale; the seed's budget is Δp95 ≤ +5%. Besides wall-clock latency it
reports the node's mean CPU time per answer (utime + stime of the process), which a busy machine
does not inflate: on a shared box, judge the budget on both.
"""

import argparse
import http.client
import json
import os
import tempfile
import time

import common

BUDGET_PCT = 5.0


def put_policy(conn, doc):
    status, body = common.request(conn, "PUT", "/rewarder/policies", json.dumps(doc).encode())
    assert status in (200, 201), (status, body[:300])
    p = json.loads(body)
    return p["policy_id"], p["policy_hash"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scales", default="M,L")
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--exe", default="rewarder-micronode")
    ap.add_argument("--allocations", default="true", choices=["true", "false"])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "baselines", "pq_delta.json"))
    a = ap.parse_args()
    # Latency, not admission control, is measured: lift the per-tenant clamp on both nodes.
    base_env = {"TENANT_RPS_MAX": "1000000"}
    query = "" if a.allocations == "true" else "?allocations=false"
    lines = []
    load_before = os.getloadavg()
    with common.Node(a.exe, env={**base_env, "REQUIRE_PQ_ON": "false"}) as node_a, common.Node(
        a.exe, env={**base_env, "REQUIRE_PQ_ON": "true"}
    ) as node_b, tempfile.TemporaryDirectory() as tmp:
        conns = {
            "off": http.client.HTTPConnection("127.0.0.1", node_a.port, timeout=120),
            "on": http.client.HTTPConnection("127.0.0.1", node_b.port, timeout=120),
        }
        for scale in a.scales.split(","):
            epoch = f"pq-{scale}"
            inputs, policy = common.generate(scale, tmp, epoch=epoch)
            cids = {k: common.upload(c, inputs, policy)[0] for k, c in conns.items()}
            base = json.loads(policy)
            times = {"off": [], "on": []}
            cpu0 = {k: common.cpu_seconds(p) * 1e3 for k, p in (("off", node_a.proc.pid), ("on", node_b.proc.pid))}
            for i in range(a.runs):
                order = ("off", "on") if i % 2 == 0 else ("on", "off")
                doc = dict(base, policy_id=f"pq-{scale}-{i}")
                for which in order:
                    conn = conns[which]
                    pid, phash = put_policy(conn, doc)
                    body = json.dumps({"inputs_cid": cids[which], "policy_id": pid, "policy_hash": phash, "dry_run": True})
                    t0 = time.perf_counter()
                    status, resp = common.request(conn, "POST", f"/rewarder/epochs/{epoch}/compute{query}", body)
                    times[which].append((time.perf_counter() - t0) * 1e3)
                    assert status == 200, (status, resp[:300])
                    has_pq = b'"ml_dsa_65"' in resp and b'"ml_dsa_65":null' not in resp
                    assert has_pq == (which == "on"), f"PQ signature presence wrong on the {which} node"
            off, on = common.summary(times["off"]), common.summary(times["on"])
            cpu_off = (common.cpu_seconds(node_a.proc.pid) * 1e3 - cpu0["off"]) / a.runs
            cpu_on = (common.cpu_seconds(node_b.proc.pid) * 1e3 - cpu0["on"]) / a.runs
            line = {
                "scale": scale,
                "exe": a.exe,
                "allocations": a.allocations == "true",
                "runs": a.runs,
                "pq_off": off,
                "pq_on": on,
                "delta_median_pct": round((on["median_ms"] - off["median_ms"]) * 100 / off["median_ms"], 2),
                "delta_p95_pct": round((on["p95_ms"] - off["p95_ms"]) * 100 / off["p95_ms"], 2),
                "delta_median_ms": round(on["median_ms"] - off["median_ms"], 3),
                "budget_p95_pct": BUDGET_PCT,
                # The node's CPU time per answer (all its threads): the cost PQ adds, free of
                # the waiting that a busy machine puts into wall-clock percentiles.
                "cpu_ms_mean_pq_off": round(cpu_off, 3),
                "cpu_ms_mean_pq_on": round(cpu_on, 3),
                "cpu_delta_mean_pct": round((cpu_on - cpu_off) * 100 / cpu_off, 2),
            }
            line["within_budget"] = line["delta_p95_pct"] <= BUDGET_PCT
            print(json.dumps(line))
            lines.append(line)
    if a.out:
        common.write_report(
            a.out,
            "p95 of computes over HTTP, REQUIRE_PQ_ON=true vs false, interleaved ABBA, distinct runs",
            f"testing/performance/pq_delta.py --scales {a.scales} --runs {a.runs} --allocations {a.allocations}",
            load_before, results=lines)


if __name__ == "__main__":
    main()
