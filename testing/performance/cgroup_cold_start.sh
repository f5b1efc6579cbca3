#!/usr/bin/env bash
# Cold start under small-device limits (seed §1.4, §2.5): exec → first /readyz 200, then the
# first compute of an S epoch (upload of its inputs and policy, then a dry-run compute), median
# and p95 over RUNS fresh processes per profile.
#
# Profiles (cgroup v1: cpu.cfs_quota_us / cpu.cfs_period_us and memory.limit_in_bytes, plus
# taskset for the CPUs the process may run on):
#   host           no cgroup, no taskset (reference)
#   2cpu-2g        2 vCPU (taskset 0,1, quota 200 ms per 100 ms), 2 GiB
#   half-256m      0.5 CPU (taskset 0, quota 50 ms per 100 ms — docker --cpus=0.5), 256 MiB
#   half-256m-p10  0.5 CPU with a 10 ms period (quota 5 ms per 10 ms): throttles any burst
#                  longer than 5 ms, closer to a CPU that is simply half as fast
# On a cgroup v2 host (no /sys/fs/cgroup/cpu) the same limits go to cpu.max and memory.max.
#
# The node is in the groups BEFORE it is exec'd: a wrapper shell writes its own pid to the
# groups' tasks files, prints "joined" and waits on its stdin; only then does the clock start,
# and the shell, told to go, execs taskset, which execs the node. So the cgroup v1 attach
# itself — a write to `tasks` that waits for an RCU grace period, 12–18 ms measured here — is
# not counted: it is a cost of this harness, not of starting the node. (cold_start.py --wrap
# counts it; see testing/performance/README.md.) The exec of sh → taskset → node is counted.
# The groups are created under the groups this script runs in, and removed on exit.
#
# Usage: cgroup_cold_start.sh [--runs 15] [--exe rewarder-micronode] [--out FILE]
# Needs root. Prints one JSON line per profile and writes them all to
# testing/performance/baselines/cold_start.json (or --out).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
runs=15
exe=rewarder-micronode
out="$here/baselines/cold_start.json"
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs="$2"; shift ;;
    --exe) exe="$2"; shift ;;
    --out) out="$2"; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
[ "$(id -u)" = 0 ] || { echo "cgroup_cold_start.sh needs root (cgroups)" >&2; exit 2; }
command -v taskset >/dev/null || { echo "taskset missing (util-linux)" >&2; exit 2; }

(cd "$root" && cargo build --release --locked -q -p "$exe" -p rewarder-testkit)

# Our groups go under the groups this shell is in, so enclosing limits still apply.
own_group() { awk -F: -v c="$1" '$2==c {print $3}' /proc/self/cgroup; }
if [ -d /sys/fs/cgroup/cpu ] && [ -d /sys/fs/cgroup/memory ]; then
  version=v1
  cpu_base="/sys/fs/cgroup/cpu$(own_group cpu)"
  mem_base="/sys/fs/cgroup/memory$(own_group memory)"
else
  version=v2
  v2_base="/sys/fs/cgroup$(awk -F: '$1=="0" {print $3}' /proc/self/cgroup)"
  grep -qw cpu "$v2_base/cgroup.subtree_control" || echo "+cpu +memory" >"$v2_base/cgroup.subtree_control"
fi
echo "cgroup $version" >&2

created=()
cleanup() {
  for d in "${created[@]}"; do rmdir "$d" 2>/dev/null || true; done
}
trap cleanup EXIT

# make_group NAME QUOTA_US PERIOD_US MEM_BYTES: creates the groups (in the parent shell: call
# it directly, not in $(…)), and sets $join to the shell snippet that joins them.
join=""
make_group() {
  local name="rewarder-perf-$1" quota="$2" period="$3" mem="$4"
  if [ "$version" = v1 ]; then
    mkdir -p "$cpu_base/$name" "$mem_base/$name"
    created+=("$cpu_base/$name" "$mem_base/$name")
    echo "$period" >"$cpu_base/$name/cpu.cfs_period_us"
    echo "$quota" >"$cpu_base/$name/cpu.cfs_quota_us"
    echo "$mem" >"$mem_base/$name/memory.limit_in_bytes"
    join="echo \$\$ > $cpu_base/$name/tasks; echo \$\$ > $mem_base/$name/tasks;"
  else
    mkdir -p "$v2_base/$name"
    created+=("$v2_base/$name")
    echo "$quota $period" >"$v2_base/$name/cpu.max"
    echo "$mem" >"$v2_base/$name/memory.max"
    join="echo \$\$ > $v2_base/$name/cgroup.procs;"
  fi
}

