#!/usr/bin/env bash
# Checks what a fleet deploys (deploy/): the Prometheus alert rules compile and pass their unit
# tests (promtool), and the Kubernetes manifests parse and keep the properties the fleet relies
# on (probes, graceful termination, non-root read-only container, resources, knob names).
# Installs promtool (Debian package `prometheus`) when missing; safe to run repeatedly.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v promtool >/dev/null 2>&1; then
  bash scripts/setup.sh prometheus
fi

echo "check-deploy: promtool check rules" >&2
promtool check rules deploy/prometheus/alerts.yml
echo "check-deploy: promtool test rules" >&2
(cd deploy/prometheus && promtool test rules alerts.test.yml)

echo "check-deploy: Kubernetes manifests" >&2
if python3 -c 'import yaml' 2>/dev/null; then
  python3 - deploy/k8s micronode/src/config.rs <<'PY'
import glob, os, re, sys
import yaml

k8s_dir, config_rs = sys.argv[1], sys.argv[2]
errors = []
docs = {}
for path in sorted(glob.glob(os.path.join(k8s_dir, "*.yaml"))):
    with open(path) as f:
        for doc in yaml.safe_load_all(f):
            if doc is None:
                continue
            kind = doc.get("kind")
            if not doc.get("apiVersion") or not kind:
                errors.append(f"{path}: a document without apiVersion/kind")
                continue
            if kind != "Kustomization" and not doc.get("metadata", {}).get("name"):
                errors.append(f"{path}: {kind} without metadata.name")
            docs.setdefault(kind, []).append((path, doc))

for kind in ["Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler", "ConfigMap"]:
    if kind not in docs:
        errors.append(f"no {kind} in {k8s_dir}")

# Every listed manifest exists; every manifest is listed.
for path, k in docs.get("Kustomization", []):
    listed = set(k.get("resources", []))
    present = {os.path.basename(p) for p in glob.glob(os.path.join(k8s_dir, "*.yaml"))} - {"kustomization.yaml"}
    if listed != present:
        errors.append(f"{path}: resources {sorted(listed)} != files {sorted(present)}")

# The knobs the node reads (string literals of config.rs); a ConfigMap key must be one.
source = open(config_rs).read()
knobs = set(re.findall(r'"([A-Z][A-Z0-9_]+)"', source))
for path, cm in docs.get("ConfigMap", []):
    for key in (cm.get("data") or {}):
        if key.endswith(".env"):
            for line in cm["data"][key].splitlines():
                line = line.strip()
                if line and not line.startswith("#"):
                    name = line.split("=", 1)[0].strip()
                    if name not in {"TENANT_RPS_MAX", "MAX_INFLIGHT", "WORK_QUEUE_MAX", "TRACE_SAMPLE"}:
                        errors.append(f"{path}: {key}: {name} is not a hot knob")
        elif key not in knobs:
            errors.append(f"{path}: {key} is not a knob the node reads")

def probe_path(c, name):
    return (c.get(name) or {}).get("httpGet", {}).get("path")

for path, d in docs.get("Deployment", []):
    pod = d["spec"]["template"]["spec"]
    if not pod.get("terminationGracePeriodSeconds"):
        errors.append(f"{path}: no terminationGracePeriodSeconds")
    if not (pod.get("securityContext") or {}).get("runAsNonRoot"):
        errors.append(f"{path}: pod not runAsNonRoot")
    for c in pod["containers"]:
        n = c["name"]
        if probe_path(c, "readinessProbe") != "/readyz":
            errors.append(f"{path}: {n}: readinessProbe is not /readyz")
        if probe_path(c, "livenessProbe") != "/healthz":
            errors.append(f"{path}: {n}: livenessProbe is not /healthz")
        if not (c.get("lifecycle") or {}).get("preStop"):
            errors.append(f"{path}: {n}: no preStop hook")
        sc = c.get("securityContext") or {}
        if sc.get("readOnlyRootFilesystem") is not True or sc.get("allowPrivilegeEscalation") is not False:
            errors.append(f"{path}: {n}: root filesystem not read-only or privilege escalation allowed")
        res = c.get("resources") or {}
        if not res.get("requests") or not res.get("limits"):
            errors.append(f"{path}: {n}: resource requests and limits are required")

for path, h in docs.get("HorizontalPodAutoscaler", []):
    cpu = [m for m in h["spec"].get("metrics", []) if m.get("resource", {}).get("name") == "cpu"]
    if not cpu or cpu[0]["resource"]["target"].get("averageUtilization") != 70:
        errors.append(f"{path}: the HPA must target 70% CPU")

if errors:
    print("\n".join(errors), file=sys.stderr)
    sys.exit(1)
print(f"  SUCCESS: {sum(len(v) for v in docs.values())} documents")
PY
else
  # No YAML parser: at least every document names its apiVersion, kind and name.
  for f in deploy/k8s/*.yaml; do
    grep -q '^apiVersion:' "$f" && grep -q '^kind:' "$f" || { echo "$f: no apiVersion/kind" >&2; exit 1; }
  done
  echo "  (python3-yaml missing: only a shallow check was made)" >&2
fi
echo "check-deploy: ok" >&2
