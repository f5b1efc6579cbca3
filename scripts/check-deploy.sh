#!/usr/bin/env bash
# Checks what a fleet deploys (deploy/): the Prometheus rules compile and pass their unit tests
# (promtool); the Alertmanager configuration loads and routes every alert of the rules to the
# receiver its severity names (amtool); the Kubernetes manifests validate against the schemas of
# Kubernetes $K8S_VERSION (kubernetes-validate, offline, strict), the kustomization builds, and
# the manifests keep the properties the fleet relies on (probes, graceful termination that fits
# the queue's drain, the durable queue on the pod's claim, non-root read-only container,
# resources, knob names). The Grafana dashboard is the output of its generator. Tools come from
# scripts/setup.sh; safe to run repeatedly.
set -euo pipefail
cd "$(dirname "$0")/.."

# The oldest Kubernetes the manifests support (deploy/README.md: the preStop `sleep` action).
K8S_VERSION="${K8S_VERSION:-1.30.0}"
VENV="build/tools/venv"
if ! command -v promtool >/dev/null 2>&1 || ! command -v amtool >/dev/null 2>&1 \
  || [ ! -x "$VENV/bin/kubernetes-validate" ]; then
  bash scripts/setup.sh
fi

echo "check-deploy: promtool check rules" >&2
promtool check rules deploy/prometheus/alerts.yml
echo "check-deploy: promtool test rules" >&2
(cd deploy/prometheus && promtool test rules alerts.test.yml)

echo "check-deploy: amtool check-config and the route of every alert" >&2
amtool check-config deploy/alertmanager/alertmanager.yml
python3 - deploy/prometheus/alerts.yml deploy/alertmanager/alertmanager.yml <<'PY'
import subprocess, sys
import yaml

rules, am = sys.argv[1], sys.argv[2]
config = yaml.safe_load(open(am))
errors = []
if config["route"].get("group_by") != ["alertname", "severity", "instance"]:
    errors.append(f"{am}: group_by must be [alertname, severity, instance]")
for group in yaml.safe_load(open(rules))["groups"]:
    for rule in group["rules"]:
        text = yaml.safe_dump(rule)
        if "tenant" in text:
            errors.append(f"{rules}: {rule.get('alert') or rule.get('record')} names a tenant")
        if "alert" not in rule:
            continue
        labels = {**rule["labels"], "alertname": rule["alert"], "job": "svc-rewarder", "instance": "a"}
        want = {"page": "pagerduty-svc-rewarder", "ticket": "tracker-"}[labels["severity"]]
        out = subprocess.run(["amtool", "config", "routes", "test", f"--config.file={am}"]
                             + [f"{k}={v}" for k, v in labels.items()], capture_output=True, text=True)
        got = out.stdout.strip()
        if out.returncode != 0 or not got.startswith(want) or "," in got:
            errors.append(f"{rule['alert']} ({labels['severity']}) routes to {got!r}, expected {want}*")
        if not {"summary", "panel", "runbook"} <= set(rule.get("annotations", {})):
            errors.append(f"{rule['alert']}: summary, panel and runbook annotations are required")
if errors:
    sys.exit("\n".join(errors))
print("  SUCCESS: every alert routes by its severity")
PY

echo "check-deploy: Kubernetes manifests against the schemas of $K8S_VERSION" >&2
rendered="$(mktemp)"
trap 'rm -f "$rendered"' EXIT
if command -v kubectl >/dev/null 2>&1; then
  kubectl kustomize deploy/k8s >"$rendered"
  echo "  kustomization builds: $(grep -c '^kind:' "$rendered") resources" >&2
else
  # No kubectl: the kustomization lists exactly the files (checked below); validate those.
  python3 -c 'import sys, yaml
for f in yaml.safe_load(open("deploy/k8s/kustomization.yaml"))["resources"]:
    print("---"); print(open("deploy/k8s/" + f).read())' >"$rendered"
  echo "  (kubectl missing: the kustomization's build was not run)" >&2
fi
"$VENV/bin/kubernetes-validate" --kubernetes-version "$K8S_VERSION" --strict --quiet "$rendered"
echo "  SUCCESS: strict schema validation ($K8S_VERSION)" >&2

echo "check-deploy: Grafana dashboard is its generator's output" >&2
python3 deploy/grafana/generate.py --check

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

