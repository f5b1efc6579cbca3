#!/usr/bin/env bash
# The deterministic performance regression gates (testing/performance/README.md §1), in the
# test command. Nothing here depends on the load of the machine:
#
#   instructions  callgrind `Ir` of ONE operation, inside its measured function of
#                 benches/src/bin/rewarder-icount.rs: parse + validate + content id of the
#                 inputs (parse S/M/L), one signed compute (compute S/M/L, and ids128: M with
#                 every actor id 128 bytes long), one compute through
#                 the whole request handler (handler M). Fails above +10 % of
#                 testing/performance/baselines/icount.json, or when two runs of the same binary
#                 disagree.
#   heap          peak heap bytes and number of allocations of the same operations, counted by
#                 benches/src/bin/rewarder-heap.rs (dhat's allocator around the operation).
#                 Fails above +15 % of testing/performance/baselines/heap.json, or when two
#                 runs disagree.
#
# Usage:
#   scripts/perf-gate.sh                      # the gates (CI)
#   scripts/perf-gate.sh --update             # refresh both baselines (see the README's procedure)
#   scripts/perf-gate.sh --demo-slowdown PCT  # the gates with PCT % of each baseline added
#                                             # inside the measured regions (extra instructions,
#                                             # held bytes and allocations; the gate binaries only)
set -euo pipefail
cd "$(dirname "$0")/.."

mode=gate
demo_pct=0
while [ $# -gt 0 ]; do
  case "$1" in
    --update) mode=update ;;
    --demo-slowdown) mode=demo; demo_pct="${2:?--demo-slowdown needs a percentage}"; shift ;;
    -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
    *) echo "perf-gate: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

icount_baselines=testing/performance/baselines/icount.json
heap_baselines=testing/performance/baselines/heap.json
# op/scale of every gate.
gates=(parse/S parse/M parse/L compute/S compute/M compute/L compute/ids128 handler/M)
# The loop of ICOUNT_EXTRA_ITERS costs exactly 4 instructions per iteration.
insns_per_extra_iter=4

# valgrind (callgrind) is the only tool needed beyond cargo; install it idempotently.
if ! command -v valgrind >/dev/null 2>&1; then
  bash scripts/setup.sh valgrind
fi

started=$(date +%s)
# Built with the shipping `release` profile (LTO, codegen-units=1): the counted code is the
# code that ships.
cargo build --release --locked -q -p rewarder-benches --bin rewarder-icount --bin rewarder-heap
bin_dir="${CARGO_TARGET_DIR:-target}/release"
built=$(date +%s)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

baseline_of() { # FILE GATE FIELD
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["gates"][sys.argv[2]][sys.argv[3]])' "$1" "$2" "$3"
}

# ir OP SCALE RUN [EXTRA_ITERS]: "IR BYTES" of one run under callgrind.
ir() {
  local out="$tmp/callgrind.$1.$2.$3.out" log="$tmp/valgrind.$1.$2.$3.log"
  local printed
  printed=$(ICOUNT_EXTRA_ITERS="${4:-0}" valgrind --tool=callgrind --collect-atstart=no \
    --toggle-collect="*measured_$1*" --callgrind-out-file="$out" \
    "$bin_dir/rewarder-icount" "$1" "$2" 2>"$log") \
    || { cat "$log" >&2; echo "perf-gate: valgrind failed on $1 $2" >&2; exit 2; }
  local total
  total=$(sed -n 's/^totals: \([0-9]*\).*/\1/p' "$out")
  [ -n "$total" ] && [ "$total" -gt 0 ] || { echo "perf-gate: no Ir total in $out" >&2; exit 2; }
  echo "$total $(sed -n 's/.*inputs_bytes=\([0-9]*\).*/\1/p' <<<"$printed")"
}

# heap OP SCALE [EXTRA_BYTES EXTRA_ALLOCS]: "PEAK ALLOCS" of one run.
heap() {
  local line
  line=$(HEAP_EXTRA_BYTES="${3:-0}" HEAP_EXTRA_ALLOCS="${4:-0}" "$bin_dir/rewarder-heap" "$1" "$2" 2>/dev/null) \
    || { echo "perf-gate: rewarder-heap failed on $1 $2" >&2; exit 2; }
  python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d["peak_bytes"], d["allocations"])' "$line"
}

results="$tmp/results"
: >"$results"
for g in "${gates[@]}"; do
  op=${g%/*} scale=${g#*/}
  extra_iters=0 extra_bytes=0 extra_allocs=0
  if [ "$mode" = demo ]; then
    extra_iters=$(( $(baseline_of "$icount_baselines" "$g" ir) * demo_pct / 100 / insns_per_extra_iter ))
    extra_bytes=$(( $(baseline_of "$heap_baselines" "$g" peak_bytes) * demo_pct / 100 ))
    extra_allocs=$(( ($(baseline_of "$heap_baselines" "$g" allocations) * demo_pct + 99) / 100 ))
  fi
  read -r ir_a bytes < <(ir "$op" "$scale" 1 "$extra_iters")
  read -r ir_b _ < <(ir "$op" "$scale" 2 "$extra_iters")
  if [ "$ir_a" != "$ir_b" ]; then
    echo "perf-gate: FAIL: $g is not deterministic ($ir_a vs $ir_b Ir from the same binary)" >&2
    exit 1
  fi
  read -r peak_a allocs_a < <(heap "$op" "$scale" "$extra_bytes" "$extra_allocs")
  read -r peak_b allocs_b < <(heap "$op" "$scale" "$extra_bytes" "$extra_allocs")
  if [ "$peak_a $allocs_a" != "$peak_b $allocs_b" ]; then
    echo "perf-gate: FAIL: $g heap is not deterministic ($peak_a/$allocs_a vs $peak_b/$allocs_b)" >&2
    exit 1
  fi
  echo "$g $ir_a $bytes $peak_a $allocs_a" >>"$results"
