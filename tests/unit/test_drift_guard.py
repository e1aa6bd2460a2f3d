"""The guard against fighting: contested after ``limit`` drifts in a window, backed off, doubling, forgiven."""

from __future__ import annotations

from nodeagent.node.drift import DriftGuard


def test_the_limit_th_drift_within_the_window_contests_and_backs_off():
    guard = DriftGuard(limit=3, window=60, backoff=30)
    assert [guard.record("r", t) for t in (0, 10, 20)] == [False, False, True]
    assert guard.backed_off("r", 49.9) and not guard.backed_off("r", 50.0)
    assert not guard.backed_off("other", 20)


def test_drifts_further_apart_than_the_window_never_contest():
    guard = DriftGuard(limit=2, window=10, backoff=30)
    assert [guard.record("r", t) for t in (0, 11, 22, 33)] == [False, False, False, False]


def test_the_backoff_doubles_up_to_the_cap_and_is_forgiven_after_a_quiet_window():
    guard = DriftGuard(limit=1, window=60, backoff=30, max_backoff=100)
    ends = []
    now = 0.0
    for _ in range(4):
        assert guard.record("r", now)
        ends.append(guard.until["r"] - now)
        now = guard.until["r"]
    assert ends == [30, 60, 100, 100]
    assert not guard.backed_off("r", now + 61)  # quiet for a window after the last backoff: forgiven
    assert guard.record("r", now + 62) and guard.until["r"] == now + 62 + 30
