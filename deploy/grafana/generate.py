#!/usr/bin/env python3
"""Generates deploy/grafana/svc-rewarder.json, the svc-rewarder dashboard, from the panel list
below (plain Python: no Grafana library needed).

    python3 deploy/grafana/generate.py           # rewrite the JSON
    python3 deploy/grafana/generate.py --check   # fail if the JSON is not this script's output,
                                                 # or an alert's `panel` annotation names no panel

One dashboard serves one node and the fleet: the `job` and `instance` variables select the
series (All = the fleet). SLO lines are drawn as threshold lines: compute p95 500 ms and p99
2 s, burn rates 2x / 1x / 0.5x of the §1.5 windows, the dup ratio and 429/503 shares at 1 %,
the ceilings of PERFORMANCE.md §3 (RSS 1.5 GiB, CPU 70 % of the 2-CPU limit, FDs 30 % of the
limit). Every query is evaluated against live nodes by scripts/check-dashboard.sh.
"""

import json
import pathlib
import sys

import yaml

HERE = pathlib.Path(__file__).resolve().parent
OUT = HERE / "svc-rewarder.json"
RULES = HERE.parent / "prometheus" / "alerts.yml"

SEL = 'job=~"$job",instance=~"$instance"'
JOB = 'job=~"$job"'
DS = {"type": "prometheus", "uid": "${datasource}"}


def target(expr, legend, ref):
    return {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": ref, "range": True}


def thresholds(lines, base="green"):
    steps = [{"color": base, "value": None}]
    for value, color in lines:
        steps.append({"color": color, "value": value})
    return {"mode": "absolute", "steps": steps}


def timeseries(title, exprs, unit, lines=(), description="", stack=False, max_=None, decimals=None):
    """A time series panel; `lines` are (value, color) SLO or ceiling lines."""
    defaults = {
        "unit": unit,
        "custom": {
            "drawStyle": "line",
            "lineWidth": 1,
            "fillOpacity": 10 if stack else 0,
            "showPoints": "never",
            "spanNulls": False,
            "stacking": {"mode": "normal" if stack else "none", "group": "A"},
            "thresholdsStyle": {"mode": "line+area" if lines else "off"},
        },
        "thresholds": thresholds(lines, base="transparent"),
    }
    if max_ is not None:
        defaults["max"] = max_
    if decimals is not None:
        defaults["decimals"] = decimals
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DS,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "legend": {"displayMode": "table", "placement": "bottom", "calcs": ["lastNotNull", "max"]},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        "targets": [target(e, leg, chr(ord("A") + i)) for i, (e, leg) in enumerate(exprs)],
    }


def stat(title, expr, unit, lines, description=""):
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": DS,
        "fieldConfig": {"defaults": {"unit": unit, "thresholds": thresholds(lines)}, "overrides": []},
        "options": {"colorMode": "background", "graphMode": "area", "reduceOptions": {"calcs": ["lastNotNull"]}},
        "targets": [target(expr, "", "A")],
    }


def quantile(q, by="scale"):
    return (
        f"histogram_quantile({q}, sum by ({by}, le) "
        f"(rate(reward_compute_latency_seconds_bucket{{{SEL}}}[$__rate_interval])))"
    )


def share(code):
    total = f"sum(rate(http_requests_total{{{SEL}}}[$__rate_interval]))"
    return f'(sum(rate(http_requests_total{{{SEL},code="{code}"}}[$__rate_interval])) or 0 * {total}) / {total}'


