#!/usr/bin/env python3
"""The dashboard and the rules against a real Prometheus scraping real nodes.

Starts ledger-sim, a micronode and a macronode (both sending to the ledger), and a Prometheus
(Debian's) that scrapes both nodes every second and evaluates deploy/prometheus/alerts.yml.
Sends a short bounded load (uploads, computes at two scales, repeats that the ledger answers
`dup`, a burst over the tenant rate for some `429`, unknown paths), waits for the scrapes, then
through Prometheus' HTTP API:

- evaluates every query of every panel of deploy/grafana/svc-rewarder.json (range query over
  the load), once for the fleet (job and instance = All) and once per node, and the dashboard's
  variable queries;
- checks every recording and alerting rule evaluated with health `ok`, and evaluates each
  recording rule's expression and its recorded series;
- fails if a query errors, or names a metric that neither node exports on /metrics (recorded
  series and Prometheus' own `up` and `ALERTS` excepted), or if any series carries a `tenant`
  label. A query may come back empty (5xx, invariant failures): it is listed, not failed.

Everything binds 127.0.0.1 on free ports; the load is bounded in count and time; every process
started is stopped on exit. Usage: python3 testing/observability/live_prometheus.py [--profile
debug|release] (the binaries must be built: scripts/check-dashboard.sh builds them).
"""

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
DASHBOARD = os.path.join(ROOT, "deploy", "grafana", "svc-rewarder.json")
RULES = os.path.join(ROOT, "deploy", "prometheus", "alerts.yml")
VECTORS = os.path.join(ROOT, "testing", "vectors")

SCRAPE_S = 1
RATE_INTERVAL = "15s"  # Grafana's $__rate_interval at a 1 s scrape: 4 x the scrape interval, rounded up
DEADLINE_S = 90  # the whole run, start to finish
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
            "offset", "inf", "nan"}
PROMETHEUS_NAMES = {"up", "ALERTS", "ALERTS_FOR_STATE", "scrape_duration_seconds", "scrape_samples_scraped"}


def say(*args):
    print("check-dashboard:", *args, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Processes:
    """Every child started, stopped (TERM, then KILL) on exit, youngest first."""

    def __init__(self, scratch):
        self.children, self.scratch = [], scratch

    def start(self, name, argv, env=None, wait_for=None, port=None):
        log = open(os.path.join(self.scratch, f"{name}.log"), "wb")
        proc = subprocess.Popen(argv, env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=self.scratch)
        self.children.append((name, proc))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"{name} exited with {proc.returncode}:\n{self.log(name)}")
            if wait_for and wait_for(port):
                return proc
            time.sleep(0.05)
        raise SystemExit(f"{name} did not come up in 20 s:\n{self.log(name)}")

    def log(self, name):
        with open(os.path.join(self.scratch, f"{name}.log"), "rb") as f:
            return f.read().decode(errors="replace")[-4000:]

    def stop(self):
        for name, proc in reversed(self.children):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def http_ok(port, path):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        c.request("GET", path)
        return c.getresponse().status == 200
    except OSError:
        return False


