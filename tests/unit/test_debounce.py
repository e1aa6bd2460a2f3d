"""The enforcer's debounce and deferral: a touch delivered by the watch hub wakes the agent's loop and is due at
once (what follows within ``debounce`` waits for quiet, see test_enforcer.py), and a backed-off
resource waits for its backoff. Through the enforcer's public calls on a real engine and a scratch root."""

from __future__ import annotations

import queue
import time

from nodeagent.kit.context import Context
from nodeagent.document.model import parse_document
from nodeagent.kit.watches import Touch
from nodeagent.node.engine import Engine
from nodeagent.node.enforcer import Enforcer, Outlet, Pacing


def enforcer(registry, root, tmp_path, debounce: float, contested_count: int = 3) -> Enforcer:
    return Enforcer(Engine(registry, Context(root=root, backup_dir=None)),
                    Outlet("n1", tmp_path / "state", lambda *_: None, lambda *_: None),
                    Pacing(debounce=debounce, contested_count=contested_count, contested_window=30,
                           contested_backoff=8), inbox=queue.Queue())


def test_nothing_touched_nothing_due(registry, root, tmp_path):
    watched = enforcer(registry, root, tmp_path, 0.2)
    assert watched.due_at() is None and watched.run_due() is None


def test_a_touch_from_the_hub_wakes_the_loop_and_is_due_at_once(registry, root, tmp_path):
    watched = enforcer(registry, root, tmp_path, 0.2)
    now = time.monotonic()
    watched.hub.deliver(Touch(("a",), at=time.time(), clock=now))  # as a listener thread hands it over
    assert watched.inbox.get_nowait() == ("touch", None)
    assert watched.due_at() == now


def test_a_backed_off_resource_is_deferred_until_its_backoff_ends(registry, root, tmp_path):
    watched = enforcer(registry, root, tmp_path, 0.2, contested_count=1)
    watched.document = parse_document({"node": "n1", "generation": 1, "resources": [
        {"id": "conf", "driver": "file", "path": "/etc/neutron/a.conf", "content": "a\n"}]}, registry)
    assert watched.guard.record("conf", time.monotonic())  # contested: backed off for 8 s
    assert watched.reconcile("touch", only=["conf"]) is None  # nothing allowed: deferred, nothing written
    assert not (root / "etc/neutron/a.conf").exists()
    assert watched.due_at() == watched.guard.until["conf"]
    assert watched.run_due() is None  # not due before the backoff ends
    watched.guard.until["conf"] = time.monotonic()  # the backoff ends now
    result = watched.run_due()
    assert [r.id for r in result.resources] == ["conf"]
    assert (root / "etc/neutron/a.conf").read_text() == "a\n"
