#!/usr/bin/env python3
"""The HTTP server's figures (PERFORMANCE.md "transport"), measured on loopback, release builds.

  floor        a stored L run's answer fetched by one curl process per request, against nginx
               serving the same bytes as a static file: --repeat each, interleaved, medians and
               their ratio (goal <= 1.5x); a kept-alive wrk median beside it, for information.
  latency      HTTP p95 of distinct M and L computes with full allocations over one kept-alive
               connection, read with large reads (benches example http_latency), against the
               in-process Service p95 of the same requests (benches example service_latency), in
               --rounds interleaved rounds of the same number of requests each, samples pooled
               (goal: +0.5 ms M, +1.5 ms L); wrk -c1's figures beside them (it reads 8 KiB at a
               time, a client cost that grows with the answer).
  cpu          wrk on distinct M runs, full answer against ?allocations=false: the node's CPU
               seconds per run from /proc/PID/stat, and runs/s (goal: full <= bare + 0.4 ms), on
               the micronode and the macronode.
  connections  --idle sockets held --hold seconds by a node with CONNECTIONS_MAX=10240: its
               threads, VmRSS and descriptors, and its M compute p95 over --requests requests
               interleaved with an idle node's (goal: threads <= workers + 3, VmRSS <= 64 MiB,
               one descriptor per connection, p95 within 1.2x of the idle node).

Usage: transport.py [floor|latency|cpu|connections ...] [--seconds 10] [--repeat 15] [--rounds 5]
Build first: cargo build --release -p rewarder-micronode -p rewarder-macronode -p rewarder-testkit
             cargo build --release -p rewarder-benches --example service_latency --example http_latency
Prints one JSON line per figure.
"""

import argparse
import http.client
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import tempfile
import time

import common
import throughput

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_ENV = {"TENANT_RPS_MAX": "1000000", "RUNS_MAX": "16", "CONNECTIONS_MAX": "1024"}


def curl_seconds(url):
    out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{time_total} %{http_code} %{size_download}", url],
                         check=True, capture_output=True, text=True).stdout.split()
    assert out[1] == "200", out
    return float(out[0]), int(out[2])


def wrk_median_ms(url, seconds):
    out = subprocess.run(["wrk", "-t1", "-c1", f"-d{seconds}s", "--latency", url],
                         check=True, capture_output=True, text=True).stdout
    line = next(l for l in out.splitlines() if l.strip().startswith("50%"))
    value = line.split()[1]
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}
    for unit, factor in scale.items():
        if value.endswith(unit) and not (unit == "s" and value.endswith(("ms", "us"))):
            return round(float(value[: -len(unit)]) * factor, 3)
    raise ValueError(value)


class Nginx(common.Stopped):
    """nginx serving `root` on a free loopback port, from a configuration of its own."""

    def __init__(self, root, tmp):
        self.port = common.free_port()
        conf = os.path.join(tmp, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""daemon off; worker_processes 1; pid {tmp}/nginx.pid; error_log {tmp}/nginx.err;
events {{ worker_connections 64; }}
http {{ access_log off; sendfile on; tcp_nopush on; tcp_nodelay on; default_type application/json;
  client_body_temp_path {tmp}; proxy_temp_path {tmp}; fastcgi_temp_path {tmp}; uwsgi_temp_path {tmp}; scgi_temp_path {tmp};
  server {{ listen 127.0.0.1:{self.port}; root {root}; }} }}
""")
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        self.proc = subprocess.Popen([nginx, "-c", conf, "-p", tmp], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise SystemExit("nginx did not start")


def stored_run(conn, scale, tmp, epoch):
    """Uploads a scale's documents, computes them once (dry run); returns the compute body."""
    inputs, policy = common.generate(scale, tmp, epoch=epoch)
    cid, pid, phash = common.upload(conn, inputs, policy)
    body = json.dumps({"inputs_cid": cid, "policy_id": pid, "policy_hash": phash, "dry_run": True})
    status, answer = common.request(conn, "POST", f"/rewarder/epochs/{epoch}/compute", body)
    assert status == 200, (status, answer[:300])
    return body


def floor(a):
    with tempfile.TemporaryDirectory() as tmp, common.Node("rewarder-micronode", env=NODE_ENV) as node:
        conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=120)
        stored_run(conn, "L", tmp, "floor")
        status, answer = common.request(conn, "GET", "/rewarder/epochs/floor")
        assert status == 200, (status, answer[:300])
        www = os.path.join(tmp, "www")
        os.makedirs(www)
        with open(os.path.join(www, "answer.json"), "wb") as f:
            f.write(answer)
        node_url = f"http://127.0.0.1:{node.port}/rewarder/epochs/floor"
        with Nginx(www, tmp) as nginx:
            nginx_url = f"http://127.0.0.1:{nginx.port}/answer.json"
            times = {"node": [], "nginx": []}
            for _ in range(a.repeat):
                for name, url in (("node", node_url), ("nginx", nginx_url)):
                    seconds, size = curl_seconds(url)
                    assert size == len(answer), (name, size, len(answer))
                    times[name].append(seconds * 1e3)
            node_ms, nginx_ms = statistics.median(times["node"]), statistics.median(times["nginx"])
            print(json.dumps({
                "figure": "floor", "bytes": len(answer), "curl_requests_each": a.repeat,
                "node_median_ms": round(node_ms, 3), "nginx_median_ms": round(nginx_ms, 3),
                "ratio": round(node_ms / nginx_ms, 2),
                "wrk_keepalive_node_median_ms": wrk_median_ms(node_url, a.seconds),
                "wrk_keepalive_nginx_median_ms": wrk_median_ms(nginx_url, a.seconds),
            }), flush=True)


