#!/usr/bin/env bash
# The main job: set this machine up, then deploy the three-node guide from roles onto the real
# OpenStack services (Neutron 2025.2, Keystone, MariaDB, RabbitMQ) on three lab nodes, judged by
# Neutron's own agent list; a drift fixed and the agent restarted.
# Runs until Ctrl-C, then cleans up (--once: stop after the tour). Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python scripts/demo.py "$@"
