"""The enforcer's debounce: touches from the watches are gathered, reconciled once they settle (``debounce``
after the last) but never later than MAX_DEBOUNCE after the first, and a backed-off resource waits for its
backoff. Through the enforcer's public calls (touch, touch_deadline, take_touched, reconcile) on a real
engine and a scratch root."""

from __future__ import annotations

import time

from nodeagent.kit.context import Context
from nodeagent.kit.metrics import AgentMetrics
from nodeagent.kit.model import parse_document
from nodeagent.node.drift import DriftGuard
from nodeagent.node.engine import Engine
from nodeagent.node.enforcer import MAX_DEBOUNCE, Enforcer


def enforcer(registry, root, tmp_path, debounce: float, guard: DriftGuard | None = None) -> Enforcer:
    return Enforcer("n1", Engine(registry, Context(root=root, backup_dir=None)), tmp_path / "state",
                    guard or DriftGuard(3, 30, 8), debounce, record=lambda *_: None, notify=lambda *_: None,
                    metrics=AgentMetrics())


def test_nothing_touched_nothing_due(registry, root, tmp_path):
    assert enforcer(registry, root, tmp_path, 0.2).touch_deadline() is None


def test_a_touch_is_due_debounce_after_it_and_wakes_the_loop(registry, root, tmp_path):
    woken = []
    watched = enforcer(registry, root, tmp_path, 0.2)
    watched.wake = lambda: woken.append(True)
    before = time.monotonic()
    watched.touch("a")
    after = time.monotonic()
    assert woken == [True]
    assert before + 0.2 <= watched.touch_deadline() <= after + 0.2


def test_more_touches_push_the_deadline_but_never_past_max_debounce_after_the_first(registry, root, tmp_path):
    watched = enforcer(registry, root, tmp_path, 0.2)
    watched.touch("a")
    first = watched.touch_deadline()
    time.sleep(0.05)  # a later touch, not a wait for something to happen
    watched.touch("b")
    assert watched.touch_deadline() > first
    slow = enforcer(registry, root, tmp_path, 5.0)  # a debounce longer than the cap
    before = time.monotonic()
    slow.touch("a")
    assert slow.touch_deadline() <= before + MAX_DEBOUNCE + 0.05


def test_take_touched_returns_each_id_once_with_when_the_first_was_seen(registry, root, tmp_path):
    watched = enforcer(registry, root, tmp_path, 0.2)
    before = time.time()
    for resource in ("b", "a", "b"):
        watched.touch(resource)
    ids, seen = watched.take_touched()
    assert ids == ["a", "b"] and before <= seen <= time.time()
    assert watched.touch_deadline() is None and watched.take_touched()[0] == []


def test_a_backed_off_resource_is_deferred_until_its_backoff_ends(registry, root, tmp_path):
    guard = DriftGuard(1, 30, 8)
    watched = enforcer(registry, root, tmp_path, 0.2, guard)
    watched.document = parse_document({"node": "n1", "generation": 1, "resources": [
        {"id": "conf", "driver": "file", "path": "/etc/neutron/a.conf", "content": "a\n"}]}, registry)
    assert guard.record("conf", time.monotonic())  # contested: backed off for 8 s
    assert watched.reconcile("touch", only=["conf"]) is None  # nothing allowed: deferred, nothing written
    assert not (root / "etc/neutron/a.conf").exists()
    assert watched.touch_deadline() == guard.until["conf"]
    assert watched.take_touched()[0] == []  # not due before the backoff ends
    guard.until["conf"] = time.monotonic()  # the backoff ends now
    assert watched.take_touched()[0] == ["conf"]
