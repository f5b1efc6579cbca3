#!/usr/bin/env python3
"""Prints the deltas of scenario results against the committed baselines (seed §5 gates).

For every SCENARIO-PROFILE-SCALE.json baseline (seed §8.2 format) it compares `observed`:
  p95_ms, p99_ms  ↑ > 10% → REGRESSION      rps           ↓ > 10% → REGRESSION
  cpu_mean_pct    ↑ > 15% → REGRESSION      rss_mb        ↑ > 15% → REGRESSION
and prints each result against its own `targets` (p95/p99 ceilings, rps floor).

  compare.py --current DIR        baselines: testing/performance/baselines (committed files,
                                  as in git HEAD); current: DIR (run_scenario.sh --out-dir DIR)
  compare.py                      baselines: git HEAD's version of each file; current: the
                                  working tree's (after run_scenario.sh rewrote them in place)
  --fail                          exit 1 on any regression (the nightly job sets it)

Latency and throughput on a shared machine are noisy: a single regression here is a signal to
re-run, not a verdict; the deterministic CI gate is scripts/perf-gate.sh (instruction counts).
"""

import argparse
import glob
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BASELINES = os.path.join(HERE, "baselines")

# (metric, direction, limit %): +1 = higher is worse, -1 = lower is worse.
GATES = [("p95_ms", +1, 10), ("p99_ms", +1, 10), ("rps", -1, 10), ("cpu_mean_pct", +1, 15), ("rss_mb", +1, 15)]


def head_version(path):
    rel = os.path.relpath(path, ROOT)
    try:
        out = subprocess.run(["git", "show", f"HEAD:{rel}"], cwd=ROOT, capture_output=True, check=True)
    except subprocess.CalledProcessError:
        return None
    return json.loads(out.stdout)


def is_scenario(doc):
    return isinstance(doc, dict) and "observed" in doc and "profile" in doc and "scenario" in doc


def compare(name, base, cur):
    regressions = []
    print(f"{name}  ({base.get('timestamp', '?')} → {cur.get('timestamp', '?')})")
    print(f"  {'metric':<13} {'baseline':>10} {'current':>10} {'delta':>9}  verdict")
    for metric, direction, limit in GATES:
        b, c = base["observed"].get(metric), cur["observed"].get(metric)
        if b is None or c is None:
            print(f"  {metric:<13} {str(b):>10} {str(c):>10} {'':>9}  (missing)")
            continue
        delta = (c - b) * 100.0 / b if b else 0.0
        worse = delta * direction > limit
        verdict = f"REGRESSION (> {limit}%)" if worse else "ok"
        if worse:
            regressions.append(f"{name}: {metric} {delta:+.1f}%")
        print(f"  {metric:<13} {b:>10} {c:>10} {delta:>+8.1f}%  {verdict}")
    t, o = cur.get("targets", {}), cur["observed"]
    slo = []
    if t.get("p95_ms") is not None:
        slo.append(f"p95 {o['p95_ms']} ms {'≤' if o['p95_ms'] <= t['p95_ms'] else '>'} {t['p95_ms']}")
    if t.get("p99_ms") is not None:
        slo.append(f"p99 {o['p99_ms']} ms {'≤' if o['p99_ms'] <= t['p99_ms'] else '>'} {t['p99_ms']}")
    if t.get("rps") is not None:
        slo.append(f"rps {o['rps']} {'≥' if o['rps'] >= t['rps'] else '<'} {t['rps']}")
    bd, cd = base.get("details", {}), cur.get("details", {})
    for key in ("connections", "offered_rate_rps", "allocations_in_answers", "dry_run", "node_env"):
        if bd.get(key) != cd.get(key) and key != "node_env":
            slo.append(f"{key} differs ({bd.get(key)} vs {cd.get(key)}): not comparable")
    if o.get("pq_on") != base["observed"].get("pq_on"):
        slo.append("pq_on differs from the baseline: not comparable (seed §0)")
    print("  targets: " + "; ".join(slo))
    return regressions


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--baselines", default=BASELINES)
    ap.add_argument("--current", help="directory of fresh results (default: working tree vs git HEAD)")
    ap.add_argument("--fail", action="store_true", help="exit 1 on any regression")
    a = ap.parse_args()
    regressions, compared = [], 0
    for path in sorted(glob.glob(os.path.join(a.baselines, "*.json"))):
        name = os.path.basename(path)
        if a.current:
            with open(path) as f:
                base = json.load(f)
            cur_path = os.path.join(a.current, name)
            if not os.path.exists(cur_path):
                continue
            with open(cur_path) as f:
                cur = json.load(f)
        else:
            base = head_version(path)
            with open(path) as f:
                cur = json.load(f)
            if base is None:
                print(f"{name}: new (not in git HEAD), nothing to compare")
                continue
        if not (is_scenario(base) and is_scenario(cur)):
            continue
        compared += 1
        regressions += compare(name, base, cur)
    if a.current:
        for path in sorted(glob.glob(os.path.join(a.current, "*.json"))):
            if not os.path.exists(os.path.join(a.baselines, os.path.basename(path))):
                print(f"{os.path.basename(path)}: no committed baseline (new scenario?)")
    print(f"compared {compared} scenario result(s); {len(regressions)} regression(s)")
    for r in regressions:
        print(f"  REGRESSION {r}")
    if regressions and a.fail:
        sys.exit(1)


if __name__ == "__main__":
    main()
