"""The retry schedule of failed resources (kopf's TemporaryError(delay) model), on a clock the test moves."""

from __future__ import annotations

from nodeagent.kit.errors import Conflict, PermanentError, TemporaryError
from nodeagent.node.retry import Retries


def test_a_temporary_failure_backs_off_exponentially_up_to_the_cap():
    retries = Retries(first=1.0, cap=10.0)
    now, waits = 100.0, []
    for _ in range(6):
        due = retries.failed("svc", now, temporary=True)
        waits.append(due - now)
        assert retries.take_due(due - 0.001) == []  # not before its time
        assert retries.take_due(due) == ["svc"]
        now = due
    assert waits == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_the_errors_own_delay_wins_and_still_counts_as_an_attempt():
    retries = Retries(first=1.0, cap=60.0)
    assert retries.failed("svc", 0.0, temporary=True, delay=7.5) == 7.5
    assert retries.failed("svc", 10.0, temporary=True) == 12.0  # the second attempt: 2 s
    assert retries.failed("svc", 20.0, temporary=True, delay=0.0) == 20.0


def test_a_success_resets_the_schedule():
    retries = Retries(first=1.0, cap=60.0)
    for now in (0.0, 1.0, 3.0):
        retries.failed("svc", now, temporary=True)
    retries.succeeded("svc")
    assert retries.next_at() is None
    assert retries.failed("svc", 50.0, temporary=True) == 51.0


def test_a_permanent_failure_is_not_retried_and_drops_a_pending_retry():
    retries = Retries()
    retries.failed("svc", 0.0, temporary=True)
    assert retries.failed("svc", 0.5, temporary=False) is None
    assert retries.next_at() is None
    assert retries.take_due(1e9) == []


def test_next_at_is_the_earliest_and_take_due_takes_only_what_is_due():
    retries = Retries(first=1.0)
    retries.failed("a", 10.0, temporary=True, delay=5.0)
    retries.failed("b", 10.0, temporary=True, delay=2.0)
    assert retries.next_at() == 12.0
    assert retries.take_due(12.0) == ["b"]
    assert retries.next_at() == 15.0
    retries.clear()
    assert retries.next_at() is None


def test_temporary_errors_carry_their_delay():
    assert TemporaryError("busy", delay=3).delay == 3
    assert TemporaryError("busy").delay is None
    assert Conflict("edited").temporary and Conflict("edited").kind == "conflict"
    assert not PermanentError("gone").temporary