def percentile(samples, p):
    """The p-th percentile as rewarder_benches::latency_json takes it (nearest rank)."""
    ranked = sorted(samples)
    return ranked[min(max(1, -(-len(ranked) * p // 100)), len(ranked)) - 1]


def latency(a):
    client = os.path.join(common.TARGET, "release", "examples", "http_latency")
    example = os.path.join(common.TARGET, "release", "examples", "service_latency")
    run = lambda argv: json.loads(subprocess.run(argv, check=True, capture_output=True, text=True).stdout)
    for scale in ("M", "L"):
        http_ms, service_ms = [], []
        with tempfile.TemporaryDirectory() as tmp, common.Node("rewarder-micronode", env=NODE_ENV) as node:
            bodies, _ = throughput.prepare(node.port, scale, 64, tmp)
            path = "/rewarder/epochs/perf/compute"
            throughput.run_wrk(node.port, 1, 2, bodies, path=path)
            wrk_res = throughput.run_wrk(node.port, 1, a.seconds, bodies, path=path, statuses=False)
            assert wrk_res["statuses"].get("not_2xx_3xx", 1) == 0, wrk_res
            # Rounds of HTTP then in process, the same number of requests each: drift of the
            # machine (other work, the host) then weighs on both sides alike.
            for _ in range(a.rounds):
                got = run([client, str(node.port), path, bodies, str(a.seconds / a.rounds)])
                http_ms += got["samples_ms"]
                service_ms += run([example, scale, str(max(20, got["requests"]))])["samples_ms"]
        http_p95, service_p95 = percentile(http_ms, 95), percentile(service_ms, 95)
        print(json.dumps({
            "figure": "latency", "scale": scale, "allocations": True, "rounds": a.rounds,
            "http_requests": len(http_ms), "http_p50_ms": round(percentile(http_ms, 50), 3), "http_p95_ms": round(http_p95, 3),
            "service_runs": len(service_ms), "service_p50_ms": round(percentile(service_ms, 50), 3),
            "service_p95_ms": round(service_p95, 3), "p95_delta_ms": round(http_p95 - service_p95, 3),
            "wrk": {"requests": wrk_res["requests"], "p50_ms": wrk_res["p50_ms"], "p95_ms": wrk_res["p95_ms"]},
        }), flush=True)


def cpu(a):
    for exe, env in (("rewarder-micronode", {}), ("rewarder-macronode", {"CONCURRENCY_COMPUTE_WORKERS": "2"})):
        with tempfile.TemporaryDirectory() as tmp, common.Node(exe, env={**NODE_ENV, **env}) as node:
            bodies, _ = throughput.prepare(node.port, "M", 256, tmp)
            per_run = {}
            for label, path in (("full", "/rewarder/epochs/perf/compute"), ("bare", throughput.PATH)):
                throughput.run_wrk(node.port, 16, 2, bodies, path=path, statuses=False)
                before, cpu0 = common.metrics(node.port), common.cpu_seconds(node.proc.pid)
                # Runs are counted from the node's metrics, so wrk need not hand bodies to Lua
                # (which on 2 cores takes CPU from the node it measures).
                res = throughput.run_wrk(node.port, 16, a.seconds, bodies, path=path, statuses=False)
                after, cpu1 = common.metrics(node.port), common.cpu_seconds(node.proc.pid)
                runs = after['reward_runs_total{status="ok"}'] - before['reward_runs_total{status="ok"}']
                per_run[label] = {"runs_per_s": res["rps"], "cpu_ms_per_run": round((cpu1 - cpu0) * 1e3 / max(runs, 1), 3),
                                  "p95_ms": res["p95_ms"], "runs": int(runs), "not_2xx_3xx": res["statuses"]["not_2xx_3xx"]}
            print(json.dumps({"figure": "cpu", "exe": exe, "scale": "M", "conns": 16, **per_run,
                              "full_minus_bare_ms": round(per_run["full"]["cpu_ms_per_run"] - per_run["bare"]["cpu_ms_per_run"], 3)}),
                  flush=True)


def proc_status(pid):
    status = open(f"/proc/{pid}/status").read()
    field = lambda name: int(next(l for l in status.splitlines() if l.startswith(name)).split()[1])
    return {"threads": field("Threads:"), "vmrss_kib": field("VmRSS:"), "fds": len(os.listdir(f"/proc/{pid}/fd"))}


def connections(a):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < a.idle + 512:
        raise SystemExit(f"RLIMIT_NOFILE {hard} is below {a.idle} + 512")
    env = {**NODE_ENV, "CONNECTIONS_MAX": "10240", "CONNECTIONS_PER_SOURCE_MAX": "10240", "IDLE_TIMEOUT_MS": str((a.hold + 30) * 1000),
           "IDLE_TIMEOUT_CROWDED_MS": str((a.hold + 30) * 1000)}
    with tempfile.TemporaryDirectory() as tmp, common.Node("rewarder-micronode", env=env) as busy, \
            common.Node("rewarder-micronode", env=env) as idle_node:
        bodies = {}
        for name, node in (("busy", busy), ("idle", idle_node)):
            sub = os.path.join(tmp, name)
            os.makedirs(sub)
            path, _ = throughput.prepare(node.port, "M", 64, sub)
            bodies[name] = [l for l in open(path).read().splitlines() if l]
        at_rest = proc_status(busy.proc.pid)
        sockets = []
        t0 = time.perf_counter()
        for _ in range(a.idle):
            s = socket.socket()
            s.connect(("127.0.0.1", busy.port))
            sockets.append(s)
        deadline = time.time() + 30
        while proc_status(busy.proc.pid)["fds"] < at_rest["fds"] + a.idle and time.time() < deadline:
            time.sleep(0.1)
        opened_s = time.perf_counter() - t0
        held = proc_status(busy.proc.pid)
        conns = {n: http.client.HTTPConnection("127.0.0.1", node.port, timeout=60) for n, node in (("busy", busy), ("idle", idle_node))}
        times = {"busy": [], "idle": []}
        hold_until = time.time() + a.hold
        i = 0
        while i < a.requests or time.time() < hold_until:
            for name in ("idle", "busy"):
                body = bodies[name][i % len(bodies[name])]
                t = time.perf_counter()
                status, _ = common.request(conns[name], "POST", throughput.PATH.replace("?allocations=false", ""), body)
                times[name].append((time.perf_counter() - t) * 1e3)
                assert status == 200, status
            i += 1
        still = proc_status(busy.proc.pid)
        alive = sum(1 for s in sockets[:: max(1, a.idle // 100)] if _open(s))
        for s in sockets:
            s.close()
        p95 = {n: common.percentile(v, 95) for n, v in times.items()}
        print(json.dumps({
            "figure": "connections", "idle_sockets": a.idle, "held_s": round(time.perf_counter() - t0, 1),
            "opened_in_s": round(opened_s, 2), "at_rest": at_rest, "holding": held, "after_requests": still,
            "fds_per_connection": round((held["fds"] - at_rest["fds"]) / a.idle, 3),
            "sampled_sockets_still_open_pct": alive, "requests_each": len(times["busy"]),
            "busy_p95_ms": round(p95["busy"], 3), "idle_p95_ms": round(p95["idle"], 3),
            "p95_ratio": round(p95["busy"] / p95["idle"], 3),
        }), flush=True)


def _open(s):
    """Whether the node still holds a socket open (no EOF waiting on it)."""
    s.setblocking(False)
    try:
        return s.recv(1) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("figures", nargs="*", default=["floor", "latency", "cpu", "connections"])
    ap.add_argument("--seconds", type=int, default=10, help="wrk duration per point")
    ap.add_argument("--repeat", type=int, default=15, help="curl requests per server (floor)")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved HTTP / in-process rounds (latency)")
    ap.add_argument("--idle", type=int, default=10000, help="idle sockets (connections)")
    ap.add_argument("--hold", type=int, default=10, help="seconds the idle sockets are held at least")
    ap.add_argument("--requests", type=int, default=200, help="computes per node (connections)")
    a = ap.parse_args()
    for figure in a.figures:
        {"floor": floor, "latency": latency, "cpu": cpu, "connections": connections}[figure](a)


if __name__ == "__main__":
    main()
