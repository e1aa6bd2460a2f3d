#!/usr/bin/env bash
# Run the whole test suite (unit and functional, real RabbitMQ / Open vSwitch / namespaces).
# Sets the machine up first (scripts/setup.sh is quick when everything is there).
# Extra arguments go to pytest, e.g. scripts/test.sh tests/unit -k ini
#
# Tests run in random order (pytest-randomly; it prints the seed: rerun one order with -p randomly
# --randomly-seed=N) and in parallel: NODEAGENT_TEST_WORKERS processes (pytest-xdist, default 3; 0 runs
# in this process), each taking whole files (--dist loadfile), so a module's fleet stays in one worker.
# Most of the suite waits on real services, not on the two cores: more workers than cores pays.
# The files that take many minutes go first (tests/conftest.py LONG_FILES; xdist would order by test count).
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
workers=${NODEAGENT_TEST_WORKERS:-3}
parallel=()
if [ "$workers" != 0 ]; then
    parallel=(-n "$workers" --dist loadfile --no-loadscope-reorder)  # long files first: tests/conftest.py
fi
# A temporary folder of this run's own: pytest's default (/tmp/pytest-of-USER/pytest-N) keeps the newest three
# and deletes older ones, which another run on this machine may still be using (a lab's MariaDB among them).
# Kept when the run fails, for its logs.
basetemp=$(mktemp -d /tmp/nodeagent-tests.XXXXXX)
.venv/bin/python -m pytest "${parallel[@]}" --basetemp "$basetemp" "$@"
status=$?
if [ "$status" -eq 0 ]; then
    rm -rf --one-file-system "$basetemp"
else
    echo "test files and logs kept in $basetemp" >&2
fi
if [ "$status" -eq 5 ]; then
    echo "pytest collected no tests: that is a failure" >&2
    exit 1
fi
exit "$status"
