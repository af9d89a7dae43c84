#!/usr/bin/env bash
# Creates (or refreshes) the second test environment in .venv-jazzy/: the libraries of
# requirements.txt with the ROS 2 Jazzy wheels (requirements-jazzy.txt) instead of the Kilted
# ones, and this package in editable mode. scripts/test.sh runs the node and bag tests in it.
# Idempotent and quick when nothing changed (a stamp is kept in .venv-jazzy/).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
py="${PYTHON:-python3}"
venv=.venv-jazzy
if [ ! -x "$venv/bin/python" ]; then
  echo "[bootstrap_jazzy] creating $venv with $($py --version)" >&2
  "$py" -m venv "$venv"
fi
stamp="$venv/.segdip_stamp"
want="$(cat requirements-jazzy.txt setup.py package.xml | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "[bootstrap_jazzy] installing the Jazzy requirements (first run takes a few minutes)" >&2
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet -r requirements-jazzy.txt
  "$venv/bin/python" -m pip install --quiet --no-deps -e .
  echo "$want" > "$stamp"
fi
