#!/usr/bin/env bash
# Creates (or refreshes) the project environment in .venv/ at the project root:
# the pinned requirements, then this package in editable mode. Idempotent and quick when
# nothing changed (a stamp of requirements.txt + setup.py is kept in .venv/).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
py="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "[bootstrap] creating .venv with $($py --version)" >&2
  "$py" -m venv .venv
fi
stamp=".venv/.segdip_stamp"
want="$(cat requirements.txt setup.py package.xml | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "[bootstrap] installing requirements (first run takes a few minutes)" >&2
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -r requirements.txt
  .venv/bin/python -m pip install --quiet --no-deps -e .
  echo "$want" > "$stamp"
fi
# system package for the browser tests (never fails the bootstrap)
bash "$root/scripts/install_browser.sh" || true