ROWS = [
    ("Service level objectives (seed §1.1)", [
        timeseries(
            "Compute latency by scale",
            [(quantile(0.5), "p50 {{scale}}"), (quantile(0.95), "p95 {{scale}}"), (quantile(0.99), "p99 {{scale}}")],
            "s",
            lines=[(0.5, "orange"), (2, "red")],
            description="reward_compute_latency_seconds by epoch scale (S ≤ 1k actors, M ≤ 10k, L more). "
            "SLO: p95 < 500 ms (orange), p99 < 2 s (red). Page: p95 > 1 s for 5 min.",
        ),
        timeseries(
            "Error budget burn (5xx)",
            [
                (f"job:rewarder_http_5xx:ratio_rate15m{{{JOB}}} / 0.001", "15 min {{job}}"),
                (f"job:rewarder_http_5xx:ratio_rate1h{{{JOB}}} / 0.001", "1 h {{job}}"),
                (f"job:rewarder_http_5xx:ratio_rate24h{{{JOB}}} / 0.001", "24 h {{job}}"),
            ],
            "x",
            lines=[(0.5, "yellow"), (1, "orange"), (2, "red")],
            description="5xx ratio (503 excluded) over the 0.1 % budget. Page: 15 min > 2x or 1 h > 1x; "
            "ticket: 24 h > 0.5x (seed §1.5).",
        ),
        timeseries(
            "Availability burn (/readyz)",
            [
                (f"job:rewarder_unavailable:ratio_avg15m{{{JOB}}} / 0.001", "15 min {{job}}"),
                (f"job:rewarder_unavailable:ratio_avg1h{{{JOB}}} / 0.001", "1 h {{job}}"),
                (f"job:rewarder_unavailable:ratio_avg24h{{{JOB}}} / 0.001", "24 h {{job}}"),
            ],
            "x",
            lines=[(0.5, "yellow"), (1, "orange"), (2, "red")],
            description="Share of node-time not ready (ready 0 or scrape failed) over the 0.1 % budget "
            "(SLO 99.9 %/month). Same burn-rate pairs as the 5xx budget.",
        ),
        timeseries(
            "Readiness",
            [(f"ready{{{SEL}}}", "ready {{instance}}"), (f'up{{{SEL}}}', "scraped {{instance}}")],
            "short",
            max_=1,
            decimals=0,
            description="ready: 1 while /readyz answers 200. up: the scrape succeeded.",
        ),
        stat(
            "Invariant failures (24 h)",
            f"sum(increase(reward_invariant_fail_total{{{SEL}}}[24h]))",
            "short",
            [(1, "red")],
            description="SLO: 0 a day. Any increase pages (RewarderInvariantViolation).",
        ),
    ]),
    ("Traffic and admission", [
        timeseries(
            "Runs/s by outcome",
            [(f"sum by (status) (rate(reward_runs_total{{{SEL}}}[$__rate_interval]))", "{{status}}")],
            "reqps",
            stack=True,
            description="reward_runs_total: ok (computed), cached (answered again), invariant_violation, error.",
        ),
        timeseries(
            "Responses/s by status",
            [(f"sum by (code) (rate(http_requests_total{{{SEL}}}[$__rate_interval]))", "{{code}}")],
            "reqps",
            stack=True,
        ),
        timeseries(
            "Rejected by reason",
            [
                (f"sum by (reason) (rate(rejected_total{{{SEL}}}[$__rate_interval]))", "{{reason}}/s"),
                (share("429"), "429 share"),
                (share("503"), "503 share"),
            ],
            "short",
            lines=[(0.01, "orange")],
            description="rejected_total by reason; the 429 and 503 shares of all responses "
            "(SLO < 1 % sustained, orange line; ticket after 15 min).",
        ),
        timeseries(
            "Work queue",
            [
                (f"queue_depth{{{SEL}}}", "depth {{instance}}"),
                (f"work_queue_max{{{SEL}}}", "WORK_QUEUE_MAX {{instance}}"),
                (f"0.8 * work_queue_max{{{SEL}}}", "80% {{instance}}"),
                (f"inflight{{{SEL}}}", "in flight {{instance}}"),
            ],
            "short",
            description="Requests waiting for a compute worker against WORK_QUEUE_MAX; ticket above 80 % "
            "for 10 min.",
        ),
    ]),
    ("Ledger", [
        timeseries(
            "Ledger intents by result",
            [(f"sum by (result) (rate(ledger_intents_total{{{SEL}}}[$__rate_interval]))", "{{result}}")],
            "short",
            stack=True,
            description="ledger_intents_total: accepted, dup (a retry), conflict (an invariant failure), "
            "error, quarantined.",
        ),
        timeseries(
            "Dup ratio",
            [(
                f'sum(rate(ledger_intents_total{{{SEL},result="dup"}}[1h]))'
                f' / sum(rate(ledger_intents_total{{{SEL},result=~"accepted|dup|conflict"}}[1h]))',
                "dup / answered (1 h)",
            )],
            "percentunit",
            lines=[(0.01, "red")],
            description="SLO ≤ 1 % (red line); ticket when above for 15 min.",
        ),
        timeseries(
            "Ledger egress",
            [
                (
                    "histogram_quantile(0.99, sum by (le) "
                    f"(rate(ledger_egress_latency_seconds_bucket{{{SEL}}}[$__rate_interval])))",
                    "p99 latency (s)",
                ),
                (f"sum(rate(ledger_egress_errors_total{{{SEL}}}[$__rate_interval])) * 60", "errors/min"),
            ],
            "short",
            lines=[(0.25, "orange"), (5, "red")],
            description="Budget p99 < 250 ms (orange); page at > 5 errors/min (red) for 5 min or p99 over "
            "budget for 10 min.",
        ),
        timeseries(
            "Brownout and quarantine",
            [
                (f"ledger_degraded{{{SEL}}}", "brownout {{instance}}"),
                (f"quarantine_queue_depth{{{SEL}}}", "quarantined intents {{instance}}"),
            ],
            "short",
            description="ledger_degraded = 1: quarantine-only, computes answered 202. quarantine_queue_depth: "
            "intents waiting to be re-sent (LEDGER_QUARANTINE_MAX refuses new runs with 503).",
        ),
    ]),
    ("Process (seed §1.3 ceilings)", [
        timeseries(
            "Memory (RSS)",
            [(f"process_resident_memory_bytes{{{SEL}}}", "{{instance}}")],
            "bytes",
            lines=[(1.5 * 1024**3, "red")],
            description="Ceiling: steady RSS < 1.5 GiB.",
        ),
        timeseries(
            "CPU",
            [(f"rate(process_cpu_seconds_total{{{SEL}}}[$__rate_interval])", "{{instance}}")],
            "short",
            lines=[(1.4, "red")],
            description="CPU cores used. Ceiling: 70 % of the 2-CPU container limit (1.4); the HPA scales at "
            "70 % of the 1-CPU request.",
        ),
        timeseries(
            "File descriptors",
            [
                (f"process_open_fds{{{SEL}}} / process_max_fds{{{SEL}}}", "{{instance}}"),
            ],
            "percentunit",
            lines=[(0.3, "red")],
            description="Open FDs over the limit. Ceiling: < 30 %.",
        ),
        timeseries(
            "Amnesia spills",
            [(f"sum(rate(amnesia_spill_total{{{SEL}}}[$__rate_interval]))", "spills/s")],
            "short",
            description="Micronode: artifacts kept in memory because tmpfs writes failed or were slow.",
        ),
    ]),
]


