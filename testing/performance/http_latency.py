#!/usr/bin/env python3
"""Compute latency over HTTP with stored inputs (dry runs), client-side, keep-alive.

Each request is a distinct run (its own policy id), so every answer is a real compute, not the
run memo. Usage: http_latency.py [--scales M,L] [--runs 40] [--exe rewarder-micronode]
Prints one JSON line per (scale, allocations on/off).
"""

import argparse
import http.client
import json
import tempfile
import time

import common


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scales", default="M,L")
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--exe", default="rewarder-micronode")
    ap.add_argument("--env", action="append", default=[], help="KEY=VALUE for the node")
    a = ap.parse_args()
    # Latency, not admission control, is measured here: lift the per-tenant clamp.
    env = {"TENANT_RPS_MAX": "1000000", **dict(kv.split("=", 1) for kv in a.env)}
    with common.Node(a.exe, env=env) as node, tempfile.TemporaryDirectory() as tmp:
        conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=60)
        for scale in a.scales.split(","):
            inputs, policy = common.generate(scale, tmp, epoch=f"lat-{scale}")
            cid, _, _ = common.upload(conn, inputs, policy)
            base = json.loads(policy)
            for with_allocations in (True, False):
                times = []
                for i in range(a.runs):
                    doc = dict(base, policy_id=f"lat-{scale}-{int(with_allocations)}-{i}")
                    pid, phash = _put_policy(conn, doc)
                    body = json.dumps({"inputs_cid": cid, "policy_id": pid, "policy_hash": phash, "dry_run": True})
                    path = f"/rewarder/epochs/lat-{scale}/compute" + ("" if with_allocations else "?allocations=false")
                    t0 = time.perf_counter()
                    status, resp = common.request(conn, "POST", path, body)
                    times.append((time.perf_counter() - t0) * 1e3)
                    assert status == 200, (status, resp[:300])
                print(json.dumps({"scale": scale, "exe": a.exe, "allocations": with_allocations, **common.summary(times)}))


def _put_policy(conn, doc):
    status, b = common.request(conn, "PUT", "/rewarder/policies", json.dumps(doc).encode())
    assert status in (200, 201), (status, b[:300])
    p = json.loads(b)
    return p["policy_id"], p["policy_hash"]


if __name__ == "__main__":
    main()
