#!/usr/bin/env bash
# The test command: sets up .venv if needed, then runs the whole test suite on CPU.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/bootstrap.sh"
cd "$root"
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-OFF}"
export CUDA_VISIBLE_DEVICES="${SEGDIP_TEST_CUDA:-}"   # tests run on CPU
exec .venv/bin/python -m pytest -q -p no:cacheprovider test "$@"
