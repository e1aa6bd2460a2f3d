"""One watch hub per agent: what every resource's driver declared, watched by one listener per source.

Drivers declare (``Driver.watches``: values of ``kit.watches``); the hub runs one file
observer for all files (fanotify, which names the writer, where it can be had; else inotify),
one netlink socket per network namespace, one event handler per OVSDB connection and one
poller, and turns every event into a ``Touch`` naming the resources it concerns, handed to
``deliver`` (the enforcer puts it on the agent's queue).
The lookups from a name to the resources that care about it are built here, once.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import defaultdict
from typing import Any, Callable, Iterable

from nodeagent.kit import netlink, ovsdb
from nodeagent.node import fanwatch, fswatch
from nodeagent.kit.watches import File, Link, Netconf, Poll, Row, Sysctl, Touch, Watch

LOG = logging.getLogger(__name__)


class WatchHub:
    """Listens for the resources last given to ``watch``; ``stop`` ends every listener.

    One listener per source (the files, each namespace's links, each OVSDB, the polls). A new document
    restarts only the listeners whose source's watches changed; the others keep listening.
    """

    def __init__(self, deliver: Callable[[Touch], None], interfaces_changed: Callable[[], None] | None = None,
                 netns: str | None = None, file_watch: str = "auto", short_lived: bool = True):
        """``interfaces_changed``: also told of every link and address change in the node's own namespace
        ``netns`` (its facts), whatever the resources declare. ``file_watch``: ``fanotify`` (names who wrote),
        ``inotify``, or ``auto`` (fanotify where the agent may have it); ``short_lived``: with fanotify, also
        name writers gone before their event is read (``processlog``)."""
        self.deliver = deliver
        self.interfaces_changed = interfaces_changed
        self.netns = netns
        self.file_watch = file_watch
        self.short_lived = short_lived
        self.files_by = "not watching files yet"  # how file changes are heard, for 'nodeagent status'
        self._running: dict[tuple[str, Any], tuple[Any, Any]] = {}  # source -> (what it watches, listener)

    @property
    def listeners(self) -> list[Any]:
        return [listener for _, listener in self._running.values()]

    def watch(self, declared: dict[str, list[Watch]]) -> None:
        """Watch these resources (id → what its driver declared), instead of the previous ones."""
        wanted = self._sources(declared)
        for source in list(self._running):
            if source not in wanted or wanted[source][0] != self._running[source][0]:
                self._running.pop(source)[1].stop()
        for source, (watched, start) in wanted.items():
            if source not in self._running:
                self._start(source, watched, start)

    def _sources(self, declared: dict[str, list[Watch]]) -> dict[tuple[str, Any], tuple[Any, Callable[[], Any]]]:
        """Each source: what it watches (to compare with the running listener's) and how to start its listener."""
        files: dict[str, list[str]] = defaultdict(list)
        links: dict[str | None, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        netconf: dict[str | None, list[str]] = defaultdict(list)
        rows: dict[str, dict[tuple[str, str], list[str]]] = defaultdict(lambda: defaultdict(list))
        polls: dict[float, list[str]] = defaultdict(list)
        sysctls: dict[str | None, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        if self.interfaces_changed is not None:
            links[self.netns]  # the node's own namespace is always heard: its interfaces are its facts
        # Callbacks run later in the listeners' threads: loop values are bound as defaults, not closed over.
        for resource_id, watches in declared.items():
            for watch in dict.fromkeys(watches):
                if isinstance(watch, File):
                    files[os.path.normpath(watch.path)].append(resource_id)
                elif isinstance(watch, Link):
                    links[watch.netns][watch.name].append(resource_id)
                elif isinstance(watch, Netconf):
                    links[watch.netns]  # the namespace's listener also hears netconf
                    netconf[watch.netns].append(resource_id)
                elif isinstance(watch, Row):
                    rows[watch.connection][(watch.table, watch.name)].append(resource_id)
                elif isinstance(watch, Poll):
                    polls[watch.interval].append(resource_id)
                elif isinstance(watch, Sysctl) and self.file_watch != "inotify":
                    sysctls[watch.netns][fanwatch.sysctl_path(watch.key)].append(resource_id)
        wanted: dict[tuple[str, Any], tuple[Any, Callable[[], Any]]] = {}
        if files:
            wanted[("files", None)] = (_plain(files), lambda files=dict(files): self._file_observer(files))
        for netns, names in links.items():
            wanted[("links", netns)] = ((_plain(names), sorted(netconf[netns])), lambda netns=netns, names=names: (
                netlink.LinkListener(netns, lambda changed: self._links_changed(netns, names, changed),
                                     lambda ids=netconf[netns]: self.touch(ids))))
        for connection, by_row in rows.items():
            everything = [r for ids in by_row.values() for r in ids]
            wanted[("OVSDB", connection)] = (_plain(by_row), lambda connection=connection, by_row=by_row,
                                             everything=everything: (
                ovsdb.RowListener(connection, {table for table, _ in by_row}, lambda table, name: self.touch(
                    by_row.get((table, name), ())), lambda: self.touch(everything))))
        for netns, paths in sysctls.items():  # only where fanotify is (netconf events and polls hear the rest)
            wanted[("sysctl", netns)] = (_plain(paths), lambda netns=netns, paths=dict(paths): (
                fanwatch.FanotifyObserver(paths, lambda path, by: self.touch(paths.get(path, ()), by), netns,
                                          self.short_lived)))
        if polls:
            wanted[("polls", None)] = (_plain(polls), lambda polls=dict(polls): Poller(polls, self.touch))
        return wanted

    def _start(self, source: tuple[str, Any], watched: Any, start: Callable[[], Any]) -> None:
        try:
            self._running[source] = (watched, start())
        except Exception as exc:  # the periodic resync still covers what this listener would have heard
            LOG.warning("cannot watch %s %s: %s", source[0], source[1] or "on this node", exc)

    def _file_observer(self, files: dict[str, list[str]]) -> Any:
        """fanotify where asked or possible (it names the writer), else inotify; ``files_by`` says which."""
        if self.file_watch in ("auto", "fanotify"):
            try:
                observer = fanwatch.FanotifyObserver(files, lambda path, by: self.touch(files.get(path, ()), by),
                                                     short_lived=self.short_lived)
                self.files_by = "fanotify (writers named)"
                return observer
            except OSError as exc:
                if self.file_watch == "fanotify":
                    raise
                self.files_by = f"inotify (writers not named: fanotify unavailable: {exc.strerror or exc})"
        else:
            self.files_by = "inotify (writers not named: file_watch = inotify)"
        return fswatch.FileObserver(files, lambda path: self.touch(files.get(path, ())))

    def _links_changed(self, netns: str | None, names: dict[str, list[str]], changed: set[str]) -> None:
        if netns == self.netns and self.interfaces_changed is not None:
            self.interfaces_changed()
        self.touch(r for name in changed for r in names.get(name, ()))

    def touch(self, resources: Iterable[str], by: Any = None) -> None:
        """Called from the listeners' threads: these resources may have changed (``by``: a Writer, or None)."""
        touched = tuple(sorted(set(resources)))
        if touched:
            self.deliver(Touch(touched, time.time(), time.monotonic(), by))

    def stop(self) -> None:
        running, self._running = self._running, {}
        for _, listener in running.values():
            listener.stop()


def _plain(mapping: dict[Any, list[str]]) -> dict[Any, list[str]]:
    """A grouping as plain, comparable values (defaultdicts and order of ids aside)."""
    return {key: sorted(ids) for key, ids in mapping.items()}


class Poller:
    """One thread for every poll: each group of resources touched every ``interval`` seconds."""

    def __init__(self, groups: dict[float, list[str]], touch: Callable[[list[str]], None]):
        self.groups = groups
        self.touch = touch
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="poller", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        due = {interval: time.monotonic() + interval for interval in self.groups}
        while not self._stop.wait(max(0.0, min(due.values()) - time.monotonic())):
            now = time.monotonic()
            for interval, resources in self.groups.items():
                if due[interval] <= now:
                    self.touch(resources)
                    due[interval] = now + interval

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
