#!/usr/bin/env python3
"""Driver of testing/performance/run_scenario.sh: one load scenario against one fresh node,
written as a baseline JSON in the seed §8.2 format. See steady.md, burst.md, brownout.md.

Usage: run.py steady|burst|brownout [--exe rewarder-micronode] [--seconds 20] [--scale M]
              [--conns N] [--allocations true|false] [--out-dir DIR] [--env K=V ...]
"""

import argparse
import datetime
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
PERF = os.path.dirname(HERE)
sys.path.insert(0, PERF)
import common  # noqa: E402

# What each scenario is (the .md files say why). "rate": offered requests/s per profile, paced
# by scenario.lua (0 = closed loop, back to back).
SCENARIOS = {
    # seed §2.2 "Steady": 128 connections, M payload; paced at the top of the seed's steady
    # band (§1.3: micronode 50–100 runs/s, macronode 300–500).
    "steady": {"scale": "M", "conns": 128, "bodies": 256, "dry_run": True, "ledger": None, "warmup_s": 2,
               "rate": {"micronode": 100, "macronode": 500}, "env": {"CONNECTIONS_MAX": "512"}},
    # seed §2.2 "Burst (2× steady)": 256 connections at twice the steady rate (micronode: the
    # seed's 200 runs/s burst), from ONE tenant whose clamp stays at its default (100/s): the
    # shedding scenario — what exceeds the clamp must be refused 429 at once, not queued.
    "burst": {"scale": "M", "conns": 256, "bodies": 256, "dry_run": True, "ledger": None, "warmup_s": 2,
              "rate": {"micronode": 200, "macronode": 1000},
              "env": {"CONNECTIONS_MAX": "512"}, "load_knobs": {"TENANT_RPS_MAX": "100"}},
    # seed §2.2 "Dependency slow": ledger-sim with 50–500 ms latency, non-dry computes, each body
    # a distinct epoch (an epoch is settled once); S, so a run's intents (one per payee) stay
    # well inside the quarantine bound. No warm-up: the brownout detector's state is the point.
    "brownout": {"scale": "S", "conns": 32, "bodies": 128, "dry_run": False, "ledger": "50..500", "warmup_s": 0,
                 "rate": {"micronode": 50, "macronode": 300}, "env": {}},
}

# Targets (seed §1.1 p95 < 500 ms, p99 < 2 s; §1.3 runs/s per node). Burst: the micronode's
# seed figure (200 runs/s); the seed gives none for the macronode, which must then at least
# hold its steady floor. Brownout: latency SLOs exclude declared brownouts (seed §1.1); the
# steady floor still applies to answered runs (200 or 202).
TARGET_RPS = {
    ("micronode", "steady"): 50, ("micronode", "burst"): 200, ("micronode", "brownout"): 50,
    ("macronode", "steady"): 300, ("macronode", "burst"): 300, ("macronode", "brownout"): 300,
}


def proc_status_mib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return round(int(line.split()[1]) / 1024, 1)
    return None


def drain(port, deadline_s=60):
    """Waits until the node has no queued or in-flight work left from the warm-up: a gate
    thread holds its client's connection slot until its request is answered, even after the
    client left, and the measured run must start with all CONNECTIONS_MAX slots free."""
    t_end = time.monotonic() + deadline_s
    while time.monotonic() < t_end:
        m = common.metrics(port)
        if m.get("queue_depth", 0) == 0 and m.get("inflight", 0) == 0:
            time.sleep(0.2)
            return
        time.sleep(0.05)
    raise SystemExit("the node did not drain its warm-up backlog")


def reload_knobs(node, node_pid, path, knobs):
    """Writes the hot-knobs file and sends SIGHUP (the node's main loop looks every 50 ms)."""
    with open(path, "w") as f:
        f.writelines(f"{k}={v}\n" for k, v in knobs.items())
    os.kill(node_pid, signal.SIGHUP)
    time.sleep(0.3)
    assert node.proc.poll() is None, "the node exited on SIGHUP"


def family(before, after, prefix):
    """Deltas of every series of one metric family, keyed by its label set."""
    out = {}
    for name, value in after.items():
        if name.startswith(prefix + "{"):
            delta = value - before.get(name, 0)
            if delta:
                out[name[len(prefix):]] = int(delta)
    return out


