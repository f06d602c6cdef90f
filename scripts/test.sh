#!/usr/bin/env bash
# The one test command (README, CI): sets up a virtualenv, installs pushctl with its
# test extra, then runs ruff, mypy, the architecture contracts (import-linter) and pytest on
# every core (pytest-xdist). Extra arguments go to pytest (e.g. -n 0 for one process).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${PUSHCTL_VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -e '.[test]'
echo "== ruff"; "$VENV/bin/ruff" check pushctl tests scripts benchmarks
echo "== mypy"; "$VENV/bin/mypy"
echo "== lint-imports"; "$VENV/bin/lint-imports" --no-cache
echo "== pytest"
set +e
"$VENV/bin/python" -m pytest -n auto --dist worksteal "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure here" >&2
  exit 1
fi
exit "$rc"
