#!/usr/bin/env bash
# The main job: set this machine up, then deploy the three-node guide from roles with a
# coordinator and three agents (controller, network1, compute1) on lab nodes over the real
# RabbitMQ and Open vSwitch; show convergence, a drift fixed at once, a variable re-pushed.
# Runs until Ctrl-C, then cleans up (--once: stop after the tour). Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python scripts/demo.py "$@"
