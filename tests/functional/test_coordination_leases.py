"""Coordinators' locks on a real Redis (``coordination_url = redis://...``) are leases: a live holder keeps its
lock past the lease by renewing it, a hung (SIGSTOPped) one loses it when the lease runs out and another
coordinator takes the work on. (On the SQL backends a hung holder keeps its lock: test_inventory_sql.py.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from nodeagent.fleet.coordination import Coordination
from nodeagent.kit.errors import Unavailable
from nodeagent.testing.redisserver import Redis

LEASE = 2  # seconds: the lock_timeout these tests give tooz


@pytest.fixture
def redis(tmp_path):
    server = Redis(tmp_path / "redis").start()
    yield server
    server.stop()


def hold(url: str, name: str) -> subprocess.Popen:
    """Another coordinator's process holding lock ``name`` (it says 'held') until it is killed."""
    holder = subprocess.Popen([sys.executable, "-c", (
        "import time\nfrom nodeagent.fleet.coordination import Coordination\n"
        f"c = Coordination({url!r}, 'holder')\n"
        f"with c.held({name!r}, wait=10):\n    print('held', flush=True)\n    time.sleep(600)\n")],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_live_holder_keeps_its_lease_and_a_hung_one_loses_it(redis):
    url = redis.url(lock_timeout=LEASE)
    other = Coordination(url, "c2")
    holder = hold(url, "converge")
    try:
        time.sleep(2.5 * LEASE)  # longer than two leases: the holder renews its own
        with pytest.raises(Unavailable, match="another coordinator holds lock 'converge'"):
            with other.held("converge", wait=1):
                pass
        os.kill(holder.pid, signal.SIGSTOP)  # hung: it renews nothing more
        hung = time.monotonic()
        with other.held("converge", wait=3 * LEASE):
            taken = time.monotonic() - hung
        assert taken < LEASE + 1.5  # the lease ran out, no later than a renewal's interval after it
    finally:
        holder.kill()
        holder.wait(10)
        other.stop()


def test_a_holder_that_comes_back_after_its_lease_ran_out_lets_go_of_nothing(redis):
    """Its release finds the lock another holds now: it leaves that alone, and does not fail its own work."""
    url = redis.url(lock_timeout=LEASE)
    late, other, third = Coordination(url, "c1"), Coordination(url, "c2"), Coordination(url, "c3")
    try:
        late_held = late.held("rollouts", wait=1)
        late_held.__enter__()
        late._stopping.set()  # its renewals stop, as a hang stops them
        other_held = other.held("rollouts", wait=3 * LEASE)
        other_held.__enter__()  # the lease ran out: the other coordinator holds it
        late_held.__exit__(None, None, None)  # back: its release raises nothing
        with pytest.raises(Unavailable, match="another coordinator holds lock 'rollouts'"):
            with third.held("rollouts", wait=1):  # and took nothing from the other
                pass
        other_held.__exit__(None, None, None)
        with third.held("rollouts", wait=1):
            pass
    finally:
        for coordination in (late, other, third):
            coordination.stop()
