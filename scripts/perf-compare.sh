#!/usr/bin/env bash
# Compares the performance of two revisions built and measured in the same run on the same
# machine — no committed figure from another machine is involved:
#
#   1. instructions (the gate): callgrind Ir of one signed compute at S and M, the harness of
#      scripts/perf-gate.sh (benches/src/bin/rewarder-icount.rs, `measured_compute` only),
#      each count taken twice; exits 1 when HEAD is more than +THRESHOLD % (10) above BASE;
#   2. wall-clock (--wall N, informational): N interleaved runs of each revision's icount
#      binary (generation, parsing and one signed compute), median and minimum;
#   3. load scenarios (--scenarios, informational unless --fail-scenarios): steady, burst and
#      brownout on both nodes, each revision's binaries driven by the same harness (this
#      checkout's testing/performance/scenarios/run.py), alternating base and head, then
#      testing/performance/compare.py with BASE's results as the baselines.
#
#   scripts/perf-compare.sh [options] BASE_REV HEAD_REV
#     BASE_REV, HEAD_REV   commits (anything `git rev-parse` takes); HEAD_REV `.` = the work tree
#     --wall N             wall-clock comparison with N runs per revision (default: off)
#     --scenarios          the load scenarios (needs wrk: scripts/setup.sh wrk)
#     --seconds N          seconds per scenario run (default 20)
#     --fail-scenarios     exit 1 on a scenario regression as well (noisy on shared machines)
#     --threshold PCT      instruction limit, default 10 (%)
#     --demo-slowdown PCT  adds PCT % of BASE's count to HEAD inside the measured region
#                          (ICOUNT_EXTRA_ITERS, the icount binary only): shows the gate fail
#     --out DIR            results (summary, JSON, scenario results); default build/perf-compare/results
#
# Each revision is checked out with `git worktree` under build/perf-compare/ (removed at the
# end; PERF_COMPARE_KEEP=1 keeps them) and built with the shipping release profile into one
# shared CARGO_TARGET_DIR (build/perf-compare/target: the dependencies are built once), its
# binaries copied to build/perf-compare/bin-{base,head}/release/.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"

usage() { sed -n '2,30p' "$0" >&2; exit 2; }
wall=0
scenarios=0
seconds=20
fail_scenarios=0
threshold=10
demo_pct=0
out="$root/build/perf-compare/results"
revs=()
while [ $# -gt 0 ]; do
  case "$1" in
    --wall) wall="${2:?--wall needs a count}"; shift ;;
    --scenarios) scenarios=1 ;;
    --seconds) seconds="${2:?--seconds needs a number}"; shift ;;
    --fail-scenarios) fail_scenarios=1 ;;
    --threshold) threshold="${2:?--threshold needs a percentage}"; shift ;;
    --demo-slowdown) demo_pct="${2:?--demo-slowdown needs a percentage}"; shift ;;
    --out) out="${2:?--out needs a directory}"; shift ;;
    -h|--help) usage ;;
    -*) echo "perf-compare: unknown option $1" >&2; usage ;;
    *) revs+=("$1") ;;
  esac
  shift
done
[ "${#revs[@]}" -eq 2 ] || usage
for n in "$wall" "$seconds" "$threshold" "$demo_pct"; do
  [[ "$n" =~ ^[0-9]+$ ]] || { echo "perf-compare: $n is not a non-negative integer" >&2; exit 2; }
done
mkdir -p "$out"
out="$(cd "$out" && pwd)"

say() { echo "perf-compare: $*" >&2; }
fail() { say "$*"; exit 2; }

# Tools: valgrind for the counts, wrk for the scenarios (scripts/setup.sh, idempotent).
command -v valgrind >/dev/null 2>&1 || bash scripts/setup.sh valgrind
if [ "$scenarios" = 1 ]; then command -v wrk >/dev/null 2>&1 || bash scripts/setup.sh wrk; fi

work="$root/build/perf-compare"
target="$work/target"
labels=(base head)
declare -A commit src
resolve() { git rev-parse --verify --quiet "$1^{commit}" || fail "$1 is not a commit of this repository"; }
commit[base]="$(resolve "${revs[0]}")"
if [ "${revs[1]}" = . ]; then
  commit[head]="work tree ($(git rev-parse --short HEAD)$(git diff --quiet HEAD -- || echo ', modified'))"
else
  commit[head]="$(resolve "${revs[1]}")"