done
counted=$(date +%s)

if [ "$mode" = update ]; then
  python3 - "$icount_baselines" "$heap_baselines" "$results" <<'EOF_PY'
import datetime, json, platform, subprocess, sys
icount_path, heap_path, results = sys.argv[1:4]
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
recorded = {
    "timestamp": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "git": out("git", "describe", "--always", "--dirty"),
    "rustc": out("rustc", "--version"),
    "valgrind": out("valgrind", "--version"),
    "cpu": cpu,
    "arch": platform.machine(),
    "profile": "release (lto=true, codegen-units=1)",
}
icount, heap = {}, {}
for line in open(results):
    gate, ir, size, peak, allocs = line.split()
    icount[gate] = {"ir": int(ir), "inputs_bytes": int(size), "ir_per_input_byte": round(int(ir) / int(size), 3)}
    heap[gate] = {"peak_bytes": int(peak), "allocations": int(allocs)}
what = ("callgrind Ir of one operation inside its measured function of benches/src/bin/rewarder-icount.rs "
        "(parse: Inputs::parse, parse + validate + content id; compute: Run::compute + Ed25519 sign; handler: "
        "Service::handle of one dry-run compute with allocations), testkit seed 0, epoch demo")
with open(icount_path, "w") as f:
    json.dump({"what": what, "threshold_pct": 10, "gates": icount, "recorded": recorded}, f, indent=2)
    f.write("\n")
with open(heap_path, "w") as f:
    json.dump({"what": "peak heap bytes and allocations of the same operations (benches/src/bin/rewarder-heap.rs, dhat)",
               "threshold_pct": 15, "gates": heap, "recorded": recorded}, f, indent=2)
    f.write("\n")
print(f"perf-gate: baselines written to {icount_path} and {heap_path}")
EOF_PY
  exit 0
fi

for f in "$icount_baselines" "$heap_baselines"; do
  [ -f "$f" ] || { echo "perf-gate: $f missing: run scripts/perf-gate.sh --update" >&2; exit 2; }
done
[ "$mode" = demo ] && echo "perf-gate: DEMO: +${demo_pct}% of each baseline added inside the measured regions"
python3 - "$icount_baselines" "$heap_baselines" "$results" "$((built - started))" "$((counted - built))" <<'EOF_PY'
import json, sys
icount_path, heap_path, results, build_s, count_s = sys.argv[1:6]
icount, heap = json.load(open(icount_path)), json.load(open(heap_path))
ir_limit, heap_limit = float(icount.get("threshold_pct", 10)), float(heap.get("threshold_pct", 15))
failed = []
def verdict(delta, limit):
    if delta > limit:
        return "FAIL"
    return "ok (faster: refresh the baseline)" if delta < -limit else "ok"
print(f"perf-gate: instructions (limit +{ir_limit:g}% vs {icount_path}); heap (limit +{heap_limit:g}% vs {heap_path})")
print(f"  {'gate':<14} {'Ir base':>13} {'Ir now':>13} {'delta':>8} {'Ir/B':>6}  {'peak base':>11} {'peak now':>11} {'delta':>8}  {'allocs':>7} {'delta':>8}")
for line in open(results):
    gate, ir, size, peak, allocs = line.split()
    ir, size, peak, allocs = int(ir), int(size), int(peak), int(allocs)
    bi, bh = icount["gates"][gate], heap["gates"][gate]
    d_ir = (ir - bi["ir"]) * 100.0 / bi["ir"]
    d_peak = (peak - bh["peak_bytes"]) * 100.0 / bh["peak_bytes"]
    d_alloc = (allocs - bh["allocations"]) * 100.0 / bh["allocations"]
    per_byte = f"{ir / size:6.2f}" if gate.startswith("parse/") else "     -"
    v = [verdict(d_ir, ir_limit), verdict(d_peak, heap_limit), verdict(d_alloc, heap_limit)]
    print(f"  {gate:<14} {bi['ir']:>13,} {ir:>13,} {d_ir:>+7.2f}% {per_byte}  {bh['peak_bytes']:>11,} {peak:>11,} {d_peak:>+7.2f}%  {allocs:>7} {d_alloc:>+7.2f}%  {' / '.join(v)}")
    for what, v_ in zip(("instructions", "peak heap", "allocations"), v):
        if v_ == "FAIL":
            failed.append(f"{gate} {what}")
print(f"  (build {build_s}s, counting {count_s}s; every figure taken twice and identical)")
if failed:
    print(f"perf-gate: FAIL: {', '.join(failed)} — see testing/performance/README.md §1")
    sys.exit(1)
print("perf-gate: ok")
EOF_PY
