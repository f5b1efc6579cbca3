#!/usr/bin/env python3
"""Durable acceptance (issue #14): the cost of STATE_PATH on the compute path, and the drain
rate after a restart.

Part 1, cost. Three macronodes run side by side, each with its own ledger simulator (no
latency, no jitter, no faults), so that every node settles the same epochs:
  none  STATE_PATH unset (the queue in memory),
  tmpfs STATE_PATH on /dev/shm,
  disk  STATE_PATH on the disk (--disk-dir, default /var/tmp).
Each round computes one new M epoch (its own epoch label: a distinct run the ledger registers
and accepts, 10 batches of 1000 intents) on each node, one request at a time, the three in a
rotating order so drift hits all alike. Client-side latency of the compute (keep-alive; the
documents are uploaded before the clock starts). Beside it: the fsync latency of each
directory (4 KiB write + fsync, the commit of a WAL page).

Part 2, drain. A macronode with STATE_PATH on the disk answers --drain-runs M runs 202 while its
ledger is down, is SIGKILLed, and restarts with the ledger up: intents drained per second, from
the restart until the queue is empty (the node starts draining as soon as it listens).

Usage: durable_delta.py [--runs 60] [--drain-runs 5] [--disk-dir /var/tmp] [--allocations true|false]
       [--out testing/performance/baselines/durable.json]
Needs release binaries: cargo build --release -p rewarder-macronode -p rewarder-testkit
"""

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

import common

BUDGET_PCT = 5.0


