#!/usr/bin/env python3
"""The fuzz→perf bridge (seed §2.4): adversarial but VALID documents at M scale, computed over HTTP.

Each shape is a document a fuzzer would call boring (it parses) but that pushes one dimension of
the calculus to its edge. Every shape is computed --runs times on one micronode, each time under
a distinct policy id (so each answer is a real compute, not the run memo), interleaved round-robin
with the nominal M document of the testkit so that machine drift hits all shapes alike. The goal
is p95(shape) <= 1.2 x p95(nominal M) measured in the same run (water-filling must not be
quadratic: sort once, then fill).

Shapes (10,000 actors / 100,000 events unless stated):
  nominal_M            the testkit's M document and policy (the reference)
  one_actor            every event belongs to one actor
  kinds_256            256 kinds (the document maximum), every kind weighted, half capped
  zero_units_1M        1,000,000 events of 0 units (a ~20 MB document)
  actor_ids_128        every actor id exactly 128 bytes (the maximum)
  all_equal            every actor the same score (maximal ties in the largest-remainder step)
  waterfill_bps1       geometric scores (ratio 1.0007) under actor_cap_bps = 1
  waterfill_bps2       the same under actor_cap_bps = 2 (capacity twice the pool: many rounds)
  waterfill_steps      scores in 100 geometric tiers of 100 actors under actor_cap_bps = 3

Documents are generated here, in memory, deterministically (no randomness at all).
Each round computes every shape twice under fresh policy ids: with the allocation list (the full
answer, ~100-200 bytes per payee, what a client waits for) and with ?allocations=false ("bare":
the calculus, commitments and signature without rendering and moving the list). Prints one JSON
line per shape (upload time, payees, answer size, both latency summaries and their ratios to
nominal) and a final verdict line; exits 1 when a shape misses the goal in either measure or
/metrics shows an invariant failure.

Usage: adversarial.py [--runs 30] [--goal 1.2] [--exe rewarder-micronode] [--only a,b]
Needs release binaries: cargo build --release -p rewarder-micronode -p rewarder-testkit
"""

import argparse
import http.client
import json
import os
import sys
import tempfile
import time

import common

ACTORS = 10_000
EVENTS = 100_000
POOL = "1000000000007"  # prime-ish, so shares never divide evenly


def inputs_doc(epoch, actors, kinds, events, pool=POOL):
    """Compact JSON bytes of an inputs document; `events` yields (actor, kind, units)."""
    head = json.dumps(
        {"schema": "rewarder.inputs.v1", "epoch": epoch, "pool_minor": pool, "kinds": kinds, "actors": actors},
        separators=(",", ":"),
    )
    body = ",".join(f"[{i},{a},{k},{u}]" for i, (a, k, u) in enumerate(events))
    return (head[:-1] + ',"events":[' + body + "]}").encode()


def policy_doc(kinds, actor_cap_bps=None, caps=None, weights=None):
    doc = {
        "schema": "rewarder.policy.v1",
        "policy_id": "adv",
        "weights": weights or {k: 1 for k in kinds},
        "min_payout_minor": "1",
    }
    if caps:
        doc["caps"] = caps
    if actor_cap_bps is not None:
        doc["actor_cap_bps"] = actor_cap_bps
    return doc


def plain_actors(n=ACTORS):
    return [f"acct:{i:07d}" for i in range(n)]


def spread(n_events, n_actors, n_kinds):
    """Event i → a scattered actor and kind, varied units (deterministic)."""
    for i in range(n_events):
        yield (i * 7919) % n_actors, (i * 31) % n_kinds, 1 + (i * 104729) % 5000