def write_payloads(scale, tmp, n_bodies, per_epoch, port, payload_dir):
    """Uploads the documents and writes payloads/{scale}.json (the first compute body, the
    seed §8.3 form) and payloads/{scale}.bodies (PATH<TAB>BODY lines for scenario.lua).
    The testkit is deterministic, so these files are the same on every run."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    lines, first = [], None
    epochs = [f"{scale.lower()}-{i}" for i in range(n_bodies)] if per_epoch else [f"perf-{scale.lower()}"]
    cids = {}
    policy = None
    for epoch in epochs:
        inputs, policy = common.generate(scale, tmp, epoch=epoch)
        cids[epoch], _, _ = common.upload(conn, inputs, policy)
    base = json.loads(policy)
    for i in range(n_bodies):
        epoch = epochs[i] if per_epoch else epochs[0]
        doc = dict(base, policy_id=f"perf-{scale.lower()}-{i}")
        status, b = common.request(conn, "PUT", "/rewarder/policies", json.dumps(doc).encode())
        assert status in (200, 201), (status, b[:300])
        p = json.loads(b)
        body = {"inputs_cid": cids[epoch], "policy_id": p["policy_id"], "policy_hash": p["policy_hash"]}
        body["dry_run"] = True
        if first is None:
            first = dict(body)
        lines.append((f"/rewarder/epochs/{epoch}/compute", body))
    # Hand the connection back: the gate counts it against CONNECTIONS_MAX until closed.
    conn.close()
    os.makedirs(payload_dir, exist_ok=True)
    if not per_epoch:
        # The seed §8.3 form of the scale's first body (dry scenarios: one shared epoch).
        with open(os.path.join(payload_dir, f"{scale}.json"), "w") as f:
            json.dump(first, f, indent=2)
            f.write("\n")
    return lines


def run_wrk(port, conns, seconds, bodies_file, query, rate):
    env = dict(os.environ, BODIES_FILE=bodies_file, QUERY=query, RATE=str(rate), CONNS=str(conns))
    out = subprocess.run(
        ["wrk", "-t", str(min(2, conns)), "-c", str(conns), "-d", f"{seconds}s", "--timeout", "30s",
         "-s", os.path.join(PERF, "scenario.lua"), f"http://127.0.0.1:{port}"],
        env=env, check=True, capture_output=True, text=True, timeout=seconds + 120,
    ).stdout
    line = next(l for l in out.splitlines() if l.startswith("SCENARIO_JSON "))
    return json.loads(line[len("SCENARIO_JSON "):])


class Perf:
    """perf record of the node from its start (so every thread it ever spawns is followed),
    paused until control("enable"): only the measured run is sampled. cpu-clock (no hardware
    counters here), DWARF call graphs (release binaries keep no frame pointers)."""

    def __init__(self, out, tmp):
        self.ctl, self.ack = os.path.join(tmp, "perf.ctl"), os.path.join(tmp, "perf.ack")
        os.mkfifo(self.ctl)
        os.mkfifo(self.ack)
        self.wrap = ("perf", "record", "-q", "-e", "cpu-clock", "-F", "499", "--call-graph", "dwarf,16384",
                     "-o", out, "--delay=-1", "--control", f"fifo:{self.ctl},{self.ack}", "--")

    @staticmethod
    def child_pid(perf_pid):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for task in os.listdir(f"/proc/{perf_pid}/task"):
                with open(f"/proc/{perf_pid}/task/{task}/children") as f:
                    kids = f.read().split()
                if kids:
                    return int(kids[0])
            time.sleep(0.01)
        raise SystemExit("perf did not start the node")

    def control(self, command):
        with open(self.ctl, "w") as f:
            f.write(command + "\n")
        with open(self.ack) as f:
            f.readline()


class LedgerSim(common.Stopped):
    """rewarder-testkit ledger-sim on a free loopback port, stopped on exit."""

    def __init__(self, latency, seed=1):
        self.port = common.free_port()
        self.proc = subprocess.Popen(
            [common.binary("rewarder-testkit"), "ledger-sim", "--bind", f"127.0.0.1:{self.port}",
             "--latency-ms", latency, "--seed", str(seed)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/v1/stats", timeout=1):
                    return
            except OSError:
                time.sleep(0.02)
        raise SystemExit("ledger-sim did not come up")

    def stats(self):
        """The simulator's totals (its per-epoch list is summarised to a count)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/v1/stats", timeout=5) as r:
                doc = json.loads(r.read())
        except OSError:
            return None
        epochs = doc.pop("epochs", [])
        doc["epochs_registered"] = len(epochs)
        doc["epochs_with_intents"] = sum(1 for e in epochs if e.get("intents"))
        return doc



