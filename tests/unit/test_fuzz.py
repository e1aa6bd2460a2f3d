"""Fuzzing, the short run for CI (a few hundred examples each); benchmarks/fuzz.py runs >= 10,000.

See tests/fuzzing.py for the strategies and what each property promises.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

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


@SHORT
@given(case=fuzzing.rpc_payloads())
def test_rpc_payloads_are_answered_or_refused_never_raised(tmp_path_factory, case):
    target = _target(tmp_path_factory)
    target.check(*case)


_TARGETS: dict[int, fuzzing.RpcTarget] = {}


def _target(tmp_path_factory) -> fuzzing.RpcTarget:
    # One agent per test run (making one costs a key and a state directory); its scratch root is checked
    # unchanged around each refused example, so examples do not depend on each other's outcome.
    key = id(tmp_path_factory)
    if key not in _TARGETS:
        _TARGETS[key] = fuzzing.RpcTarget(tmp_path_factory.mktemp("rpc"))
    return _TARGETS[key]


@SHORT
@given(case=fuzzing.reports())
def test_reports_to_the_coordinator_are_stored_or_refused_never_raised(tmp_path_factory, case):
    key = ("coordinator", id(tmp_path_factory))
    if key not in _COORDINATORS:
        _COORDINATORS[key] = fuzzing.CoordinatorTarget(tmp_path_factory.mktemp("coordinator"))
    _COORDINATORS[key].check(*case)


_COORDINATORS: dict[tuple, fuzzing.CoordinatorTarget] = {}
