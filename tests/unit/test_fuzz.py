"""Fuzzing, the short run for CI (a few hundred examples each); benchmarks/fuzz.py runs >= 10,000.

See tests/fuzzing.py for the strategies and what each property promises.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tests import fuzzing

SHORT = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None)


@SHORT
@given(raw=fuzzing.documents())
def test_documents_are_parsed_or_refused_in_one_line_and_invalid_ones_change_nothing(registry, raw):
    with tempfile.TemporaryDirectory() as scratch:
        fuzzing.check_document(raw, registry, Path(scratch))


@SHORT
@given(text=fuzzing.YAML_TEXT)
def test_yaml_text_is_loaded_or_refused_in_one_line(text):
    fuzzing.check_yaml_text(text)


@SHORT
@given(text=fuzzing.INI_TEXT, section=fuzzing.SECTION, key=fuzzing.INI_KEY,
       values=st.lists(fuzzing.INI_VALUE, max_size=3))
def test_ini_round_trip_is_the_identity_on_unmanaged_lines(text, section, key, values):
    fuzzing.check_ini_round_trip(text, section, key, values)


@pytest.fixture
def agent_target(tmp_path):
    """One agent (not started) per test, shared by its examples: hypothesis runs them all in one call of
    the test, so this function-scoped fixture is made once (the health check about that is suppressed)."""
    return fuzzing.RpcTarget(tmp_path)


@pytest.fixture
def coordinator_target(tmp_path):
    return fuzzing.CoordinatorTarget(tmp_path)


@SHORT
@given(case=fuzzing.rpc_payloads())
def test_rpc_payloads_are_answered_or_refused_never_raised(agent_target, case):
    agent_target.check(*case)


@SHORT
@given(case=fuzzing.reports())
def test_reports_to_the_coordinator_are_stored_or_refused_never_raised(coordinator_target, case):
    coordinator_target.check(*case)
