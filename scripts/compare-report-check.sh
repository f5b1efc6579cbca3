#!/usr/bin/env bash
# Opens the compare report (API.md §1.3, `rewarder-micronode compare --html`) in headless
# Chromium and fails unless it renders with no console message and no request of its own:
#   - hostile: actor ids that are markup (testing/compare/hostile-inputs.json, under the ties
#     policy and testing/compare/hostile-policy-b.json, which moves and caps them) — the DOM
#     Chromium builds must hold no <script>, <img> or event handler, only the ids as text;
#   - waterfill: the golden comparison of testing/compare/waterfill;
#   - generated: a generated S epoch under its policy and testing/compare/generated-policy-b.json
#     (the screenshot, build/compare-report/generated.png).
# A canary page (an inline script that logs, an image on 127.0.0.1:9, no CSP) must trip both
# detectors, so a silent Chromium cannot pass the check vacuously.
#
# Console messages are read from Chromium's log (--enable-logging=stderr: `:CONSOLE` lines,
# CSP violations included); requests from its NetLog (--log-net-log): a request the page made
# has the page's origin as initiator, the browser's own background jobs have none (and reach no
# host: every name resolves to NOTFOUND).
#
#   bash scripts/compare-report-check.sh                  # the check (scripts/test.sh)
#   bash scripts/compare-report-check.sh --update-docs    # also refresh docs/compare-report.png
set -euo pipefail
cd "$(dirname "$0")/.."

update_docs=0
case "${1:-}" in
  --update-docs) update_docs=1 ;;
  "") ;;
  *) echo "compare-report-check: unknown argument $1" >&2; exit 2 ;;
esac

command -v chromium >/dev/null 2>&1 || bash scripts/setup.sh
# shellcheck source=scripts/vectors.sh
source scripts/vectors.sh

out="$(pwd)/build/compare-report"
rm -rf "$out"
mkdir -p "$out"
cargo build -q --locked -p rewarder-micronode -p rewarder-testkit
bin=target/debug/rewarder-micronode

"$bin" compare --inputs testing/compare/hostile-inputs.json --policy "$REWARDER_VECTORS/ties/policy.json" \
  --policy testing/compare/hostile-policy-b.json --html "$out/hostile.html" >/dev/null
"$bin" compare --inputs "$REWARDER_VECTORS/waterfill/inputs.json" --policy "$REWARDER_VECTORS/waterfill/policy.json" \
  --policy testing/compare/waterfill/policy-b.json --html "$out/waterfill.html" >/dev/null
target/debug/rewarder-testkit vectors --scale S --out "$out/s" 2>/dev/null
"$bin" compare --inputs "$out/s/inputs.json" --policy "$out/s/policy.json" \
  --policy testing/compare/generated-policy-b.json --html "$out/generated.html" >/dev/null
cat >"$out/canary.html" <<'HTML'
<!DOCTYPE html><html><head><meta charset="utf-8"><title>canary</title></head>
<body><img src="http://127.0.0.1:9/canary.png"><script>console.error("canary")</script></body></html>
HTML

# open NAME [EXTRA_FLAG…]: loads $out/NAME.html; DOM, log and NetLog land beside it.
open_page() {
  local name="$1"
  shift
  timeout 120 chromium --headless --no-sandbox --disable-gpu --disable-background-networking \
    --disable-component-update --disable-sync --no-first-run --disable-default-apps \
    --host-resolver-rules="MAP * ~NOTFOUND" --user-data-dir="$out/$name.profile" \
    --enable-logging=stderr --v=0 --log-net-log="$out/$name.netlog.json" "$@" \
    "file://$out/$name.html" >"$out/$name.dom.html" 2>"$out/$name.log"
}

# findings NAME: one line per console message and per request the page made.
findings() {
  grep -h ':CONSOLE' "$out/$1.log" || true
  python3 - "$out/$1.netlog.json" <<'PY'
import json, sys
log = json.load(open(sys.argv[1]))
names = {v: k for k, v in log["constants"]["logEventTypes"].items()}
for event in log["events"]:
    params = event.get("params") or {}
    started = names.get(event["type"]) == "URL_REQUEST_START_JOB" and "url" in params
    if started and params.get("initiator") != "not an origin":
        print("request:", params.get("url"))
PY
}

failed=0
open_page canary --dump-dom
canary="$(findings canary)"
if ! grep -q 'canary' <<<"$canary" || ! grep -q '^request: http://127.0.0.1:9/canary.png' <<<"$canary"; then
  echo "compare-report-check: the canary page went unnoticed; the detectors are blind:" >&2
  echo "$canary" >&2
  exit 1
fi

for name in hostile waterfill generated; do
  open_page "$name" --dump-dom
  found="$(findings "$name")"
  if [ -n "$found" ]; then
    echo "compare-report-check: $name.html: console messages or requests:" >&2
    echo "$found" >&2
    failed=1
  fi
  if ! grep -q '<h2>Manifests</h2>' "$out/$name.dom.html"; then
    echo "compare-report-check: $name.html did not render (no Manifests section in the DOM)" >&2
    failed=1
  fi
done
if grep -Eiq '<(script|img|iframe|object|embed)[ />]| on[a-z]+=' "$out/hostile.dom.html"; then
  echo "compare-report-check: hostile.html: a hostile actor id became markup:" >&2
  grep -Eio '.{0,60}<(script|img|iframe|object|embed)[ />].{0,60}| on[a-z]+=.{0,40}' "$out/hostile.dom.html" >&2 || true
  failed=1
fi
grep -q '&lt;script&gt;alert(1)&lt;/script&gt;' "$out/hostile.dom.html" \
  || { echo "compare-report-check: hostile.html: the ids are not shown as text" >&2; failed=1; }

open_page generated --hide-scrollbars --window-size=1200,1500 --screenshot="$out/generated.png"
[ -s "$out/generated.png" ] || { echo "compare-report-check: no screenshot" >&2; failed=1; }
if [ "$update_docs" = 1 ]; then
  cp "$out/generated.png" docs/compare-report.png
  echo "compare-report-check: docs/compare-report.png refreshed" >&2
fi

[ "$failed" = 0 ] || exit 1
echo "compare-report-check: 3 reports rendered in Chromium with no console message and no request" >&2