def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("scenario", choices=sorted(SCENARIOS))
    ap.add_argument("--exe", default="rewarder-micronode")
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--scale")
    ap.add_argument("--conns", type=int)
    ap.add_argument("--rate", type=float, help="offered requests/s (0 = closed loop)")
    ap.add_argument("--allocations", default="true", choices=["true", "false"])
    ap.add_argument("--out-dir", default=os.path.join(PERF, "baselines"))
    ap.add_argument("--env", action="append", default=[], help="KEY=VALUE for the node")
    ap.add_argument("--perf-record", metavar="FILE",
                    help="also profile the node during the measured run: perf record -e cpu-clock "
                         "--call-graph dwarf (release binaries have no frame pointers)")
    a = ap.parse_args()
    sc = dict(SCENARIOS[a.scenario])
    scale = a.scale or sc["scale"]
    conns = a.conns or sc["conns"]
    assert 1 <= a.seconds <= 600, "--seconds is bounded to 1..600"
    profile = a.exe.replace("rewarder-", "")
    rate = a.rate if a.rate is not None else sc["rate"].get(profile, 0)
    env = {
        # One tenant drives all the load here: the per-tenant clamp (default 100/s) would
        # measure the clamp, not the node.
        "TENANT_RPS_MAX": "1000000",
        # Fewer stored runs than distinct bodies: cycling through them never hits the run
        # memo, every request is a real compute (checked: runs_cached in the result).
        "RUNS_MAX": "16",
    }
    env.update(sc["env"])
    env.update(dict(kv.split("=", 1) for kv in a.env))
    # Hot knobs in force during the measured load only (the setup — uploads, policies,
    # warm-up — runs with the clamp lifted), applied by SIGHUP from HOT_KNOBS_FILE.
    load_knobs = sc.get("load_knobs", {})
    pq_on = env.get("REQUIRE_PQ_ON", "false") == "true"
    query = "" if a.allocations == "true" else "?allocations=false"

    with tempfile.TemporaryDirectory() as tmp:
        knobs_file = os.path.join(tmp, "hot-knobs.env")
        if load_knobs:
            with open(knobs_file, "w") as f:
                f.write(f"TENANT_RPS_MAX={env['TENANT_RPS_MAX']}\n")
            env["HOT_KNOBS_FILE"] = knobs_file
        ledger = LedgerSim(sc["ledger"]) if sc["ledger"] else None
        try:
            if ledger:
                env["LEDGER_URL"] = f"http://127.0.0.1:{ledger.port}"
            perf = Perf(a.perf_record, tmp) if a.perf_record else None
            with common.Node(a.exe, env=env, wrap=perf.wrap if perf else ()) as node:
                node_pid = perf.child_pid(node.proc.pid) if perf else node.proc.pid
                lines = write_payloads(scale, tmp, sc["bodies"], per_epoch=not sc["dry_run"], port=node.port,
                                       payload_dir=os.path.join(PERF, "payloads"))
                bodies_file = os.path.join(PERF, "payloads", f"{scale}.{a.scenario}.bodies")
                with open(bodies_file, "w") as f:
                    for path, body in lines:
                        f.write(f"{path}\t{json.dumps(dict(body, dry_run=sc['dry_run']))}\n")
                if sc["warmup_s"]:
                    run_wrk(node.port, conns, sc["warmup_s"], bodies_file, query, rate)
                    drain(node.port)
                if load_knobs:
                    reload_knobs(node, node_pid, knobs_file, load_knobs)
                load_before = os.getloadavg()
                # Every request below is a distinct compute unless runs_cached says otherwise.
                before, cpu0 = common.metrics(node.port), common.cpu_seconds(node_pid)
                if perf:
                    perf.control("enable")
                t0 = time.perf_counter()
                res = run_wrk(node.port, conns, a.seconds, bodies_file, query, rate)
                wall = time.perf_counter() - t0
                if perf:
                    perf.control("disable")
                after, cpu1 = common.metrics(node.port), common.cpu_seconds(node_pid)
                rss = proc_status_mib(node_pid, "VmRSS")
                hwm = proc_status_mib(node_pid, "VmHWM")
                ledger_stats = ledger.stats() if ledger else None
                if perf:
                    # Stop the node itself: perf then writes its file and exits.
                    os.kill(node_pid, signal.SIGTERM)
                    node.proc.wait(timeout=120)
        finally:
            if ledger:
                ledger.__exit__(None, None, None)

    ncpu = os.cpu_count() or 1
    cpu_s = cpu1 - cpu0
    seconds = res["seconds"]
    doc = {
        "profile": profile,
        "scale": scale,
        "scenario": a.scenario,
        "timestamp": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "targets": {"p95_ms": 500, "p99_ms": 2000, "rps": TARGET_RPS.get((profile, a.scenario))},
        "observed": {
            "p95_ms": round(res["p95_ms"], 2),
            "p99_ms": round(res["p99_ms"], 2),
            # Answered runs (200/202) per second: the seed's runs/s.
            "rps": round(res["success"] / seconds, 1),
            # Node CPU over the run, as a share of all the machine's cores.
            "cpu_mean_pct": round(100 * cpu_s / (wall * ncpu), 1),
            "rss_mb": rss,
            "pq_on": pq_on,
        },
        "details": {
            "command": f"testing/performance/run_scenario.sh {a.scenario} --exe {a.exe} --seconds {a.seconds}"
                       + (f" --scale {scale}" if a.scale else "") + (f" --conns {conns}" if a.conns else "")
                       + (f" --rate {a.rate:g}" if a.rate is not None else "")
                       + (" --allocations false" if a.allocations == "false" else "")
                       + "".join(f" --env {kv}" for kv in a.env),
            "connections": conns,
            "offered_rate_rps": rate or "closed loop",
            "seconds": seconds,
            "distinct_bodies": len(lines),
            "allocations_in_answers": a.allocations == "true",
            "dry_run": sc["dry_run"],
            "ledger_sim_latency_ms": sc["ledger"],
            "requests": res["requests"],
            "success_200_202": res["success"],
            "graceful_429_503": res["graceful"],
            "errors_other": res["errors"],
            "graceful_pct": round(100 * res["graceful"] / max(1, res["requests"]), 2),
            "statuses": res["statuses"],
            "refusal_sample": res.get("refusal_sample"),
            "socket_errors": res["socket_errors"],
            "p50_ms": round(res["p50_ms"], 2),
            "max_ms": round(res["max_ms"], 2),
            "latency_note": "wrk percentiles are of every answer, graceful refusals included",
            "all_answers_rps": round(res["requests"] / seconds, 1),
            "node_cpu_cores": round(cpu_s / wall, 2),
            "vmhwm_mb": hwm,
            "runs": family(before, after, "reward_runs_total"),
            "rejected": family(before, after, "rejected_total"),
            "ledger_intents": family(before, after, "ledger_intents_total"),
            "ledger_degraded_at_end": after.get("ledger_degraded"),
            "ledger_sim_stats": ledger_stats,
            "node_env": env,
            "hot_knobs_during_load": load_knobs or None,
            "host": {"cpus": ncpu, "nice": os.nice(0), "loadavg_before": [round(x, 2) for x in load_before],
                     "loadavg_after": [round(x, 2) for x in os.getloadavg()],
                     "note": "wrk and the node share this machine's cores"},
        },
    }
    if doc["details"]["ledger_intents"]:
        li = doc["details"]["ledger_intents"]
        total = sum(li.values())
        dup = sum(v for k, v in li.items() if 'result="dup"' in k)
        doc["details"]["ledger_dup_pct"] = round(100 * dup / max(1, total), 2)
    os.makedirs(a.out_dir, exist_ok=True)
    path = os.path.join(a.out_dir, f"{a.scenario}-{profile}-{scale}.json")
    with open(path, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    print(json.dumps(doc))
    print(f"written {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
