#!/usr/bin/env bash
# Debian's chromium for the browser tests of the labelling console (Playwright drives it; no
# browser is downloaded by Playwright). Idempotent; never fails the caller: without chromium
# those tests skip with the reason.
set -uo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "[install_browser] no apt-get: browser tests will skip (install chromium yourself)" >&2
  exit 0
fi
sudo=""
if [ "$(id -u)" != "0" ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo="sudo -n"
  else
    echo "[install_browser] not root and no sudo: browser tests will skip" >&2
    exit 0
  fi
fi
echo "[install_browser] installing Debian chromium (apt-get)" >&2
export DEBIAN_FRONTEND=noninteractive
if ! $sudo apt-get install -y -q chromium >/dev/null 2>&1; then
  $sudo apt-get update -q >/dev/null 2>&1 || true
  $sudo apt-get install -y -q chromium >/dev/null 2>&1 \
    || echo "[install_browser] apt-get install chromium failed: browser tests will skip" >&2
fi
exit 0