timing_py='
import http.client, json, os, subprocess, sys, tempfile, time
sys.path.insert(0, sys.argv[1])
import common
label, exe, runs, join, cpus = sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5], sys.argv[6]
exec_node = ("exec taskset -c " + cpus + " ") if cpus else "exec "
script = join + " echo joined; read go; exec >/dev/null </dev/null 2>/dev/null; " + exec_node + "\"$@\""
ready, upload, compute, first, hwm = [], [], [], [], []
with tempfile.TemporaryDirectory() as tmp:
    inputs, policy = common.generate("S", tmp)
for i in range(runs):
    port = common.free_port()
    env = dict(os.environ, BIND_ADDR=f"127.0.0.1:{port}", LOG="warn")
    sh = subprocess.Popen(["sh", "-c", script, "sh", common.binary(exe), "serve"], env=env,
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert sh.stdout.readline().strip() == b"joined"
        t0 = time.perf_counter()
        sh.stdin.write(b"go\n")
        sh.stdin.close()
        common.wait_ready(port, deadline_s=10)
        t1 = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        cid, pid, phash = common.upload(conn, inputs, policy)
        t2 = time.perf_counter()
        body = json.dumps({"inputs_cid": cid, "policy_id": pid, "policy_hash": phash, "dry_run": True})
        status, resp = common.request(conn, "POST", "/rewarder/epochs/demo/compute", body)
        t3 = time.perf_counter()
        assert status == 200, (status, resp[:200])
        with open(f"/proc/{sh.pid}/status") as f:
            hwm.append(next(int(l.split()[1]) for l in f if l.startswith("VmHWM")) / 1024)
        conn.close()
    finally:
        sh.terminate()
        sh.wait(timeout=10)
    ready.append((t1 - t0) * 1e3)
    upload.append((t2 - t1) * 1e3)
    compute.append((t3 - t2) * 1e3)
    first.append((t3 - t1) * 1e3)
print(json.dumps({"label": label, "exe": exe, "ready": common.summary(ready),
                  "first_compute_S": common.summary(first), "upload_S": common.summary(upload),
                  "compute_S": common.summary(compute), "vmhwm_mb_max": round(max(hwm), 1)}))
'

results=()
run_profile() { # LABEL CPUS QUOTA PERIOD MEM   (QUOTA "" = no cgroup)
  local line
  join=""
  if [ -n "$3" ]; then make_group "$1" "$3" "$4" "$5"; fi
  echo "profile $1: cpus=${2:-all} quota=${3:-none}/${4:-none} mem=${5:-none}" >&2
  line="$(python3 -c "$timing_py" "$here" "$1" "$exe" "$runs" "$join" "$2")"
  line="$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d["limits"]=dict(zip(["cpus","cfs_quota_us","cfs_period_us","memory_bytes"],sys.argv[2:6])); d["cgroup"]=sys.argv[6] if sys.argv[3] else "none"; print(json.dumps(d))' "$line" "$2" "$3" "$4" "$5" "$version")"
  echo "$line"
  results+=("$line")
}

run_profile host "" "" "" ""
run_profile 2cpu-2g 0,1 200000 100000 $((2 * 1024 * 1024 * 1024))
run_profile half-256m 0 50000 100000 $((256 * 1024 * 1024))
run_profile half-256m-p10 0 5000 10000 $((256 * 1024 * 1024))

mkdir -p "$(dirname "$out")"
python3 - "$out" "$runs" "${results[@]}" <<'EOF'
import datetime, json, os, sys
out, runs, *lines = sys.argv[1:]
doc = {
    "what": "cold start, ms: exec -> first /readyz 200 (ready); then upload of the S inputs+policy "
            "(upload_S) and the first dry-run compute (compute_S); first_compute_S = both",
    "timestamp": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "command": f"testing/performance/cgroup_cold_start.sh --runs {runs}",
    "goals_ms": {"2cpu-2g": {"ready": 5, "first_compute_S": 10},
                 "half-256m": {"ready": 20, "first_compute_S": 40},
                 "seed": {"ready": 2000, "first_compute_S_p95": 750}},
    "profiles": [json.loads(l) for l in lines],
    "host": {"cpus": os.cpu_count(), "nice": os.nice(0), "loadavg_after": [round(x, 2) for x in os.getloadavg()]},
}
with open(out, "w") as f:
    json.dump(doc, f, indent=2)
    f.write("\n")
EOF
echo "written $out" >&2