class Sim(common.Stopped):
    """A ledger-sim process on a free port (or `port`), stopped on exit."""

    def __init__(self, port=None):
        self.port = port or common.free_port()
        self.proc = subprocess.Popen(
            [common.binary("rewarder-testkit"), "ledger-sim", "--bind", f"127.0.0.1:{self.port}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
                c.request("GET", "/v1/stats")
                if c.getresponse().status == 200:
                    return
            except OSError:
                time.sleep(0.02)
        raise SystemExit("ledger-sim did not start")

    def stats(self):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        c.request("GET", "/v1/stats")
        return json.loads(c.getresponse().read())


def fsync_latency(directory, n=200):
    """4 KiB written then fsynced, n times, in `directory`: ms summary."""
    path = os.path.join(directory, "fsync-probe")
    times = []
    with open(path, "wb") as f:
        block = os.urandom(4096)
        for _ in range(n):
            f.write(block)
            t0 = time.perf_counter()
            f.flush()
            os.fsync(f.fileno())
            times.append((time.perf_counter() - t0) * 1e3)
    os.remove(path)
    return common.summary(times)


def with_epoch(inputs, old, new):
    """The same document under another epoch label (it appears once, as the `epoch` member)."""
    out, n = re.subn(rb'"epoch"\s*:\s*"' + re.escape(old.encode()) + rb'"', b'"epoch":"' + new.encode() + b'"', inputs)
    assert n == 1, n
    return out


def node_env(ledger_port, state_path=None):
    # What is measured is acceptance, not brownout: a busy machine's slow moments must not
    # put a node in quarantine-only mode halfway through.
    env = {
        "LEDGER_URL": f"http://127.0.0.1:{ledger_port}",
        "LEDGER_P95_BUDGET_MS": "600000",
        "LEDGER_DEADLINE_MS": "60000",
        "TENANT_RPS_MAX": "1000000",
        "LOG": "warn",
    }
    if state_path:
        env["STATE_PATH"] = state_path
    return env


def cost(a, inputs, policy, base_epoch, disk_dir):
    query = "" if a.allocations == "true" else "?allocations=false"
    shm = tempfile.mkdtemp(prefix="rewarder-durable-", dir="/dev/shm")
    disk = tempfile.mkdtemp(prefix="rewarder-durable-", dir=disk_dir)
    fsync = {"tmpfs": fsync_latency(shm), "disk": fsync_latency(disk)}
    configs = {"none": None, "tmpfs": os.path.join(shm, "queue.db"), "disk": os.path.join(disk, "queue.db")}
    times = {k: [] for k in configs}
    try:
        sims = {k: Sim() for k in configs}
        nodes = {k: common.Node("rewarder-macronode", env=node_env(sims[k].port, p)) for k, p in configs.items()}
        conns = {k: http.client.HTTPConnection("127.0.0.1", n.port, timeout=120) for k, n in nodes.items()}
        pid = common.upload(conns["none"], inputs, policy)[1]
        names = list(configs)
        cpu = {k: 0.0 for k in configs}
        for i in range(a.runs):
            epoch = f"{base_epoch}-{i}"
            doc = with_epoch(inputs, base_epoch, epoch)
            bodies = {}
            for k, c in conns.items():
                cid, _, phash = common.upload(c, doc, policy)
                bodies[k] = json.dumps({"inputs_cid": cid, "policy_id": pid, "policy_hash": phash, "dry_run": False})
            order = names[i % 3:] + names[: i % 3]
            if i % 2:
                order.reverse()
            for k in order:
                c0 = common.cpu_seconds(nodes[k].proc.pid)
                t0 = time.perf_counter()
                status, resp = common.request(conns[k], "POST", f"/rewarder/epochs/{epoch}/compute{query}", bodies[k])
                times[k].append((time.perf_counter() - t0) * 1e3)
                cpu[k] += common.cpu_seconds(nodes[k].proc.pid) - c0
                assert status == 200, (k, status, resp[:300])
                ledger = json.loads(resp)["ledger"]
                assert ledger["status"] == "emitted" and ledger["durable"] == (configs[k] is not None), (k, ledger)
        for k, s in sims.items():
            st = s.stats()
            assert st["results"]["conflict"] == 0 and len(st["epochs"]) == a.runs, (k, st["results"])
        for n in nodes.values():
            n.__exit__(None, None, None)
        for s in sims.values():
            s.__exit__(None, None, None)
    finally:
        shutil.rmtree(shm, ignore_errors=True)
        shutil.rmtree(disk, ignore_errors=True)
    summary = {k: common.summary(v) for k, v in times.items()}
    base = summary["none"]
    out = {"runs": a.runs, "allocations": a.allocations == "true", "latency": summary, "fsync_4k": fsync}
    # The node's own CPU time per compute (all its threads, clock-tick resolution summed over
    # every run): what durability costs in work, free of the waiting a busy machine adds.
    out["cpu_ms_mean"] = {k: round(v * 1e3 / a.runs, 3) for k, v in cpu.items()}
    for k in ("tmpfs", "disk"):
        out[f"delta_p95_pct_{k}"] = round((summary[k]["p95_ms"] - base["p95_ms"]) * 100 / base["p95_ms"], 2)
        out[f"delta_median_pct_{k}"] = round((summary[k]["median_ms"] - base["median_ms"]) * 100 / base["median_ms"], 2)
    out["budget_p95_pct_tmpfs"] = BUDGET_PCT
    out["within_budget_tmpfs"] = out["delta_p95_pct_tmpfs"] <= BUDGET_PCT
    return out


def drain(a, inputs, policy, base_epoch, disk_dir):
    disk = tempfile.mkdtemp(prefix="rewarder-drain-", dir=disk_dir)
    state = os.path.join(disk, "queue.db")
    ledger_port = common.free_port()
    env = node_env(ledger_port, state)
    try:
        node = common.Node("rewarder-macronode", env=env)
        conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=120)
        pid = common.upload(conn, inputs, policy)[1]
        intents = 0
        for i in range(a.drain_runs):
            epoch = f"{base_epoch}-drain-{i}"
            cid, _, phash = common.upload(conn, with_epoch(inputs, base_epoch, epoch), policy)
            body = json.dumps({"inputs_cid": cid, "policy_id": pid, "policy_hash": phash})
            status, resp = common.request(conn, "POST", f"/rewarder/epochs/{epoch}/compute?allocations=false", body)
            assert status == 202, (status, resp[:300])
            intents += json.loads(resp)["ledger"]["pending"]
        node.proc.send_signal(signal.SIGKILL)
        node.proc.wait()
        db_bytes = sum(os.path.getsize(os.path.join(disk, f)) for f in os.listdir(disk))
        with Sim(ledger_port) as sim:
            t0 = time.perf_counter()
            node = common.Node("rewarder-macronode", env=env)
            while True:
                depth = common.metrics(node.port)["quarantine_queue_depth"]
                if depth == 0:
                    break
                assert time.perf_counter() - t0 < 300, depth
                time.sleep(0.01)
            took = time.perf_counter() - t0
            stats = sim.stats()
            node.__exit__(None, None, None)
        assert stats["results"]["accepted"] == intents and stats["keys"] == intents, stats["results"]
    finally:
        shutil.rmtree(disk, ignore_errors=True)
    return {
        "runs": a.drain_runs,
        "intents": intents,
        "state_bytes_at_kill": db_bytes,
        "seconds_from_restart": round(took, 3),
        "intents_per_s": round(intents / took),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=60)
    ap.add_argument("--drain-runs", type=int, default=5)
    ap.add_argument("--disk-dir", default="/var/tmp")
    ap.add_argument("--allocations", default="true", choices=["true", "false"])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "baselines", "durable.json"))
    a = ap.parse_args()
    load_before = os.getloadavg()
    base_epoch = "dur-M"
    with tempfile.TemporaryDirectory() as tmp:
        inputs, policy = common.generate("M", tmp, epoch=base_epoch)
    result = {"cost": cost(a, inputs, policy, base_epoch, a.disk_dir)}
    print(json.dumps(result["cost"]))
    result["drain"] = drain(a, inputs, policy, base_epoch, a.disk_dir)
    print(json.dumps(result["drain"]))
    if a.out:
        common.write_report(
            a.out,
            "durable acceptance: compute p95 at M with a ledger (no jitter), STATE_PATH unset vs tmpfs vs disk, interleaved; drain rate after a SIGKILL and restart",
            f"testing/performance/durable_delta.py --runs {a.runs} --drain-runs {a.drain_runs} --disk-dir {a.disk_dir} --allocations {a.allocations}",
            load_before, **result)


if __name__ == "__main__":
    main()