fi

worktrees=()
tmp="$(mktemp -d)"
cleanup() {
  rm -rf "$tmp"
  if [ "${PERF_COMPARE_KEEP:-0}" != 1 ]; then
    for w in "${worktrees[@]}"; do git worktree remove --force "$w" >/dev/null 2>&1 || true; done
    git worktree prune
  fi
}
trap cleanup EXIT

# The sources of each revision: a detached worktree (same path length for base and head, so
# the file paths embedded in the binaries do not differ in length), or the work tree itself.
for l in "${labels[@]}"; do
  if [ "$l" = head ] && [ "${revs[1]}" = . ]; then
    src[$l]="$root"
    continue
  fi
  w="$work/wt-$l"
  git worktree remove --force "$w" >/dev/null 2>&1 || rm -rf "$w"
  git worktree prune
  git worktree add --detach --quiet "$w" "${commit[$l]}"
  worktrees+=("$w")
  src[$l]="$w"
done

# Build: the icount binary always; the nodes and the testkit for the scenarios.
started=$(date +%s)
for l in "${labels[@]}"; do
  say "building $l: ${commit[$l]}"
  bin="$work/bin-$l/release"
  rm -rf "$bin"
  mkdir -p "$bin"
  (cd "${src[$l]}" && CARGO_TARGET_DIR="$target" cargo build --release --locked -q -p rewarder-benches --bin rewarder-icount) \
    || fail "$l (${commit[$l]}) does not build rewarder-icount"
  cp "$target/release/rewarder-icount" "$bin/"
  if [ "$scenarios" = 1 ]; then
    (cd "${src[$l]}" && CARGO_TARGET_DIR="$target" cargo build --release --locked -q \
      -p rewarder-micronode -p rewarder-macronode -p rewarder-testkit) \
      || fail "$l (${commit[$l]}) does not build the nodes"
    for exe in rewarder-micronode rewarder-macronode rewarder-testkit; do cp "$target/release/$exe" "$bin/"; done
  fi
done
built=$(date +%s)

# 1. Instructions. ir LABEL SCALE RUN EXTRA_ITERS: the Ir total of one run under callgrind.
ir() {
  local f="$tmp/callgrind.$1.$2.$3.out" total
  ICOUNT_EXTRA_ITERS="$4" valgrind --tool=callgrind --collect-atstart=no \
    --toggle-collect='*measured_compute*' --callgrind-out-file="$f" \
    "$work/bin-$1/release/rewarder-icount" "$2" >/dev/null 2>"$tmp/valgrind.log" \
    || { cat "$tmp/valgrind.log" >&2; fail "valgrind failed on $1 $2"; }
  total="$(sed -n 's/^totals: \([0-9]*\).*/\1/p' "$f")"
  if [ -z "$total" ] || [ "$total" -eq 0 ]; then fail "no Ir total in $f"; fi
  echo "$total"
}
declare -A count
for s in S M; do
  for l in "${labels[@]}"; do
    extra=0
    if [ "$l" = head ] && [ "$demo_pct" -gt 0 ]; then
      # 4 instructions per extra iteration (scripts/perf-gate.sh).
      base_count="${count[base.$s]}"
      extra=$((base_count * demo_pct / 100 / 4))
    fi
    a="$(ir "$l" "$s" 1 "$extra")"
    b="$(ir "$l" "$s" 2 "$extra")"
    [ "$a" = "$b" ] || fail "$l $s is not deterministic ($a vs $b Ir from the same binary)"
    count[$l.$s]="$a"
  done
done
counted=$(date +%s)

# 2. Wall-clock, interleaved so that a change in the machine's load hits both alike.
wall_json="null"
if [ "$wall" -gt 0 ]; then
  : >"$tmp/wall.txt"
  for s in S M; do
    for l in "${labels[@]}"; do "$work/bin-$l/release/rewarder-icount" "$s" >/dev/null; done # warm-up
    for ((i = 0; i < wall; i++)); do
      for l in "${labels[@]}"; do
        t0=$(date +%s%N)
        "$work/bin-$l/release/rewarder-icount" "$s" >/dev/null
        t1=$(date +%s%N)
        echo "$l $s $(( (t1 - t0) / 1000 ))" >>"$tmp/wall.txt"
      done
    done
  done
  wall_json="$tmp/wall.txt"
fi

