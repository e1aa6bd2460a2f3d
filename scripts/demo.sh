#!/usr/bin/env bash
# The main job: set this machine up, then run a coordinator and two agents (network1,
# compute1) on lab nodes over the real RabbitMQ; accept them, push their documents,
# watch them converge, plan a hand-made drift, push again. Run as root.
# --keep leaves the fleet running until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python scripts/demo.py "$@"