def variable(name, query, label, include_all=True):
    return {
        "type": "query",
        "name": name,
        "label": label,
        "datasource": DS,
        "query": {"query": query, "refId": name},
        "definition": query,
        "refresh": 2,
        "includeAll": include_all,
        "multi": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
    }


def dashboard():
    panels, y, pid = [], 0, 1
    for title, row in ROWS:
        panels.append({"type": "row", "title": title, "collapsed": False, "id": pid,
                       "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
        pid, y = pid + 1, y + 1
        for i, panel in enumerate(row):
            w = 8 if panel["type"] == "timeseries" else 4
            panel = {"id": pid, "gridPos": {"h": 8, "w": w, "x": (i % 3) * 8, "y": y + (i // 3) * 8}, **panel}
            panels.append(panel)
            pid += 1
        y += ((len(row) + 2) // 3) * 8
    return {
        "title": "svc-rewarder",
        "uid": "svc-rewarder",
        "description": "svc-rewarder SLOs, admission, ledger and process ceilings, for one node or the fleet "
        "(generated by deploy/grafana/generate.py).",
        "tags": ["svc-rewarder", "slo"],
        "timezone": "utc",
        "editable": False,
        "graphTooltip": 1,
        "refresh": "30s",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [
            {"type": "datasource", "name": "datasource", "label": "Prometheus", "query": "prometheus",
             "current": {}, "hide": 0},
            variable("job", 'label_values(build_info{profile=~"micronode|macronode"}, job)', "job"),
            variable("instance", 'label_values(build_info{job=~"$job"}, instance)', "node"),
        ]},
        "annotations": {"list": []},
        "links": [],
        "panels": panels,
    }


def render():
    return json.dumps(dashboard(), indent=2, ensure_ascii=False) + "\n"


def panel_titles(board):
    return {p["title"] for p in board["panels"] if p["type"] != "row"}


def main(argv):
    text = render()
    if "--check" not in argv:
        OUT.write_text(text)
        print(f"written {OUT}")
        return 0
    errors = []
    if not OUT.exists() or OUT.read_text() != text:
        errors.append(f"{OUT} is not the output of {pathlib.Path(__file__).name}: run it and commit")
    titles = panel_titles(dashboard())
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            panel = rule.get("annotations", {}).get("panel")
            if "alert" in rule and panel not in titles:
                errors.append(f"{rule['alert']}: panel {panel!r} is not on the dashboard")
    for e in errors:
        print(e, file=sys.stderr)
    if not errors:
        print(f"  SUCCESS: {len(titles)} panels; every alert names one")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
