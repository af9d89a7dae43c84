#!/usr/bin/env bash
# The main job on its embedded default: sets up .venv if needed, then runs the node on a
# generated scene with scripted clicks (no camera, no ROS install) and writes the overlays.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/bootstrap.sh"
cd "$root"
exec .venv/bin/segdip_demo "$@"