for kind in ["StatefulSet", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler", "ConfigMap"]:
    if kind not in docs:
        errors.append(f"no {kind} in {k8s_dir}")

# Every listed manifest exists; every manifest is listed.
for path, k in docs.get("Kustomization", []):
    listed = set(k.get("resources", []))
    present = {os.path.basename(p) for p in glob.glob(os.path.join(k8s_dir, "*.yaml"))} - {"kustomization.yaml"}
    if listed != present:
        errors.append(f"{path}: resources {sorted(listed)} != files {sorted(present)}")

# The knobs the node reads (string literals of config.rs); a ConfigMap key must be one, and a
# hot-knobs file sets only the hot ones (HOT_KNOB_VARS).
source = open(config_rs).read()
knobs = set(re.findall(r'"([A-Z][A-Z0-9_]+)"', source))
hot = set(re.findall(r'"([A-Z][A-Z0-9_]+)"', re.search(r"HOT_KNOB_VARS[^=]*=\s*\[([^\]]*)\]", source).group(1)))
env = {}
for path, cm in docs.get("ConfigMap", []):
    for key in (cm.get("data") or {}):
        if key.endswith(".env"):
            for line in cm["data"][key].splitlines():
                line = line.strip()
                if line and not line.startswith("#"):
                    name = line.split("=", 1)[0].strip()
                    if name not in hot:
                        errors.append(f"{path}: {key}: {name} is not a hot knob")
        elif key not in knobs:
            errors.append(f"{path}: {key} is not a knob the node reads")
        else:
            env[key] = str(cm["data"][key])

def probe_path(c, name):
    return (c.get(name) or {}).get("httpGet", {}).get("path")

# Seconds a stopping node may take: preStop + requests in flight (30 s, the node's bound) +
# LEDGER_STOP_DRAIN_S; and the drain must fit a full queue sent batch by batch with every retry.
REQUESTS_DRAIN_S = 30
for path, d in docs.get("StatefulSet", []):
    pod = d["spec"]["template"]["spec"]
    grace = pod.get("terminationGracePeriodSeconds") or 0
    if not grace:
        errors.append(f"{path}: no terminationGracePeriodSeconds")
    num = lambda k, default: int(env.get(k, default))
    batches = -(-num("LEDGER_QUARANTINE_MAX", 100000) // num("LEDGER_BATCH_MAX", 1000))
    worst_ms = batches * num("LEDGER_DEADLINE_MS", 1000) * (num("LEDGER_MAX_RETRIES", 2) + 1)
    stop_drain = num("LEDGER_STOP_DRAIN_S", 30)
    if stop_drain * 1000 < worst_ms:
        errors.append(f"{path}: LEDGER_STOP_DRAIN_S={stop_drain} < {worst_ms / 1000:g} s to drain a full queue")
    for c in pod["containers"]:
        pre = ((c.get("lifecycle") or {}).get("preStop") or {}).get("sleep", {}).get("seconds", 0)
        if grace < pre + REQUESTS_DRAIN_S + stop_drain:
            errors.append(f"{path}: terminationGracePeriodSeconds {grace} < preStop {pre} + {REQUESTS_DRAIN_S} + LEDGER_STOP_DRAIN_S {stop_drain}")
        # STATE_PATH must sit on a volume of the pod's own claim.
        state = env.get("STATE_PATH")
        claims = {t["metadata"]["name"] for t in d["spec"].get("volumeClaimTemplates", [])}
        mounts = [m for m in c.get("volumeMounts", []) if m["name"] in claims]
        if not state or not any(state.startswith(m["mountPath"].rstrip("/") + "/") for m in mounts):
            errors.append(f"{path}: {c['name']}: STATE_PATH {state!r} is not on a volumeClaimTemplate mount")
    if (d["spec"].get("persistentVolumeClaimRetentionPolicy") or {}).get("whenScaled") != "Retain":
        errors.append(f"{path}: a scaled-in pod's claim (its queue) must be retained")
    if not any(s["metadata"]["name"] == d["spec"].get("serviceName") and s["spec"].get("clusterIP") == "None"
               for _, s in docs.get("Service", [])):
        errors.append(f"{path}: serviceName must name a headless Service")
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

# The image: the one the release workflow publishes (ghcr.io/<owner>/<repo>), at the workspace's
# version, named through the kustomization's `images` (the release renders it for its repository).
workspace_version = re.search(r'\[workspace\.package\][^\[]*?\nversion = "([^"]+)"', open("Cargo.toml").read()).group(1)
images = {i["name"]: i for _, k in docs.get("Kustomization", []) for i in (k.get("images") or [])}
for path, d in docs.get("StatefulSet", []):
    for c in d["spec"]["template"]["spec"]["containers"]:
        image = images.get(c["image"])
        if image is None:
            errors.append(f"{path}: {c['name']}: image {c['image']!r} is not set by the kustomization's images")
            continue
        if not re.fullmatch(r"ghcr\.io/[a-z0-9._-]+/[a-z0-9._-]+", image.get("newName", "")):
            errors.append(f"{path}: {c['image']} -> {image.get('newName')!r}: not ghcr.io/<owner>/<repo> (release.yml publishes there)")
        if str(image.get("newTag")) != workspace_version:
            errors.append(f"{path}: {c['image']} tag {image.get('newTag')!r} is not the workspace version {workspace_version}")

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
