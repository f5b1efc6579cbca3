"""Serves-the-golden-vectors check of a running node (scripts/check-static-binaries.sh): for
every vector of testing/vectors with an expected.json, uploads its inputs and policy, computes a
dry run for each tenant the tokens name, and compares the manifest, its digest and (for the
default tenant) the allocations with the expected ones. Also checks GET /version names the
target the binary was built for.

    python3 scripts/golden-http.py URL VECTORS TARGET [TENANT=TOKEN ...]

Every request has a 30 s timeout; prints one line per vector, exits 1 on the first mismatch.
"""
import json
import os
import sys
import urllib.error
import urllib.request


def call(url, method, path, token, body=None):
    request = urllib.request.Request(url + path, data=body, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")


def main():
    url, vectors, target = sys.argv[1:4]
    tenants = dict(arg.split("=", 1) for arg in sys.argv[4:]) or {"default": ""}
    status, version = call(url, "GET", "/version", None)
    if status != 200 or version.get("build", {}).get("target") != target:
        sys.exit(f"golden-http: /version answered {status} {version}, not the target {target}")
    dirs = sorted(d for d in os.listdir(vectors) if os.path.isfile(os.path.join(vectors, d, "expected.json")))
    if not dirs:
        sys.exit(f"golden-http: no golden vector in {vectors}")
    for d in dirs:
        with open(os.path.join(vectors, d, "expected.json"), encoding="utf-8") as f:
            expected = json.load(f)
        with open(os.path.join(vectors, d, "inputs.json"), "rb") as f:
            inputs = f.read()
        with open(os.path.join(vectors, d, "policy.json"), "rb") as f:
            policy = f.read()
        for tenant, token in tenants.items():
            s1, stored_inputs = call(url, "PUT", "/rewarder/inputs", token, inputs)
            s2, stored_policy = call(url, "PUT", "/rewarder/policies", token, policy)
            if s1 not in (200, 201) or s2 not in (200, 201):
                sys.exit(f"golden-http: {d}/{tenant}: uploads answered {s1} {stored_inputs} / {s2} {stored_policy}")
            body = json.dumps({
                "inputs_cid": stored_inputs["inputs_cid"],
                "policy_id": stored_policy["policy_id"],
                "policy_hash": stored_policy["policy_hash"],
                "dry_run": True,
            }).encode()
            epoch = urllib.request.quote(stored_inputs["epoch"], safe="")
            status, result = call(url, "POST", f"/rewarder/epochs/{epoch}/compute", token, body)
            if status != 200:
                sys.exit(f"golden-http: {d}/{tenant}: compute answered {status} {result}")
            for key in ("manifest", "manifest_digest"):
                if result[key] != expected[tenant][key]:
                    sys.exit(f"golden-http: {d}/{tenant}: {key} differs:\n{result[key]}\nexpected\n{expected[tenant][key]}")
            if tenant == "default" and result["allocations"] != expected["allocations"]:
                sys.exit(f"golden-http: {d}: allocations differ from expected.json")
        print(f"golden-http: {d}: {', '.join(tenants)} match", flush=True)
    print(f"golden-http: {len(dirs)} vectors x {len(tenants)} tenants served as expected by {target}")


if __name__ == "__main__":
    main()
