#!/usr/bin/env python3
"""What a user waits on for a new epoch, over HTTP with curl: PUT of the inputs document, PUT of
the policy, then the compute with its allocations (API.md §1.2), each round a new document (an
epoch of its own, so nothing is found by content id or run memo).

Every node given with --exe (a path or a workspace binary name) runs at once on its own loopback
port, and the rounds alternate between them, so that the load of the machine weighs on every
node alike: the ratios between nodes are the figures to read. Each request is one `curl`
process; the time is curl's own `time_total` (connection, upload, answer), not the process
start. Prints one JSON line per node and scale, with the load average around the run.

Usage: new_epoch.py [--scales M,L] [--rounds 15] [--exe rewarder-micronode] [--exe /tmp/base/rewarder-micronode]
Needs: curl; release binaries: cargo build --release -p rewarder-micronode -p rewarder-testkit
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import common


def curl(method, url, body_file=None, body=None):
    """(status, seconds, answer bytes) of one request by a curl process."""
    cmd = ["curl", "-sS", "-o", "-", "-w", "\n%{http_code} %{time_total}", "-X", method, url,
           "-H", "Content-Type: application/json"]
    if body_file is not None:
        cmd += ["--data-binary", "@" + body_file]
    elif body is not None:
        cmd += ["--data-binary", body]
    out = subprocess.run(cmd, check=True, capture_output=True).stdout
    answer, _, tail = out.rpartition(b"\n")
    status, seconds = tail.decode().split()
    return int(status), float(seconds), answer


class Started:
    """A node process on a free loopback port."""

    def __init__(self, path, env):
        self.port = common.free_port()
        full_env = dict(os.environ, BIND_ADDR=f"127.0.0.1:{self.port}", LOG="warn", **env)
        self.proc = subprocess.Popen([path, "serve"], env=full_env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        common.wait_ready(self.port, deadline_s=10)


def start(exe, env):
    """A node of `exe`: a path, or a release binary of the workspace."""
    return Started(exe if os.path.sep in exe else common.binary(exe), env)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scales", default="M,L")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--exe", action="append", help="node binary (repeatable); default rewarder-micronode")
    a = ap.parse_args()
    exes = a.exe or ["rewarder-micronode"]
    scales = [s for s in a.scales.split(",") if s]
    load_before = os.getloadavg()
    env = {"TENANT_RPS_MAX": "1000000", "RUNS_MAX": "64"}
    with tempfile.TemporaryDirectory() as tmp:
        # Documents first (the testkit is not part of what is measured): one epoch per round.
        docs = {}
        for scale in scales:
            for r in range(a.rounds):
                d = os.path.join(tmp, f"{scale}-{r}")
                common.generate(scale, d, epoch=f"new-{scale}-{r:03d}")
                docs[scale, r] = (os.path.join(d, "inputs.json"), os.path.join(d, "policy.json"))
        nodes = []
        try:
            for exe in exes:
                nodes.append((exe, start(exe, env)))
            times = {(exe, s): {"put_inputs": [], "put_policy": [], "compute": [], "end_to_end": []}
                     for exe, _ in nodes for s in scales}
            for r in range(a.rounds):
                for scale in scales:
                    # Alternate which node goes first.
                    order = nodes if r % 2 == 0 else list(reversed(nodes))
                    for exe, node in order:
                        base = f"http://127.0.0.1:{node.port}"
                        inputs_file, policy_file = docs[scale, r]
                        s1, t1, b1 = curl("PUT", base + "/rewarder/inputs", body_file=inputs_file)
                        assert s1 == 201, (exe, s1, b1[:300])
                        s2, t2, b2 = curl("PUT", base + "/rewarder/policies", body_file=policy_file)
                        assert s2 in (200, 201), (exe, s2, b2[:300])
                        i, p = json.loads(b1), json.loads(b2)
                        body = json.dumps({"inputs_cid": i["inputs_cid"], "policy_id": p["policy_id"],
                                           "policy_hash": p["policy_hash"], "dry_run": True})
                        s3, t3, b3 = curl("POST", f"{base}/rewarder/epochs/{i['epoch']}/compute", body=body)
                        assert s3 == 200, (exe, s3, b3[:300])
                        t = times[exe, scale]
                        for k, v in (("put_inputs", t1), ("put_policy", t2), ("compute", t3),
                                     ("end_to_end", t1 + t2 + t3)):
                            t[k].append(v * 1e3)
        finally:
            for _, node in nodes:
                node.proc.terminate()
                try:
                    node.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    node.proc.kill()
        load_after = os.getloadavg()
        for (exe, scale), t in times.items():
            size = os.path.getsize(docs[scale, 0][0])
            print(json.dumps({"exe": exe, "scale": scale, "inputs_bytes": size,
                              **{k: common.summary(v) for k, v in t.items()},
                              "load_average": [round(x, 2) for x in load_before + load_after],
                              "cpus": os.cpu_count()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
