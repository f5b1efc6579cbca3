#!/usr/bin/env bash
# Regenerates the seed corpora of the fuzz targets, testing/fuzz/corpora/<target>/, from the
# golden vectors (every valid document and every case of invalid.json) plus hand-made edge
# cases. Deterministic: running it twice gives the same files (signing keys are fixed seeds,
# timings are zeroed). Small files only (a few KB each, none over 16 KiB).
#
# Usage: testing/fuzz/seed-corpora.sh [VECTORS_DIR]   (default: $REWARDER_VECTORS, scripts/vectors.sh)
#
# The verify and handler seeds need real signed results and proofs: the script starts the
# micronode binary (target/release or target/debug; built in debug if neither exists) on
# 127.0.0.1 with a fixed SIGNING_KEY_FILE, asks it over HTTP, and stops it.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# shellcheck source=scripts/vectors.sh
source "$root/scripts/vectors.sh"
vectors="${1:-$REWARDER_VECTORS}"
[ -f "$vectors/invalid.json" ] || { echo "no vectors at $vectors" >&2; exit 2; }

target="${CARGO_TARGET_DIR:-$root/target}"
bin=""
for profile in release debug; do
  if [ -x "$target/$profile/rewarder-micronode" ]; then bin="$target/$profile/rewarder-micronode"; break; fi
done
if [ -z "$bin" ]; then
  (cd "$root" && cargo build -q -p rewarder-micronode)
  bin="$target/debug/rewarder-micronode"
fi

exec python3 - "$here/corpora" "$vectors" "$bin" <<'PY'
import base64, gzip, hashlib, hmac, http.client, json, os, re, shutil, subprocess, sys, tempfile, urllib.parse

out_dir, vectors, binary = sys.argv[1], sys.argv[2], sys.argv[3]
SIZE_MAX = 16 << 10
written = {}

def put(target, name, data):
    assert len(data) <= SIZE_MAX, (target, name, len(data))
    d = os.path.join(out_dir, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)
    written[target] = written.get(target, 0) + 1

def read(*parts):
    with open(os.path.join(vectors, *parts), "rb") as f:
        return f.read()

if os.path.isdir(out_dir):
    shutil.rmtree(out_dir)

dirs = sorted(d for d in os.listdir(vectors) if os.path.isfile(os.path.join(vectors, d, "expected.json")))
invalid = json.loads(read("invalid.json"))

# ---- inputs and policy: every vector, every invalid case, edge cases ----------------------
def fit(data):
    """The vector as is, or compacted when it is over the size bound (None if still over)."""
    if len(data) > SIZE_MAX:
        data = json.dumps(json.loads(data), separators=(",", ":")).encode()
    return data if len(data) <= SIZE_MAX else None

for d in dirs:
    for doc in ("inputs", "policy"):
        data = fit(read(d, f"{doc}.json"))
        if data is not None:
            put(doc, f"vector-{d}.json", data)
for i, case in enumerate(invalid):
    put(case["doc"], f"invalid-{i:02}-{case['code']}.json", case["raw"].encode())

