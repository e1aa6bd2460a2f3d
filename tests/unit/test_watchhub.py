"""The watch hub on real files (inotify) and a poll: each touch names the resources that declared the source."""

from __future__ import annotations

import queue

import pytest

from nodeagent.kit.watches import File, Poll, Touch
from nodeagent.node.watchhub import WatchHub


def next_touch(touches: queue.Queue, timeout: float = 5.0) -> Touch:
    return touches.get(timeout=timeout)


def test_one_observer_touches_every_resource_of_a_file_and_only_those(tmp_path):
    shared, other = tmp_path / "etc/shared.conf", tmp_path / "etc/other.conf"
    shared.parent.mkdir()
    touches: queue.Queue = queue.Queue()
    hub = WatchHub(touches.put)
    hub.watch({"server": [File(shared)], "agent": [File(shared), File(shared)], "other": [File(other)]})
    try:
        assert len(hub.listeners) == 1
        shared.write_text("x\n")
        assert next_touch(touches).resources == ("agent", "server")
        other.write_text("y\n")
        later = [next_touch(touches).resources]
        while later[-1] != ("other",):  # the rest of the first write's events may come first
            later.append(next_touch(touches).resources)
        assert set(later[:-1]) <= {("agent", "server")}
    finally:
        hub.stop()
    assert hub.listeners == []


def test_polls_of_one_interval_come_as_one_touch(tmp_path):
    touches: queue.Queue = queue.Queue()
    hub = WatchHub(touches.put)
    hub.watch({"svc-a": [Poll(0.05)], "svc-b": [Poll(0.05)], "slow": [Poll(3600)]})
    try:
        first = next_touch(touches)
        assert first.resources == ("svc-a", "svc-b")
        assert next_touch(touches).clock >= first.clock + 0.04
    finally:
        hub.stop()


def test_watching_again_replaces_what_was_watched(tmp_path):
    path = tmp_path / "a.conf"
    touches: queue.Queue = queue.Queue()
    hub = WatchHub(touches.put)
    hub.watch({"old": [File(path)]})
    hub.watch({"new": [File(path)]})
    try:
        path.write_text("x\n")
        assert {r for r in next_touch(touches).resources} == {"new"}
    finally:
        hub.stop()


def test_a_new_document_restarts_only_the_listeners_whose_watches_changed(tmp_path):
    touches: queue.Queue = queue.Queue()
    hub = WatchHub(touches.put)
    hub.watch({"conf": [File(tmp_path / "a.conf")], "svc": [Poll(3600)]})
    try:
        files, polls = hub.listeners
        hub.watch({"conf": [File(tmp_path / "a.conf")], "svc": [Poll(3600)], "other": [Poll(60)]})
        assert hub.listeners[0] is files and hub.listeners[1] is not polls  # the polls changed, the files not
        hub.watch({"svc": [Poll(3600)], "other": [Poll(60)]})
        assert len(hub.listeners) == 1  # nothing to watch on files any more: that listener stopped
        (tmp_path / "a.conf").write_text("x\n")
        with pytest.raises(queue.Empty):
            touches.get(timeout=0.5)
    finally:
        hub.stop()
