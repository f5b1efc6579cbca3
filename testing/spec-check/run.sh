#!/usr/bin/env bash
# Independent check of the written specification (docs/spec/) against the golden vectors
# (testing/vectors/): runs spec_check.py, a Python reimplementation written from the spec text
# alone. Installs the PyPI package `blake3` when the interpreter lacks it: into a venv under
# build/ next to this script, or (where venv is unavailable) with `pip install --user`.
# Ends with `spec-check: N passed, M failed`; exits non-zero when M > 0.
# Environment: PYTHON (default python3).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
base_py="${PYTHON:-python3}"
venv="$here/build/venv"

has_blake3() { "$1" -c 'import blake3' >/dev/null 2>&1; }

if has_blake3 "$base_py"; then
  py="$base_py"
elif [ -x "$venv/bin/python" ] && has_blake3 "$venv/bin/python"; then
  py="$venv/bin/python"
else
  echo "spec-check: installing blake3" >&2
  if "$base_py" -m venv --clear "$venv" >/dev/null 2>&1 \
      && "$venv/bin/python" -m pip install --quiet --disable-pip-version-check blake3 >&2 \
      && has_blake3 "$venv/bin/python"; then
    py="$venv/bin/python"
  else
    rm -rf "$venv"
    "$base_py" -m pip install --user --quiet --disable-pip-version-check blake3 >/dev/null 2>&1 \
      || "$base_py" -m pip install --user --quiet --disable-pip-version-check \
           --break-system-packages blake3 >&2
    py="$base_py"
  fi
fi

exec "$py" "$here/spec_check.py" "$root/testing/vectors"
