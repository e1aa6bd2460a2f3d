"""DriftGuard (stop fighting what keeps changing a resource) and the Spool (drift events kept on disk
until the coordinator has them): pure parts, tested with explicit clock values and a real directory."""

from __future__ import annotations

import json
import os

import pytest

from nodeagent.node.drift import DriftGuard, Spool
from nodeagent.wire.messages import Event


def test_drifts_below_the_limit_within_the_window_are_not_contested():
    guard = DriftGuard(limit=3, window=30, backoff=8)
    assert not guard.record("r", 100.0)
    assert not guard.record("r", 110.0)
    assert not guard.backed_off("r", 111.0)


def test_the_limit_within_the_window_contests_and_backs_off_until_the_backoff_ends():
    guard = DriftGuard(limit=3, window=30, backoff=8)
    guard.record("r", 100.0)
    guard.record("r", 110.0)
    assert guard.record("r", 120.0)
    assert guard.backed_off("r", 120.0) and guard.backed_off("r", 127.9)
    assert not guard.backed_off("r", 128.1)
    assert not guard.backed_off("other", 121.0)  # one resource's fight is not another's


def test_drifts_further_apart_than_the_window_never_add_up():
    guard = DriftGuard(limit=3, window=30, backoff=8)
    assert not any(guard.record("r", 100.0 + 31 * i) for i in range(10))


def test_the_backoff_doubles_while_the_fight_goes_on_and_is_capped():
    guard = DriftGuard(limit=2, window=30, backoff=8, max_backoff=20)
    guard.record("r", 0.0)
    assert guard.record("r", 1.0)
    assert guard.until["r"] == 9.0
    guard.record("r", 10.0)
    assert guard.record("r", 11.0)
    assert guard.until["r"] == 11.0 + 16
    guard.record("r", 30.0)
    assert guard.record("r", 31.0)
    assert guard.until["r"] == 31.0 + 20  # 32 s asked, capped


def test_a_resource_quiet_for_a_window_after_its_backoff_is_forgiven():
    guard = DriftGuard(limit=2, window=30, backoff=8)
    guard.record("r", 0.0)
    assert guard.record("r", 1.0)  # backed off until 9
    assert not guard.backed_off("r", 9.5)  # backoff over, not yet forgiven
    assert "r" in guard.strikes
    assert not guard.backed_off("r", 9.0 + 31)  # quiet for a window after the backoff
    assert "r" not in guard.strikes and "r" not in guard.until
    guard.record("r", 100.0)
    assert guard.record("r", 101.0)
    assert guard.until["r"] == 109.0  # the first backoff again, not the doubled one


@pytest.fixture
def spool(tmp_path):
    return Spool(tmp_path / "spool")


def event(detail: str) -> Event:
    return Event(id=f"id-{detail[:20]}", type="apply.succeeded", detail=detail, at=1.0)


def test_the_spool_gives_events_back_in_order_until_acknowledged(spool):
    for number in range(3):
        spool.append(event(str(number)))
    pending = spool.pending()
    assert [e for _, e in pending] == [event("0"), event("1"), event("2")]
    assert len(spool) == 3
    spool.acknowledge([path for path, _ in pending[:2]])
    assert [e for _, e in spool.pending()] == [event("2")]
    assert [e for _, e in spool.pending(limit=0)] == []


def test_the_spool_is_owner_only_and_survives_a_restart(spool, tmp_path):
    spool.append(event(str(1)))
    assert os.stat(tmp_path / "spool").st_mode & 0o777 == 0o700
    (path, _), = spool.pending()
    assert os.stat(path).st_mode & 0o777 == 0o600
    again = Spool(tmp_path / "spool")  # the agent restarted: numbering goes on after what is there
    again.append(event("2"))
    assert [e for _, e in again.pending()] == [event("1"), event("2")]


def test_the_spool_writes_whole_events_and_leaves_no_temporary_file(spool, tmp_path):
    spool.append(event("x" * 100_000))
    assert [p.name for p in (tmp_path / "spool").iterdir()] == ["000000000001.json"]
    assert json.loads((tmp_path / "spool" / "000000000001.json").read_text())["detail"] == "x" * 100_000


def test_a_torn_event_from_a_crash_is_dropped_not_delivered(spool, tmp_path):
    spool.append(event(str(1)))
    (tmp_path / "spool" / "000000000002.json").write_text('{"n": ')  # what a crash mid-write could leave
    spool.next_number = 3
    spool.append(event(str(3)))
    assert [e for _, e in spool.pending()] == [event("1"), event("3")]
    assert len(spool) == 2