def call(port, method, path, body=None, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    h = {"Content-Type": "application/json"} if body is not None else {}
    h.update(headers or {})
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    return r.status, r.read()


def metric_names_exported(port):
    """The metric names of a node's /metrics (histograms with their _bucket/_sum/_count)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    names = set()
    for line in text.splitlines():
        if line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def names_in(expr):
    """Metric names a PromQL expression selects (not functions, keywords or label names)."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    e = re.sub(r"\{[^}]*\}", "", e)
    e = re.sub(r"\[[^\]]*\]", "", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    names = set()
    for m in re.finditer(r"(?<![0-9.])[A-Za-z_:][A-Za-z0-9_:]*", e):
        if e[m.end():].lstrip().startswith("(") or m.group(0).lower() in KEYWORDS:
            continue
        names.add(m.group(0))
    return names


class Prometheus:
    def __init__(self, port):
        self.base = f"http://127.0.0.1:{port}"

    def get(self, path, **params):
        url = f"{self.base}{path}?{urllib.parse.urlencode(params, doseq=True)}"
        try:
            with urllib.request.urlopen(url, timeout=20) as r:
                return json.load(r)
        except urllib.error.HTTPError as e:
            return json.load(e)

    def range(self, expr, start, end):
        return self.get("/api/v1/query_range", query=expr, start=start, end=end, step=SCRAPE_S)


def load(micro, macro, scratch, testkit):
    """A short bounded load on both nodes; returns the number of requests sent."""
    sent = 0
    dirs = sorted(d for d in os.listdir(VECTORS) if os.path.isdir(os.path.join(VECTORS, d)))
    m_dir = os.path.join(scratch, "m")
    subprocess.run([testkit, "vectors", "--scale", "M", "--epoch", "m-epoch", "--out", m_dir], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    runs = [(os.path.join(VECTORS, d), port) for d in dirs for port in (micro, macro)]
    runs.append((m_dir, macro))
    deadline = time.monotonic() + 30
    for repeat in range(2):  # the second pass repeats every run: the ledger answers dup
        for path, port in runs:
            if time.monotonic() > deadline:
                break
            docs = {}
            for name, route in (("inputs.json", "/rewarder/inputs"), ("policy.json", "/rewarder/policies")):
                with open(os.path.join(path, name), "rb") as f:
                    status, body = call(port, "PUT", route, f.read())
                sent += 1
                if status in (200, 201):
                    docs.update(json.loads(body))
            if "inputs_cid" not in docs or "policy_hash" not in docs:
                continue
            request = {k: docs[k] for k in ("inputs_cid", "policy_id", "policy_hash")}
            call(port, "POST", f"/rewarder/epochs/{urllib.parse.quote(docs['epoch'], safe='')}/compute"
                 "?allocations=false", json.dumps(request).encode(), {"X-Corr-ID": f"load-{repeat}-{sent}"})
            sent += 1
    for port in (micro, macro):  # over the tenant rate (TENANT_RPS_MAX=20): some 429
        for _ in range(40):
            call(port, "GET", "/rewarder/epochs/none")
            sent += 1
        call(port, "GET", "/no/such/route")
        sent += 1
    return sent


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="debug", choices=["debug", "release"])
    args = parser.parse_args()
    started = time.monotonic()
    binary = lambda name: os.path.join(TARGET, args.profile, name)  # noqa: E731
    for name in ("rewarder-micronode", "rewarder-macronode", "rewarder-testkit"):
        if not os.path.exists(binary(name)):
            raise SystemExit(f"{binary(name)} missing: cargo build -p {name} first")
    prometheus_bin = shutil.which("prometheus") or "/usr/bin/prometheus"
    scratch = tempfile.mkdtemp(prefix="check-dashboard-")
    procs = Processes(scratch)
    try:
        ledger_port, micro, macro, prom_port = free_port(), free_port(), free_port(), free_port()
        procs.start("ledger-sim", [binary("rewarder-testkit"), "ledger-sim", "--bind", f"127.0.0.1:{ledger_port}"],
                    wait_for=lambda p: http_ok(p, "/v1/health"), port=ledger_port)
        node_env = {"LEDGER_URL": f"http://127.0.0.1:{ledger_port}", "TENANT_RPS_MAX": "20", "LOG": "warn",
                    "AMNESIA_DIR": "", "LOG_FORMAT": "json", "TRACE_SAMPLE": "0.1"}
        procs.start("micronode", [binary("rewarder-micronode"), "serve"],
                    {**node_env, "BIND_ADDR": f"127.0.0.1:{micro}"}, lambda p: http_ok(p, "/readyz"), micro)
        procs.start("macronode", [binary("rewarder-macronode"), "serve"],
                    {**node_env, "BIND_ADDR": f"127.0.0.1:{macro}", "CONCURRENCY_COMPUTE_WORKERS": "2"},
                    lambda p: http_ok(p, "/readyz"), macro)
        config = os.path.join(scratch, "prometheus.yml")
        with open(config, "w") as f:
            json.dump({
                "global": {"scrape_interval": f"{SCRAPE_S}s", "evaluation_interval": f"{SCRAPE_S}s"},
                "rule_files": [RULES],
                "scrape_configs": [{"job_name": "svc-rewarder",
                                    "static_configs": [{"targets": [f"127.0.0.1:{micro}", f"127.0.0.1:{macro}"]}]}],
            }, f)
        procs.start("prometheus", [prometheus_bin, f"--config.file={config}",
                                   f"--storage.tsdb.path={os.path.join(scratch, 'tsdb')}",
                                   f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"],
                    wait_for=lambda p: http_ok(p, "/-/ready"), port=prom_port)
        prom = Prometheus(prom_port)
        t0 = time.time()
        time.sleep(3 * SCRAPE_S)
        sent = load(micro, macro, scratch, binary("rewarder-testkit"))
        say(f"load: {sent} requests in {time.time() - t0:.1f} s to the micronode and the macronode")
        # Enough scrapes after the load for the rate windows (15 s) and the rules to see it.
        time.sleep(6 * SCRAPE_S)
        t1 = time.time()

        exported = metric_names_exported(micro) | metric_names_exported(macro)
        with open(RULES) as f:
            import yaml  # PyYAML: installed by scripts/setup.sh
            rules = [r for g in yaml.safe_load(f)["groups"] for r in g["rules"]]
        recorded = {r["record"] for r in rules if "record" in r}
        known = exported | recorded | PROMETHEUS_NAMES
        failures, empty, passed = [], [], 0

        def check(what, expr):
            nonlocal passed
            unknown = names_in(expr) - known
            answer = prom.range(expr, t0, t1)
            if answer.get("status") != "success":
                failures.append(f"{what}: {answer.get('error')} — {expr}")
            elif unknown:
                failures.append(f"{what}: names {sorted(unknown)}, exported by neither node — {expr}")
            else:
                passed += 1
                series = answer["data"]["result"]
                if not any(s["values"] for s in series):
                    empty.append(what)
                return len(series)
            return None

        with open(DASHBOARD) as f:
            board = json.load(f)
        panels = [p for p in board["panels"] if p["type"] != "row"]
        views = [("fleet", ".*", ".*")] + [("node " + n, ".*", f"127.0.0.1:{p}")
                                           for n, p in (("micronode", micro), ("macronode", macro))]
        for view, job, instance in views:
            for panel in panels:
                for t in panel["targets"]:
                    expr = (t["expr"].replace("$__rate_interval", RATE_INTERVAL)
                            .replace("$job", job).replace("$instance", instance))
                    n = check(f"[{view}] {panel['title']} / {t['legendFormat'] or t['refId']}", expr)
                    if view == "fleet" and n is not None:
                        say(f"  ok  {n:3d} series  {panel['title']} / {t['legendFormat'] or t['refId']}")
        for var in board["templating"]["list"]:
            m = re.fullmatch(r"label_values\((.*), (\w+)\)", var.get("definition", ""))
            if m:
                selector = m.group(1).replace("$job", ".*")
                answer = prom.get("/api/v1/series", **{"match[]": selector, "start": t0, "end": t1})
                values = sorted({s.get(m.group(2)) for s in answer.get("data", [])})
                if answer.get("status") != "success" or not values:
                    failures.append(f"variable {var['name']}: {answer.get('error') or 'no values'}")
                else:
                    passed += 1
                    say(f"  ok  variable {var['name']}: {values}")

        groups = prom.get("/api/v1/rules")["data"]["groups"]
        evaluated = [r for g in groups for r in g["rules"]]
        if len(evaluated) != len(rules):
            failures.append(f"Prometheus loaded {len(evaluated)} rules, alerts.yml has {len(rules)}")
        for r in evaluated:
            label = r["name"]
            if r.get("health") != "ok" or r.get("lastError"):
                failures.append(f"rule {label}: health {r.get('health')} {r.get('lastError', '')}")
            if r["type"] == "recording":
                check(f"rule {label}", r["query"])
                check(f"recorded {label}", label)
            else:
                unknown = names_in(r["query"]) - known
                if unknown:
                    failures.append(f"alert {label}: names {sorted(unknown)}, exported by neither node")
                else:
                    passed += 1
        firing = sorted({r["name"] for r in evaluated if r["type"] == "alerting" and r.get("alerts")})
        tenant = prom.get("/api/v1/series", **{"match[]": '{tenant!=""}', "start": t0, "end": t1})
        if tenant.get("data"):
            failures.append(f"series with a tenant label: {tenant['data'][:3]}")

        say(f"{len(panels)} panels x {len(views)} views, {len(rules)} rules ({len(recorded)} recording), "
            f"{len(exported)} metric names exported; alerts pending or firing during the run: {firing or 'none'}")
        for e in sorted(set(x.split('] ', 1)[-1] for x in empty)):
            say(f"  empty (no sample in the run): {e}")
        for f in failures:
            say(f"  FAILED {f}")
        say(f"{passed} passed, {len(failures)} failed in {time.monotonic() - started:.1f} s")
        if time.monotonic() - started > DEADLINE_S:
            failures.append(f"took longer than {DEADLINE_S} s")
        return 1 if failures else 0
    finally:
        procs.stop()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