def geometric(ratio, events_per_actor=10, tiers=None):
    """Each actor's units total ~ 1000 * ratio^i (or ratio^(i // tier size)), split over its events."""
    size = ACTORS // tiers if tiers else 1
    for i in range(ACTORS * events_per_actor):
        a = i % ACTORS
        step = a // size
        total = int(1000 * ratio**step)
        yield a, 0, max(1, total // events_per_actor)


def shapes(tmp):
    kinds4 = ["k0", "k1", "k2", "k3"]
    m_inputs, m_policy = common.generate("M", tmp, epoch="adv-nominal_M")
    yield "nominal_M", m_inputs, json.loads(m_policy)
    yield "one_actor", inputs_doc(
        "adv-one_actor", plain_actors(), kinds4, ((0, i % 4, 1 + i % 1000) for i in range(EVENTS))
    ), policy_doc(kinds4)
    kinds256 = [f"kind-{i:03d}" for i in range(256)]
    yield "kinds_256", inputs_doc("adv-kinds_256", plain_actors(), kinds256, spread(EVENTS, ACTORS, 256)), policy_doc(
        kinds256,
        weights={k: 1 + i * 3901 % 1_000_000 for i, k in enumerate(kinds256)},
        caps={k: 2000 + i for i, k in enumerate(kinds256) if i % 2 == 0},
    )
    yield "zero_units_1M", inputs_doc(
        "adv-zero_units_1M", plain_actors(), kinds4, (((i * 7919) % ACTORS, i % 4, 0) for i in range(1_000_000))
    ), policy_doc(kinds4)
    long_ids = [f"acct:{i:07d}:".ljust(128, "x") for i in range(ACTORS)]
    assert all(len(a.encode()) == 128 for a in long_ids)
    yield "actor_ids_128", inputs_doc("adv-actor_ids_128", long_ids, kinds4, spread(EVENTS, ACTORS, 4)), policy_doc(
        kinds4
    )
    yield "all_equal", inputs_doc(
        "adv-all_equal", plain_actors(), ["k"], ((i % ACTORS, 0, 7) for i in range(EVENTS))
    ), policy_doc(["k"])
    yield "waterfill_bps1", inputs_doc("adv-waterfill_bps1", plain_actors(), ["k"], geometric(1.0007)), policy_doc(
        ["k"], actor_cap_bps=1
    )
    yield "waterfill_bps2", inputs_doc("adv-waterfill_bps2", plain_actors(), ["k"], geometric(1.0007)), policy_doc(
        ["k"], actor_cap_bps=2
    )
    yield "waterfill_steps", inputs_doc(
        "adv-waterfill_steps", plain_actors(), ["k"], geometric(1.08, tiers=100)
    ), policy_doc(["k"], actor_cap_bps=3)


def put_policy(conn, doc):
    status, b = common.request(conn, "PUT", "/rewarder/policies", json.dumps(doc, separators=(",", ":")).encode())
    assert status in (200, 201), (status, b[:300])
    p = json.loads(b)
    return p["policy_id"], p["policy_hash"]


def invariant_failures(conn):
    status, body = common.request(conn, "GET", "/metrics")
    assert status == 200
    for line in body.decode().splitlines():
        if line.startswith("reward_invariant_fail_total "):
            return int(float(line.split()[1]))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--goal", type=float, default=1.2)
    ap.add_argument("--exe", default="rewarder-micronode")
    ap.add_argument("--only", default="", help="comma-separated shapes (nominal_M is always run)")
    a = ap.parse_args()
    only = {s for s in a.only.split(",") if s}
    env = {"TENANT_RPS_MAX": "1000000", "RUNS_MAX": "64"}
    with common.Node(a.exe, env=env) as node, tempfile.TemporaryDirectory() as tmp:
        conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=300)
        cases = []
        for name, inputs, policy in shapes(tmp):
            if only and name not in only and name != "nominal_M":
                continue
            t0 = time.perf_counter()
            status, body = common.request(conn, "PUT", "/rewarder/inputs", inputs)
            upload_ms = (time.perf_counter() - t0) * 1e3
            assert status in (200, 201), (name, status, body[:300])
            cid = json.loads(body)["inputs_cid"]
            epoch = json.loads(body)["epoch"]
            cases.append({"name": name, "cid": cid, "epoch": epoch, "policy": policy, "bytes": len(inputs),
                          "upload_ms": upload_ms, "times": [], "times_bare": [], "payees": None})
            del inputs
        for i in range(a.runs):
            for c in cases:
                # Each compute under a policy id of its own: a real compute, never the run memo.
                for listed in (True, False):
                    doc = dict(c["policy"], policy_id=f"adv-{c['name']}-{i}-{int(listed)}")
                    pid, phash = put_policy(conn, doc)
                    body = json.dumps({"inputs_cid": c["cid"], "policy_id": pid, "policy_hash": phash, "dry_run": True})
                    path = f"/rewarder/epochs/{c['epoch']}/compute" + ("" if listed else "?allocations=false")
                    t0 = time.perf_counter()
                    status, resp = common.request(conn, "POST", path, body)
                    c["times" if listed else "times_bare"].append((time.perf_counter() - t0) * 1e3)
                    assert status == 200, (c["name"], status, resp[:300])
                    if listed:
                        c["answer_bytes"] = len(resp)
                        c["payees"] = json.loads(resp)["manifest"]["payees"]
        nominal = common.summary(cases[0]["times"])["p95_ms"]
        nominal_bare = common.summary(cases[0]["times_bare"])["p95_ms"]
        # Medians too: on a shared machine they show the cost when the p95 shows the neighbours.
        nominal_med = common.summary(cases[0]["times"])["median_ms"]
        nominal_bare_med = common.summary(cases[0]["times_bare"])["median_ms"]
        worst, failed = 0.0, []
        for c in cases:
            s, bare = common.summary(c["times"]), common.summary(c["times_bare"])
            ratio, ratio_bare = s["p95_ms"] / nominal, bare["p95_ms"] / nominal_bare
            worst = max(worst, ratio, ratio_bare)
            ok = ratio <= a.goal and ratio_bare <= a.goal
            if not ok:
                failed.append(c["name"])
            print(json.dumps({"shape": c["name"], "doc_bytes": c["bytes"], "upload_ms": round(c["upload_ms"], 1),
                              "payees": c["payees"], "answer_bytes": c["answer_bytes"], **s,
                              "p95_vs_nominal": round(ratio, 3),
                              "median_vs_nominal": round(s["median_ms"] / nominal_med, 3),
                              "bare_median_ms": bare["median_ms"], "bare_p95_ms": bare["p95_ms"],
                              "bare_p95_vs_nominal": round(ratio_bare, 3),
                              "bare_median_vs_nominal": round(bare["median_ms"] / nominal_bare_med, 3),
                              "ok": ok}), flush=True)
        invariants = invariant_failures(conn)
        verdict = {"verdict": "pass" if not failed and invariants == 0 else "fail", "goal": a.goal,
                   "load_average": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count(),
                   "worst_p95_vs_nominal": round(worst, 3), "failed": failed, "invariant_failures": invariants,
                   "runs": a.runs}
        print(json.dumps(verdict), flush=True)
        return 0 if verdict["verdict"] == "pass" else 1


if __name__ == "__main__":
    sys.exit(main())
