#!/usr/bin/env python3
"""Cold start: exec → first 200 on /readyz, then the first compute of an S epoch.

Usage: cold_start.py [--runs 15] [--exe rewarder-micronode] [--wrap "taskset -c 0"]
Prints one JSON line: median and p95 of both, over --runs fresh processes.
"""

import argparse
import http.client
import json
import shlex
import tempfile
import time

import common


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--exe", default="rewarder-micronode")
    ap.add_argument("--wrap", default="", help="command prefix, e.g. 'cgexec -g memory,cpu:small'")
    ap.add_argument("--label", default="host")
    a = ap.parse_args()
    ready, first = [], []
    with tempfile.TemporaryDirectory() as tmp:
        inputs, policy = common.generate("S", tmp)
        for _ in range(a.runs):
            with common.Node(a.exe, wrap=shlex.split(a.wrap)) as node:
                ready.append(node.ready_after_s * 1e3)
                conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=30)
                t0 = time.perf_counter()
                cid, pid, phash = common.upload(conn, inputs, policy)
                body = json.dumps({"inputs_cid": cid, "policy_id": pid, "policy_hash": phash, "dry_run": True})
                status, resp = common.request(conn, "POST", "/rewarder/epochs/demo/compute", body)
                assert status == 200, (status, resp[:200])
                first.append((time.perf_counter() - t0) * 1e3)
    print(json.dumps({"label": a.label, "exe": a.exe, "ready": common.summary(ready), "first_compute_S": common.summary(first)}))


if __name__ == "__main__":
    main()