# 3. Scenarios: the same harness (this checkout's) on each revision's binaries, alternating.
scenario_status=0
if [ "$scenarios" = 1 ]; then
  rm -rf "$out/scenarios"
  for sc in steady burst brownout; do
    for exe in rewarder-micronode rewarder-macronode; do
      for l in "${labels[@]}"; do
        say "scenario $sc on $exe ($l, ${seconds}s)"
        CARGO_TARGET_DIR="$work/bin-$l" python3 testing/performance/scenarios/run.py "$sc" --exe "$exe" \
          --seconds "$seconds" --out-dir "$out/scenarios/$l" >"$out/scenarios-$l-$sc-$exe.log" 2>&1 \
          || { cat "$out/scenarios-$l-$sc-$exe.log" >&2; fail "scenario $sc on $exe ($l) failed"; }
      done
    done
  done
  compare_args=(--baselines "$out/scenarios/base" --current "$out/scenarios/head")
  [ "$fail_scenarios" = 1 ] && compare_args+=(--fail)
  python3 testing/performance/compare.py "${compare_args[@]}" | tee "$out/scenarios-compare.txt" || scenario_status=1
fi

# The verdict: instructions gate; wall-clock and scenarios inform (or gate with --fail-scenarios).
status=0
python3 - "$out" "$threshold" "$demo_pct" "$((built - started))" "$((counted - built))" \
  "${commit[base]}" "${commit[head]}" "${count[base.S]}" "${count[head.S]}" "${count[base.M]}" \
  "${count[head.M]}" "$wall_json" <<'EOF' || status=$?
import json, os, statistics, sys
(out, limit, demo, build_s, count_s, base_rev, head_rev, bs, hs, bm, hm, wall) = sys.argv[1:]
limit = float(limit)
counts = {"S": (int(bs), int(hs)), "M": (int(bm), int(hm))}
lines, failed = [], []
lines.append(f"perf-compare: base {base_rev}")
lines.append(f"perf-compare: head {head_rev}")
if int(demo):
    lines.append(f"perf-compare: DEMO: +{demo}% of base's count added to head inside the measured region")
lines.append(f"perf-compare: callgrind Ir of one signed compute, same runner, same build (limit +{limit:g}%)")
lines.append(f"  {'scale':<5} {'base':>12} {'head':>12} {'delta':>9}")
result = {"base": base_rev, "head": head_rev, "threshold_pct": limit, "icount": {}, "wall_us": None}
for scale, (b, h) in counts.items():
    delta = (h - b) * 100.0 / b
    verdict = "FAIL" if delta > limit else "ok"
    if delta > limit:
        failed.append(scale)
    lines.append(f"  {scale:<5} {b:>12,} {h:>12,} {delta:>+8.2f}%  {verdict}")
    result["icount"][scale] = {"base": b, "head": h, "delta_pct": round(delta, 3)}
lines.append(f"  (build {build_s}s, counting {count_s}s; each count taken twice and identical)")
if wall != "null":
    runs = {}
    for line in open(wall):
        label, scale, us = line.split()
        runs.setdefault(scale, {}).setdefault(label, []).append(int(us))
    lines.append("perf-compare: wall-clock of the whole icount process, interleaved runs (informational)")
    lines.append(f"  {'scale':<5} {'base med/min ms':>18} {'head med/min ms':>18} {'median':>9}")
    result["wall_us"] = runs
    for scale, by in runs.items():
        b, h = by["base"], by["head"]
        bmed, hmed = statistics.median(b), statistics.median(h)
        lines.append(f"  {scale:<5} {bmed/1000:>9.2f}/{min(b)/1000:<8.2f} {hmed/1000:>9.2f}/{min(h)/1000:<8.2f}"
                     f" {(hmed - bmed) * 100.0 / bmed:>+8.2f}%")
if failed:
    lines.append(f"perf-compare: FAIL: {', '.join(failed)} above +{limit:g}% instructions")
else:
    lines.append("perf-compare: ok")
text = "\n".join(lines)
print(text)
with open(os.path.join(out, "summary.txt"), "w") as f:
    f.write(text + "\n")
with open(os.path.join(out, "perf-compare.json"), "w") as f:
    json.dump(result, f, indent=2)
    f.write("\n")
sys.exit(1 if failed else 0)
EOF
[ "$status" -eq 0 ] || exit "$status"
[ "$scenario_status" -eq 0 ] || { say "FAIL: scenario regressions (--fail-scenarios)"; exit 1; }
