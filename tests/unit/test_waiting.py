"""The one wait helper: returns the check's first true value; running out names what was awaited."""

from __future__ import annotations

import pytest

from nodeagent.testing.waiting import NotReached, wait_until


def test_the_first_true_value_is_returned():
    values = iter([None, [], {"ready": 1}])
    assert wait_until(lambda: next(values), timeout=5, step=0.01) == {"ready": 1}


def test_running_out_names_what_was_awaited_and_the_last_value():
    with pytest.raises(NotReached, match=r"the agent converged: not within 0.05 s \(last value: \[\]\)"):
        wait_until(lambda: [], timeout=0.05, what="the agent converged", step=0.01)


def test_without_a_name_the_check_itself_is_shown():
    with pytest.raises(NotReached, match=r"lambda: 1 == 2"):
        wait_until(lambda: 1 == 2, timeout=0.05, step=0.01)


def test_running_out_is_an_assertion_for_tests_and_a_timeout_for_the_lab():
    assert issubclass(NotReached, AssertionError) and issubclass(NotReached, TimeoutError)
