#!/usr/bin/env bash
# The performance regression gate (testing/performance/README.md "Instruction-count gate").
#
# Counts the instructions (callgrind `Ir`) of ONE signed compute at S and M — Run::compute plus
# an Ed25519 signature, inside `measured_compute` of benches/src/bin/rewarder-icount.rs — and
# compares them with testing/performance/baselines/icount.json. Exits 1 when a scale is more
# than the baseline's threshold (+10%) above its baseline, or when two runs of the same binary
# disagree (the count must be deterministic). Instruction counts do not depend on the load of
# the machine, so the gate does not flake on a noisy CI box.
#
# Usage:
#   scripts/perf-gate.sh                      # the gate (CI)
#   scripts/perf-gate.sh --update             # refresh the baselines (see the README's procedure)
#   scripts/perf-gate.sh --demo-slowdown PCT  # the gate with PCT% deliberate extra instructions
#                                             # inside the measured region (icount binary only)
set -euo pipefail
cd "$(dirname "$0")/.."

mode=gate
demo_pct=0
while [ $# -gt 0 ]; do
  case "$1" in
    --update) mode=update ;;
    --demo-slowdown) mode=demo; demo_pct="${2:?--demo-slowdown needs a percentage}"; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "perf-gate: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

baselines=testing/performance/baselines/icount.json
scales=(S M)
# The loop of ICOUNT_EXTRA_ITERS costs exactly 4 instructions per iteration (measured:
# 1,000,000 iterations = +4,000,091 Ir).
insns_per_extra_iter=4

# valgrind (callgrind) is the only tool needed beyond cargo; install it idempotently.
if ! command -v valgrind >/dev/null 2>&1; then
  bash scripts/setup.sh valgrind
fi

started=$(date +%s)
# The binary is built with the shipping `release` profile (LTO, codegen-units=1): the counted
# code is the code that ships. See the README for why no lighter profile is used.
cargo build --release --locked -q -p rewarder-benches --bin rewarder-icount
bin="${CARGO_TARGET_DIR:-target}/release/rewarder-icount"
built=$(date +%s)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# ir SCALE RUN [EXTRA_ITERS]: the Ir total of one run under callgrind.
ir() {
  local out="$tmp/callgrind.$1.$2.out"
  ICOUNT_EXTRA_ITERS="${3:-0}" valgrind --tool=callgrind --collect-atstart=no \
    --toggle-collect='*measured_compute*' --callgrind-out-file="$out" \
    "$bin" "$1" >/dev/null 2>"$tmp/valgrind.$1.$2.log" \
    || { cat "$tmp/valgrind.$1.$2.log" >&2; echo "perf-gate: valgrind failed on $1" >&2; exit 2; }
  local total
  total=$(sed -n 's/^totals: \([0-9]*\).*/\1/p' "$out")
  [ -n "$total" ] && [ "$total" -gt 0 ] || { echo "perf-gate: no Ir total in $out" >&2; exit 2; }
  echo "$total"
}

baseline_of() {
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["scales"][sys.argv[2]]["ir"])' "$baselines" "$1"
}

declare -A measured
for s in "${scales[@]}"; do
  extra=0
  if [ "$mode" = demo ]; then
    extra=$(( $(baseline_of "$s") * demo_pct / 100 / insns_per_extra_iter ))
  fi
  a=$(ir "$s" 1 "$extra")
  b=$(ir "$s" 2 "$extra")
  if [ "$a" != "$b" ]; then
    echo "perf-gate: FAIL: $s is not deterministic ($a vs $b Ir from the same binary)" >&2
    exit 1
  fi
  measured[$s]=$a
done
counted=$(date +%s)

if [ "$mode" = update ]; then
  python3 - "$baselines" "${measured[S]}" "${measured[M]}" <<'EOF'
import datetime, json, os, platform, subprocess, sys
path, s, m = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def out(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
    except Exception:
        return "unknown"
cpu = "unknown"
try:
    cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
except Exception:
    pass
doc = {
    "what": "callgrind Ir of one Run::compute + Ed25519 sign (measured_compute in benches/src/bin/rewarder-icount.rs), testkit seed 0, epoch demo",
    "threshold_pct": 10,
    "scales": {"S": {"ir": s}, "M": {"ir": m}},
    "recorded": {
        "timestamp": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "git": out("git", "describe", "--always", "--dirty"),
        "rustc": out("rustc", "--version"),
        "valgrind": out("valgrind", "--version"),
        "cpu": cpu,
        "arch": platform.machine(),
        "profile": "release (lto=true, codegen-units=1)",
    },
}
with open(path, "w") as f:
    json.dump(doc, f, indent=2)
    f.write("\n")
print(f"perf-gate: baselines written to {path}: S={s} M={m} Ir")
EOF
  exit 0
fi

[ -f "$baselines" ] || { echo "perf-gate: $baselines missing: run scripts/perf-gate.sh --update" >&2; exit 2; }
[ "$mode" = demo ] && echo "perf-gate: DEMO: +${demo_pct}% of each baseline added as extra instructions inside the measured region"
python3 - "$baselines" "${measured[S]}" "${measured[M]}" "$((built - started))" "$((counted - built))" <<'EOF'
import json, sys
path, s, m, build_s, count_s = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
doc = json.load(open(path))
limit = float(doc.get("threshold_pct", 10))
failed = []
print(f"perf-gate: callgrind Ir of one signed compute (limit +{limit:g}% vs {path})")
print(f"  {'scale':<5} {'baseline':>12} {'measured':>12} {'delta':>9}")
for scale, now in (("S", s), ("M", m)):
    base = int(doc["scales"][scale]["ir"])
    delta = (now - base) * 100.0 / base
    verdict = "FAIL" if delta > limit else "ok"
    if delta < -limit:
        verdict = "ok (faster: refresh the baseline)"
    print(f"  {scale:<5} {base:>12,} {now:>12,} {delta:>+8.2f}%  {verdict}")
    if delta > limit:
        failed.append(scale)
print(f"  (build {build_s}s, counting {count_s}s; each count taken twice and identical)")
if failed:
    print(f"perf-gate: FAIL: {', '.join(failed)} above +{limit:g}% — see testing/performance/README.md")
    sys.exit(1)
print("perf-gate: ok")
EOF