basic_inputs, basic_policy = read("basic", "inputs.json"), read("basic", "policy.json")
edge_inputs = {
    "compact": json.dumps(json.loads(basic_inputs), separators=(",", ":")).encode(),
    "deep-nesting": b'{"schema":"rewarder.inputs.v1","events":' + b"[" * 1000 + b"]" * 1000 + b"}",
    "deep-event-element": b'{"schema":"rewarder.inputs.v1","epoch":"e","pool_minor":"1","kinds":["k"],"actors":["a"],"events":[[1,0,0,' + b"[" * 200 + b"]" * 200 + b"]]}",
    "long-number": b'{"schema":"rewarder.inputs.v1","epoch":"e","pool_minor":"1","kinds":["k"],"actors":["a"],"events":[[1,0,0,' + b"9" * 10000 + b"]]}",
    "long-pool": b'{"schema":"rewarder.inputs.v1","epoch":"e","pool_minor":"' + b"1" * 4000 + b'","kinds":["k"],"actors":["a"],"events":[]}',
    "exponent": b'{"schema":"rewarder.inputs.v1","epoch":"e","pool_minor":"1","kinds":["k"],"actors":["a"],"events":[[1,0,0,1e400]]}',
    "escapes": '{"schema":"rewarder.inputs.v1","epoch":"e\\u0031","pool_minor":"10","kinds":["\\u006b","k\\n"],"actors":["\\ud83d\\ude00","a\\"b","\u00e9"],"events":[[1,0,0,1],[2,1,1,2],[3,2,0,3]]}'.encode(),
    "lone-surrogate": b'{"schema":"rewarder.inputs.v1","epoch":"e","pool_minor":"10","kinds":["k"],"actors":["\\ud800"],"events":[[1,0,0,1]]}',
    "invalid-utf8": b'{"schema":"rewarder.inputs.v1","epoch":"e","pool_minor":"10","kinds":["k"],"actors":["\xff\xfe"],"events":[[1,0,0,1]]}',
    "bom": b"\xef\xbb\xbf" + basic_inputs,
    "duplicate-key": b'{"schema":"rewarder.inputs.v1","schema":"rewarder.inputs.v1","epoch":"e","pool_minor":"10","kinds":["k"],"actors":["a"],"events":[[1,0,0,1]]}',
    "actor-128": json.dumps({"schema": "rewarder.inputs.v1", "epoch": "e", "pool_minor": "100", "kinds": ["k"], "actors": ["a" * 128, "b" * 129], "events": [[1, 0, 0, 5]]}).encode(),
    "max-units": b'{"schema":"rewarder.inputs.v1","epoch":"e","pool_minor":"18446744073709551615","kinds":["k"],"actors":["a","b"],"events":[[9007199254740991,0,0,9007199254740991],[1,1,0,9007199254740991],[2,0,0,9007199254740991]]}',
    "kinds-256": json.dumps({"schema": "rewarder.inputs.v1", "epoch": "e", "pool_minor": "1000", "kinds": [f"k{i}" for i in range(256)], "actors": ["a", "b"], "events": [[i, i % 2, i, i + 1] for i in range(256)]}, separators=(",", ":")).encode(),
    "ties": json.dumps({"schema": "rewarder.inputs.v1", "epoch": "e", "pool_minor": "1000", "kinds": ["k"], "actors": [f"acct:{i:03}" for i in range(64)], "events": [[i, i, 0, 7] for i in range(64)]}, separators=(",", ":")).encode(),
    "trailing-garbage": basic_inputs + b" x",
    "truncated": basic_inputs[: len(basic_inputs) // 2],
    "empty": b"",
    "whitespace": b" \t\r\n",
}
for name, data in edge_inputs.items():
    put("inputs", f"edge-{name}.json", data)
edge_policy = {
    "deep-nesting": b'{"schema":"rewarder.policy.v1","weights":' + b"[" * 1000 + b"]" * 1000 + b"}",
    "long-number": b'{"schema":"rewarder.policy.v1","policy_id":"p","weights":{"k":' + b"9" * 10000 + b"}}",
    "all-fields": b'{"schema":"rewarder.policy.v1","policy_id":"p-1","weights":{"k":1000000,"k0":1},"caps":{"k":0,"k0":18446744073709551615},"actor_cap_bps":1,"min_payout_minor":"0","max_pool_minor":"18446744073709551615"}',
    "ceiling-10000": b'{"schema":"rewarder.policy.v1","policy_id":"p","weights":{"k":3},"actor_cap_bps":10000}',
    "exponent": b'{"schema":"rewarder.policy.v1","policy_id":"p","weights":{"k":1e2}}',
    "empty-weights": b'{"schema":"rewarder.policy.v1","policy_id":"p","weights":{}}',
    "escapes": b'{"schema":"rewarder.policy.v1","policy_id":"p\\u0041","weights":{"\\u006b":2,"uptime_s":1}}',
}
for name, data in edge_policy.items():
    put("policy", f"edge-{name}.json", data)

# ---- gzip: 3-byte header (ratio-1, body cap / 16 big-endian) + the compressed body --------
def gz(data):
    return gzip.compress(data, compresslevel=9, mtime=0)

def gzip_seed(ratio, body_max, compressed):
    return bytes([ratio - 1, (body_max // 16) >> 8 & 0xFF, (body_max // 16) & 0xFF]) + compressed

gzip_cases = {
    "inputs": gzip_seed(10, 1 << 20, gz(basic_inputs)),
    "policy": gzip_seed(10, 1 << 20, gz(basic_policy)),
    "two-members": gzip_seed(10, 1 << 20, gz(basic_policy) + gz(basic_inputs)),
    "bomb-ratio": gzip_seed(10, 1 << 20, gz(b"\0" * (256 << 10))),
    "bomb-body-cap": gzip_seed(256, 4096, gz(b" " * 4097)),
    "at-body-cap": gzip_seed(256, 4096, gz(b" " * 4096)),
    "truncated": gzip_seed(10, 1 << 20, gz(basic_inputs)[:-5]),
    "bad-crc": gzip_seed(10, 1 << 20, gz(basic_policy)[:-8] + b"\0\0\0\0" + gz(basic_policy)[-4:]),
    "trailing-garbage": gzip_seed(10, 1 << 20, gz(basic_policy) + b"garbage"),
    "not-gzip": gzip_seed(10, 1 << 20, b"plain text"),
    "empty-member": gzip_seed(10, 1 << 20, gz(b"")),
    "empty": gzip_seed(1, 0, b""),
    "zero-cap": gzip_seed(1, 0, gz(b"x")),
}
for name, data in gzip_cases.items():
    put("gzip", f"{name}.bin", data)

# ---- a node with fixed keys, for signed results, proofs and handler flows -------------------
ED_SEED = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
ML_SEED = "00" * 31 + "01"

class Node:
    def __init__(self, env):
        self.tmp = tempfile.TemporaryDirectory()
        keyfile = os.path.join(self.tmp.name, "keys")
        with open(keyfile, "w") as f:
            f.write(f"{ED_SEED}\n{ML_SEED}\n")
        full = {"PATH": os.environ.get("PATH", ""), "HOME": self.tmp.name, "TMPDIR": self.tmp.name,
                "BIND_ADDR": "127.0.0.1:0", "LOG": "info", "SIGNING_KEY_FILE": keyfile,
                "TENANT_RPS_MAX": "1000000", **env}
        self.proc = subprocess.Popen([binary, "serve"], env=full, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for _ in range(200):
            line = self.proc.stderr.readline()
            m = re.search(r"listening on http://([\d.]+):(\d+)", line)
            if m:
                self.port = int(m.group(2))
                break
        else:
            raise SystemExit("the node did not start")
        # Keep draining stderr so the node never blocks on a full pipe.
        import threading
        threading.Thread(target=lambda: [None for _ in self.proc.stderr], daemon=True).start()

    def call(self, method, path, body=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        c.request(method, path, body=body, headers={"Content-Type": "application/json"} if body is not None else {})
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, re.sub(rb'"compute_ms":[0-9.eE+-]+', b'"compute_ms":0.0', data)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.tmp.cleanup()

def flow(node, d):
    inputs, policy = read(d, "inputs.json"), read(d, "policy.json")
    s, bi = node.call("PUT", "/rewarder/inputs", inputs)
    s2, bp = node.call("PUT", "/rewarder/policies", policy)
    assert s in (200, 201) and s2 in (200, 201), (d, s, bi, s2, bp)
    i, p = json.loads(bi), json.loads(bp)
    body = json.dumps({"inputs_cid": i["inputs_cid"], "policy_id": p["policy_id"], "policy_hash": p["policy_hash"]}).encode()
    s, result = node.call("POST", f"/rewarder/epochs/{urllib.parse.quote(i['epoch'], safe='')}/compute", body)
    assert s == 200, (d, s, result)
    return i, p, body, result

node = Node({})
try:
    picks = ["basic", "ties", "waterfill", "empty"] + [d for d in dirs if d.startswith("gen-")][:8]
    for d in picks:
        i, p, compute_body, result = flow(node, d)
        if len(result) <= SIZE_MAX:
            put("verify", f"result-{d}.json", result)
        r = json.loads(result)
        for a in (r.get("allocations") or [])[:2]:
            s, proof = node.call("GET", f"/rewarder/epochs/{urllib.parse.quote(i['epoch'], safe='')}/proof/{urllib.parse.quote(a['actor'], safe='')}")
            assert s == 200, (d, s, proof)
            put("verify", f"proof-{d}-{hashlib.sha256(a['actor'].encode()).hexdigest()[:8]}.json", proof)
    # Tampered results and proofs.
    r = json.loads(read_result := open(os.path.join(out_dir, "verify", "result-basic.json"), "rb").read())
    def variant(name, mutate):
        v = json.loads(read_result)
        mutate(v)
        put("verify", f"tampered-{name}.json", json.dumps(v, separators=(",", ":")).encode())
    variant("amount", lambda v: v["allocations"][0].update(amount_minor="413"))
    variant("amount-leading-zero", lambda v: v["allocations"][0].update(amount_minor="0412"))
    variant("amount-overflow", lambda v: v["allocations"][0].update(amount_minor="18446744073709551616"))
    variant("digest", lambda v: v.update(manifest_digest="b3:" + "0" * 64))
    variant("signature-not-hex", lambda v: v["signatures"]["ed25519"].update(signature="zz"))
    variant("signature-short", lambda v: v["signatures"]["ed25519"].update(signature="00" * 63))
    variant("no-allocations", lambda v: v.pop("allocations"))
    variant("actor-long", lambda v: v["allocations"][0].update(actor="a" * 200))
    variant("actor-empty", lambda v: v["allocations"][0].update(actor=""))
    variant("unknown-manifest-field", lambda v: v["manifest"].update(extra=1))
    variant("payees-negative", lambda v: v["manifest"].update(payees=-1))
    variant("key-id-wrong", lambda v: v["signatures"]["ed25519"].update(key_id="0" * 16))
    variant("key-foreign", lambda v: v["signatures"]["ed25519"].update(public_key="d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"))
    proof_files = sorted(f for f in os.listdir(os.path.join(out_dir, "verify")) if f.startswith("proof-basic"))
    proof = json.loads(open(os.path.join(out_dir, "verify", proof_files[0]), "rb").read())
    for name, mutate in {
        "side": lambda v: v["proof"][0].update(side="X") if v["proof"] else None,
        "hash-short": lambda v: v["proof"][0].update(hash="00") if v["proof"] else None,
        "amount": lambda v: v.update(amount_minor="1"),
        "extra-step": lambda v: v["proof"].append({"side": "L", "hash": "00" * 32}),
    }.items():
        v = json.loads(json.dumps(proof))
        mutate(v)
        put("verify", f"tampered-proof-{name}.json", json.dumps(v, separators=(",", ":")).encode())
    # Raw folding seeds: root(32) amount(8, LE) n(1) then n × (side byte, hash(32)) then the actor.
    expected = json.loads(read("basic", "expected.json"))
    ex = expected["proof_example"]
    root = bytes.fromhex(expected["default"]["manifest"]["allocations_root"][3:])
    steps = b"".join(bytes([1 if s["side"] == "L" else 0]) + bytes.fromhex(s["hash"]) for s in ex["proof"])
    raw = root + int(ex["amount_minor"]).to_bytes(8, "little") + bytes([len(ex["proof"])]) + steps + ex["actor"].encode()
    put("verify", "fold-basic.bin", raw)
    put("verify", "fold-actor-long.bin", root + bytes(8) + b"\0" + b"a" * 200)
    put("verify", "fold-actor-empty.bin", root + bytes(8) + b"\0")

    # Handler flows: NUL-separated `METHOD URL [AUTH]\nBODY` requests against a fresh service.
    def seq(*requests):
        return b"\0".join(requests)
    def req(method, url, body=b"", auth=None):
        line = f"{method} {url}" + (f" {auth}" if auth else "")
        return line.encode() + b"\n" + body
    for d in ["basic", "ties", "waterfill", "empty", "gen-001", "gen-007", "gen-013"]:
        i, p, compute_body, result = flow(node, d)
        epoch = urllib.parse.quote(i["epoch"], safe="")
        allocations = json.loads(result).get("allocations") or [{"actor": "nobody"}]
        actor = urllib.parse.quote(allocations[-1]["actor"], safe="")
        data = seq(
            req("PUT", "/rewarder/inputs", read(d, "inputs.json")),
            req("PUT", "/rewarder/policies", read(d, "policy.json")),
            req("POST", f"/rewarder/epochs/{epoch}/compute", compute_body),
            req("POST", f"/rewarder/epochs/{epoch}/compute?allocations=false", compute_body),
            req("GET", f"/rewarder/epochs/{epoch}"),
            req("GET", f"/rewarder/epochs/{epoch}?allocations=false"),
            req("GET", f"/rewarder/epochs/{epoch}/proof/{actor}"),
            req("GET", f"/rewarder/epochs/{epoch}/proof/no%2Fsuch"),
            req("GET", "/metrics"),
        )
        if len(data) <= SIZE_MAX:
            put("handler", f"flow-{d}.txt", data)

    # With tokens (HS256, the fuzz target's fixed key and `NOW + 3600`; keys sorted like serde_json).
    KEY, NOW = b"0123456789abcdef0123456789abcdef", 1_800_000_000
    def b64(b):
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    def mint(tenant, scopes):
        head = b64(json.dumps({"alg": "HS256", "kid": "k1", "typ": "JWT"}, separators=(",", ":")).encode())
        claims = b64(json.dumps({"exp": NOW + 3600, "scope": scopes, "tenant": tenant}, separators=(",", ":")).encode())
        sig = b64(hmac.new(KEY, f"{head}.{claims}".encode(), hashlib.sha256).digest())
        return f"Bearer {head}.{claims}.{sig}"
    t1, t2, t1_read = mint("t1", "compute read"), mint("t2", "compute read admin"), mint("t1", "read")
    forged = t1[:-2] + ("AA" if not t1.endswith("AA") else "BB")
    i, p, compute_body, _ = flow(node, "basic")
    epoch = i["epoch"]
    put("handler", "auth-tenants.txt", b"AUTH\n" + seq(
        req("PUT", "/rewarder/inputs", basic_inputs, auth=t1),
        req("PUT", "/rewarder/policies", basic_policy, auth=t1),
        req("POST", f"/rewarder/epochs/{epoch}/compute", compute_body, auth=t1),
        req("GET", f"/rewarder/epochs/{epoch}", auth=t1_read),
        req("GET", f"/rewarder/epochs/{epoch}/proof/acct%3Abob", auth=t1_read),
        req("GET", f"/rewarder/epochs/{epoch}", auth=t2),
        req("POST", f"/rewarder/epochs/{epoch}/compute", compute_body, auth=t2),
        req("PUT", "/rewarder/inputs", basic_inputs, auth=t1_read),
        req("GET", f"/rewarder/epochs/{epoch}", auth=forged),
        req("GET", f"/rewarder/epochs/{epoch}", auth="Bearer a.b.c"),
        req("GET", f"/rewarder/epochs/{epoch}"),
        req("POST", "/rewarder/admin/reload", b"", auth=t2),
        req("POST", "/rewarder/admin/reload", b"", auth=t1),
        req("GET", "/version"),
    ))
finally:
    node.stop()

pq = Node({"REQUIRE_PQ_ON": "true"})
try:
    _, _, _, result = flow(pq, "basic")
    put("verify", "result-basic-pq.json", result)
finally:
    pq.stop()

# Handler: probes, routing, malformed bodies, hostile shapes.
def seq(*requests):
    return b"\0".join(requests)
def req(method, url, body=b""):
    return f"{method} {url}".encode() + b"\n" + body
handler_cases = {
    "probes": seq(req("GET", "/healthz"), req("GET", "/readyz"), req("GET", "/version"), req("GET", "/rewarder/keys"), req("GET", "/metrics"),
                  req("HEAD", "/healthz"), req("POST", "/healthz"), req("GET", "/healthz?x=1")),
    "routing": seq(req("GET", "/"), req("GET", "*"), req("GET", "/rewarder"), req("DELETE", "/rewarder/inputs"),
                   req("GET", "/rewarder/epochs/"), req("GET", "/rewarder/epochs//proof/"),
                   req("GET", "/rewarder/epochs/e1/proof/a/b/c"), req("GET", "/rewarder/epochs/%ff%fe"),
                   req("GET", "/rewarder/epochs/e1/proof/%00%ff"), req("GET", "/rewarder/epochs/%zz"),
                   req("GET", "/rewarder/epochs/" + "e" * 300), req("POST", "/rewarder/admin/reload")),
    "invalid-inputs": seq(*[req("PUT", "/rewarder/inputs", c["raw"].encode()) for c in invalid if c["doc"] == "inputs"]),
    "invalid-policies": seq(*[req("PUT", "/rewarder/policies", c["raw"].encode()) for c in invalid if c["doc"] == "policy"]),
    "compute-bodies": seq(
        req("POST", "/rewarder/epochs/e1/compute", b""),
        req("POST", "/rewarder/epochs/e1/compute", b"{"),
        req("POST", "/rewarder/epochs/e1/compute", b"[]"),
        req("POST", "/rewarder/epochs/e1/compute", b'{"inputs_cid":"b3:00","policy_id":"p","policy_hash":"b3:00","extra":1}'),
        req("POST", "/rewarder/epochs/e1/compute", b'{"inputs_cid":"b3:00","policy_id":"p","policy_hash":"b3:00","dry_run":"yes"}'),
        req("POST", "/rewarder/epochs/e1/compute", b'{"inputs_cid":"b3:00","policy_id":"p","policy_hash":"b3:00"}'),
        req("POST", "/rewarder/epochs/e1/compute", b"[" * 1000 + b"]" * 1000),
        req("POST", "/rewarder/epochs/e1/compute", b'{"inputs_cid":' + b"1" * 10000 + b"}"),
    ),
    "mismatch": seq(
        req("PUT", "/rewarder/inputs", basic_inputs), req("PUT", "/rewarder/policies", basic_policy),
        req("POST", "/rewarder/epochs/other/compute", b'{"inputs_cid":"b3:071b72a2e6b1c10f41e6adc039c749a2ffe08805d66ba593e980358ace15b8aa","policy_id":"rev42","policy_hash":"b3:e6e9e681af6fd44e9bb9dcdb921e86b055d1c81fc98af87a2870630bf2e381b4"}'),
        req("POST", "/rewarder/epochs/2026-11-29/compute", b'{"inputs_cid":"b3:071b72a2e6b1c10f41e6adc039c749a2ffe08805d66ba593e980358ace15b8aa","policy_id":"other","policy_hash":"b3:e6e9e681af6fd44e9bb9dcdb921e86b055d1c81fc98af87a2870630bf2e381b4"}'),
        req("GET", "/rewarder/epochs/2026-11-29"),
    ),
    "deep-inputs": req("PUT", "/rewarder/inputs", b"[" * 2000 + b"]" * 2000),
    "deep-policy": req("PUT", "/rewarder/policies", b'{"weights":' + b"{\"a\":" * 1000 + b"1" + b"}" * 1001),
}
for name, data in handler_cases.items():
    put("handler", f"{name}.txt", data)

print(json.dumps({"corpora": out_dir, "files": written}))
PY
