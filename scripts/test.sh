#!/usr/bin/env bash
# Run the whole test suite (unit and functional, real RabbitMQ / Open vSwitch / namespaces).
# Sets the machine up first (scripts/setup.sh is quick when everything is there).
# Extra arguments go to pytest, e.g. scripts/test.sh tests/unit -k ini
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
.venv/bin/python -m pytest "$@"
status=$?
if [ "$status" -eq 5 ]; then
    echo "pytest collected no tests: that is a failure" >&2
    exit 1
fi
exit "$status"
