"""Faults: the agent killed while it applies, and its state directory full.

The long SIGKILL run is benchmarks/sigkill.py.
"""

from __future__ import annotations

import errno
import json
import logging
import subprocess
from pathlib import Path

import pytest

from tests import fuzzing
from tests.killing import run_kills


def test_sigkill_at_random_points_during_applies_tears_nothing_and_the_next_start_converges(tmp_path):
    figures = run_kills(tmp_path, kills=8)
    assert figures.mid_apply >= 1  # the kills did land inside applies (about 8 in 10 do)
    assert figures.torn == []
    assert figures.converged
    assert figures.leftovers_at_end == []


@pytest.fixture
def small_state_dir(tmp_path):
    """A 64 KB tmpfs of the test's own as the agent's state directory, unmounted afterwards."""
    mount = tmp_path / "state"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(directory: Path) -> Path:
    """Take every free byte of the filesystem of ``directory``."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as stream:
        try:
            while True:
                stream.write(b"\0" * 1024)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def test_a_full_state_directory_gives_a_clear_error_and_corrupts_nothing(tmp_path, small_state_dir, caplog):
    target = fuzzing.RpcTarget(tmp_path, state_dir=small_state_dir)
    agent, seal = target.agent, target.sealed_document
    conf = target.root / "etc/neutron/neutron.conf"

    assert agent.worker.take(seal(1, "one"), "a push")
    assert "debug = one" in conf.read_text()
    filler = fill(small_state_dir)

    caplog.set_level(logging.WARNING)
    agent.worker.take(seal(2, "two"), "a push")  # must not raise
    assert "debug = two" in conf.read_text()  # the node still gets its state
    conf.write_text(conf.read_text().replace("debug = two", "debug = drifted"))
    agent.enforcer.reconcile("event", only=["conf"])  # must not raise either
    assert "debug = two" in conf.read_text()

    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(f"state directory {small_state_dir}" in e and "No space left on device" in e for e in errors), errors
    assert all("\n" not in e for e in errors)
    cached = json.loads((small_state_dir / "document.json").read_text())  # whole, of one generation or the other
    assert cached["payload"]["generation"] in (1, 2)
    json.loads((small_state_dir / "status.json").read_text())
    assert not [p for p in small_state_dir.rglob("*") if p.suffix == ".tmp"]

    filler.unlink()  # space again: the next generation is cached and the status written
    assert agent.worker.take(seal(3, "three"), "a push")
    assert json.loads((small_state_dir / "document.json").read_text())["payload"]["generation"] == 3
    assert json.loads((small_state_dir / "status.json").read_text())["generation"] == 3
