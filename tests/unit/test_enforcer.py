"""The enforcer on real files under a scratch root: drift timed by its own touch, temporary failures retried."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from nodeagent.drivers.file import FileDriver
from nodeagent.kit.context import Context
from nodeagent.kit.errors import PermanentError, TemporaryError
from nodeagent.document.model import parse_document
from nodeagent.document.registry import DriverRegistry
from nodeagent.kit.watches import File, Touch
from nodeagent.node.enforcer import MAX_DEBOUNCE, Enforcer, Outlet, Pacing
from nodeagent.node.engine import Engine


class FailingFile(FileDriver):
    """A file driver whose writes fail ``failures`` more times with ``error`` (a busy disk, a refusal)."""

    def __init__(self, error: Exception):
        self.error, self.failures = error, 0

    def apply(self, spec, changes, ctx):
        if self.failures:
            self.failures -= 1
            raise self.error
        super().apply(spec, changes, ctx)


def enforcer_for(root: Path, tmp_path: Path, driver: FileDriver, events: list, **pacing) -> Enforcer:
    driver.name = "file"
    document = parse_document({"node": "n1", "generation": 1, "resources": [
        {"id": "a", "driver": "file", "path": "/etc/neutron/a.conf", "content": "a\n"},
        {"id": "b", "driver": "file", "path": "/etc/neutron/b.conf", "content": "b\n", "after": ["a"]}]},
        DriverRegistry([driver]))
    enforcer = Enforcer(Engine(DriverRegistry([driver]), Context(root=root)),
                        Outlet("n1", tmp_path, lambda kind, detail, drift=None: events.append((kind, drift)),
                               lambda *_: None), Pacing(debounce=0, **pacing))
    enforcer.apply_document(document, "generation 1")
    enforcer.stop_watches()  # the test hands the touches itself
    return enforcer


def run_when_due(enforcer: Enforcer, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        due = enforcer.due_at()
        if due is not None and time.monotonic() >= due:
            return enforcer.run_due()
        time.sleep(0.005)
    raise AssertionError("nothing came due")


def test_a_drift_is_timed_by_the_latest_touch_of_its_own_resource(root, tmp_path):
    events: list = []
    enforcer = enforcer_for(root, tmp_path, FileDriver(), events)
    now = time.monotonic()
    enforcer.touched(Touch(("a",), at=1000.0, clock=now))  # another resource, touched earlier: no drift
    enforcer.touched(Touch(("b",), at=1500.0, clock=now))  # b, before its change
    (root / "etc/neutron/b.conf").write_text("edited\n")
    enforcer.touched(Touch(("b",), at=2000.0, clock=now))  # b, for its change
    run_when_due(enforcer)
    drifts = [drift for _, drift in events if drift]
    assert [(d.resource, d.state, d.seen_at) for d in drifts] == [("b", "corrected", 2000.0)]
    assert (root / "etc/neutron/b.conf").read_text() == "b\n"


def test_a_temporary_failure_is_retried_on_the_backoff_with_what_it_blocked(root, tmp_path):
    events: list = []
    driver = FailingFile(TemporaryError("disk busy"))
    driver.failures = 2
    enforcer = enforcer_for(root, tmp_path, driver, events, retry_first=0.01)
    assert enforcer.states == {"a": "failed", "b": "skipped"}
    run_when_due(enforcer)  # the first retry fails again
    assert enforcer.states == {"a": "failed", "b": "skipped"}
    run_when_due(enforcer)
    assert enforcer.states == {"a": "changed", "b": "changed"}
    assert (root / "etc/neutron/b.conf").read_text() == "b\n"
    assert enforcer.due_at() is None
    assert [kind for kind, _ in events] == ["apply.failed"]  # said once, and finishing the apply is no drift


def test_the_errors_delay_is_the_wait(root, tmp_path):
    driver = FailingFile(TemporaryError("device busy", delay=30))
    driver.failures = 1
    before = time.monotonic()
    enforcer = enforcer_for(root, tmp_path, driver, [])
    assert before + 30 <= enforcer.due_at() <= time.monotonic() + 30


def test_a_permanent_failure_waits_for_a_change(root, tmp_path):
    driver = FailingFile(PermanentError("read-only file system"))
    driver.failures = 2
    enforcer = enforcer_for(root, tmp_path, driver, [], retry_first=0.01)
    assert enforcer.due_at() is None
    enforcer.touched(Touch(("a",), at=time.time(), clock=time.monotonic()))  # the resource changed
    run_when_due(enforcer)
    assert enforcer.states["a"] == "failed" and enforcer.due_at() is None


def test_drivers_declare_their_files(root):
    (root / "etc/neutron").mkdir(parents=True)
    spec = FileDriver().validate({"path": "/etc/neutron/a.conf", "content": "a\n"})
    assert FileDriver().watches(spec, Context(root=root)) == [File(root / "etc/neutron/a.conf")]
    refused = FileDriver().validate({"path": "/etc/passwd", "content": "x\n"})
    assert FileDriver().watches(refused, Context(root=root)) == []


def test_a_touch_after_quiet_is_due_at_once_and_what_follows_waits_for_quiet_up_to_max_debounce(root, tmp_path):
    enforcer = enforcer_for(root, tmp_path, FileDriver(), [])
    enforcer.pacing = Pacing(debounce=0.5)
    assert enforcer.due_at() is None
    before = time.monotonic()
    enforcer.touched(Touch(("a",), at=1.0, clock=before))
    assert enforcer.due_at() == before  # the leading edge: no wait
    assert [r.id for r in enforcer.run_due().resources] == ["a"]
    # What arrives within the debounce of that reconcile (the rest of a burst, the agent's own writes) waits
    # for quiet, but never longer than MAX_DEBOUNCE after the first of it.
    enforcer.touched(Touch(("b",), at=2.0, clock=before))
    assert enforcer.due_at() == pytest.approx(before + 0.5)
    for step in range(1, 10):
        enforcer.touched(Touch(("a",), at=3.0, clock=before + step * 0.4))
    assert enforcer.due_at() == pytest.approx(before + MAX_DEBOUNCE)
