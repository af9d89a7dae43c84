#!/usr/bin/env bash
# The test command: sets up .venv (ROS 2 Kilted wheels) and .venv-jazzy (ROS 2 Jazzy wheels)
# if needed, runs the whole suite on Kilted, then the node and bag tests (test/node,
# test/offline) on Jazzy, all on CPU, and prints which distribution passed. Arguments go to
# both pytest runs; SEGDIP_TEST_DISTROS="kilted" (or "jazzy") runs only that one.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
distros="${SEGDIP_TEST_DISTROS:-kilted jazzy}"
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-OFF}"
export CUDA_VISIBLE_DEVICES="${SEGDIP_TEST_CUDA:-}"   # tests run on CPU
declare -A result
status=0
passed=0
failed=0
for distro in $distros; do
  start=$SECONDS
  case "$distro" in
    kilted)
      bash scripts/bootstrap.sh || exit 1
      .venv/bin/python -m pytest -q -p no:cacheprovider test "$@"
      rc=$? ;;
    jazzy)
      bash scripts/bootstrap_jazzy.sh || exit 1
      .venv-jazzy/bin/python -m pytest -q -p no:cacheprovider test/node test/offline "$@"
      rc=$? ;;
    *) echo "unknown distribution $distro (kilted, jazzy)" >&2; exit 2 ;;
  esac
  if [ $rc -eq 0 ]; then
    result[$distro]="passed"; passed=$((passed + 1))
  elif [ $rc -eq 5 ] && [ $# -gt 0 ]; then   # the arguments selected no test of this run
    result[$distro]="no test selected"
  else
    result[$distro]="FAILED (pytest exit $rc)"; failed=$((failed + 1)); status=1
  fi
  result[$distro]+=" in $((SECONDS - start)) s"
  echo "[test] ROS 2 ${distro}: ${result[$distro]}"
done
echo "[test] summary:"
for distro in $distros; do echo "[test]   ROS 2 ${distro}: ${result[$distro]}"; done
echo "distributions: ${passed} passed, ${failed} failed"
exit $status
