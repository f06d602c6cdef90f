#!/usr/bin/env bash
# The README's first command: set up a virtualenv (once), then send the sample campaign to the
# built-in emulator: APNs, FCM, Web Push and HMS devices. Extra arguments go to `pushctl send`.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${PUSHCTL_VENV:-.venv}"
if [ ! -x "$VENV/bin/pushctl" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e .
fi
set +e
"$VENV/bin/pushctl" send samples/templates/welcome.yaml --audience samples/audience.csv --emulator "$@"
rc=$?
set -e
if [ "$rc" -eq 1 ]; then
  echo "(exit 1 is expected here: the sample audience holds deliberately invalid tokens)" >&2
fi
exit "$rc"
