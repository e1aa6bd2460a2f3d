"""File events for drivers that manage files: inotify through watchdog, on the files' directories.

Directories are watched rather than files because an atomic replace (ours or an
editor's) swaps the inode a file watch would hold.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

LOG = logging.getLogger(__name__)


class FileWatch(FileSystemEventHandler):
    """Calls ``on_event(resource_id)`` when one of ``paths`` (real paths) is written, replaced or removed."""

    def __init__(self, paths: dict[Path, list[str]], on_event: Callable[[str], None]):
        self.paths = {os.path.normpath(p): ids for p, ids in paths.items()}
        self.on_event = on_event
        self.observer = Observer()
        for directory in sorted({_existing_ancestor(Path(p).parent) for p in self.paths}):
            self.observer.schedule(self, str(directory), recursive=False)
        self.observer.daemon = True
        self.observer.start()

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        touched: set[str] = set()
        for path in (event.src_path, getattr(event, "dest_path", "")):
            if path:
                touched.update(self.paths.get(os.path.normpath(os.fsdecode(path)), []))
        for resource_id in sorted(touched):
            self.on_event(resource_id)

    def stop(self) -> None:
        self.observer.stop()
        self.observer.join(5)


def _existing_ancestor(directory: Path) -> Path:
    while not directory.exists() and directory != directory.parent:
        directory = directory.parent
    return directory
