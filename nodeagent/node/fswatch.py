"""File events: one inotify observer (watchdog) for every watched file of a node, on the files' directories.

Directories are watched rather than files because an atomic replace (ours or an
editor's) swaps the inode a file watch would hold.

A file counts as changed when it is whole: written and closed (close-write), renamed into place (moved-to),
removed, its mode or owner changed, or made as a link. A write still in progress (modify) or a file just
created (its content follows) is not acted on: the agent would read, and fight, a half-written file.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable, Iterable

from watchdog.events import (FileAttribEvent, FileClosedEvent, FileCreatedEvent, FileDeletedEvent,
                             FileModifiedEvent, FileMovedEvent, FileSystemEvent, FileSystemEventHandler)
from watchdog.observers import Observer

LOG = logging.getLogger(__name__)
# What inotify is asked for: no opens and reads (the agent's own observe would wake the observer); modify comes
# with attrib, which watchdog asks for together.
EVENTS = [FileClosedEvent, FileMovedEvent, FileDeletedEvent, FileCreatedEvent, FileAttribEvent, FileModifiedEvent]


class FileObserver(FileSystemEventHandler):
    """Calls ``on_change(path)`` (a normalised real path) when one of ``paths`` is written, replaced or removed."""

    def __init__(self, paths: Iterable[Path], on_change: Callable[[str], None]):
        self.paths = {os.path.normpath(p) for p in paths}
        self.on_change = on_change
        self.observer = Observer()
        for directory in sorted({_existing_ancestor(Path(p).parent) for p in self.paths}):
            self.observer.schedule(self, str(directory), recursive=False, event_filter=EVENTS)
        self.observer.daemon = True
        self.observer.start()

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type == "modified" or event.event_type == "created" and not os.path.islink(event.src_path):
            return  # a write in progress: its close-write says when the file is whole
        for path in (event.src_path, getattr(event, "dest_path", "")):
            path = os.path.normpath(os.fsdecode(path)) if path else ""
            if path in self.paths:
                self.on_change(path)

    def stop(self) -> None:
        self.observer.stop()
        self.observer.join(5)


def _existing_ancestor(directory: Path) -> Path:
    while not directory.exists() and directory != directory.parent:
        directory = directory.parent
    return directory
