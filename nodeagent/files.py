"""Managed files: what they look like now, and replacing them safely.

Shared by every driver that writes a file (ini, file, sysctl's persisted values):
content is replaced atomically (temporary file in the same directory, fsync,
rename), mode and owner are kept or set, the previous version is kept aside.
"""

from __future__ import annotations

import difflib
import errno
import grp
import os
import pwd
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nodeagent.driver import Change
from nodeagent.errors import PermanentError, TemporaryError

NEW_FILE_MODE = 0o644
NEW_DIR_MODE = 0o755


@dataclass(frozen=True)
class FileState:
    """A file as found on disk; ``content`` is None when it does not exist."""

    content: bytes | None
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None

    @property
    def exists(self) -> bool:
        return self.content is not None

    @property
    def text(self) -> str:
        return (self.content or b"").decode("utf-8", errors="replace")


def read_file(path: Path) -> FileState:
    try:
        with open(path, "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise PermanentError(f"'{path}' is not a regular file")
            return FileState(handle.read(), stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid)
    except FileNotFoundError:
        return FileState(None)
    except IsADirectoryError:
        raise PermanentError(f"'{path}' is a directory, not a file") from None
    except PermissionError as exc:
        raise PermanentError(f"cannot read '{path}': {exc.strerror}") from None


def uid_of(owner: str | int | None) -> int | None:
    if owner is None or isinstance(owner, int):
        return owner
    try:
        return pwd.getpwnam(owner).pw_uid
    except KeyError:
        raise PermanentError(f"user '{owner}' does not exist on this node") from None


def gid_of(group: str | int | None) -> int | None:
    if group is None or isinstance(group, int):
        return group
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise PermanentError(f"group '{group}' does not exist on this node") from None


def metadata_changes(spec: dict[str, Any], found: FileState) -> list[Change]:
    """Mode, owner and group differences of an existing file (a missing file is all content)."""
    changes = []
    if not found.exists:
        return changes
    if spec.get("permissions") is not None and spec["permissions"] != found.mode:
        changes.append(Change("permissions", f"{found.mode:04o}", f"{spec['permissions']:04o}"))
    for name, current in (("owner", found.uid), ("group", found.gid)):
        wanted = spec.get(name)
        if wanted is None:
            continue
        wanted_id = uid_of(wanted) if name == "owner" else gid_of(wanted)
        if wanted_id != current:
            changes.append(Change(name, str(current), str(wanted)))
    return changes


def content_change(path: str, old: bytes | None, new: bytes) -> Change | None:
    """A unified diff of two texts, or None when they are equal."""
    if old == new:
        return None
    old_lines = [] if old is None else old.decode("utf-8", "replace").splitlines(keepends=True)
    new_lines = new.decode("utf-8", "replace").splitlines(keepends=True)
    diff = "".join(difflib.unified_diff(old_lines, new_lines,
                                        "/dev/null" if old is None else path, path, n=2))
    return Change("content", None if old is None else f"{len(old)} bytes", f"{len(new)} bytes", diff)


def write_atomic(path: Path, content: bytes, mode: int | None = None, owner: str | int | None = None,
                 group: str | int | None = None, backup: Path | None = None) -> None:
    """Replace ``path`` with ``content`` so that readers see the old file or the new one, never half.

    Mode and owner are those asked for, else those of the file replaced, else
    0644 and the agent's own. The replaced file is copied to ``backup`` first.
    """
    found = read_file(path)
    uid = uid_of(owner) if owner is not None else found.uid
    gid = gid_of(group) if group is not None else found.gid
    if mode is None:
        mode = found.mode if found.exists else NEW_FILE_MODE
    make_parents(path.parent)
    if found.exists and backup is not None:
        make_parents(backup.parent)
        shutil.copy2(path, backup)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".nodeagent", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(content)
            stream.flush()
            os.fchmod(stream.fileno(), mode)
            if uid is not None or gid is not None:
                os.fchown(stream.fileno(), -1 if uid is None else uid, -1 if gid is None else gid)
            os.fsync(stream.fileno())
        os.rename(temporary, path)
        sync_directory(path.parent)
    except OSError as exc:
        _discard(temporary)
        raise os_error(exc, f"cannot write '{path}'") from None
    except BaseException:
        _discard(temporary)
        raise


def set_metadata(path: Path, mode: int | None, owner: str | int | None, group: str | int | None) -> None:
    """Change only mode and owner of an existing file."""
    uid, gid = uid_of(owner), gid_of(group)
    try:
        if mode is not None:
            os.chmod(path, mode)
        if uid is not None or gid is not None:
            os.chown(path, -1 if uid is None else uid, -1 if gid is None else gid)
    except OSError as exc:
        raise os_error(exc, f"cannot change '{path}'") from None


def remove(path: Path, backup: Path | None = None) -> None:
    try:
        if backup is not None and path.is_file() and not path.is_symlink():
            make_parents(backup.parent)
            shutil.copy2(path, backup)
        path.unlink()
        sync_directory(path.parent)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise os_error(exc, f"cannot remove '{path}'") from None


def make_parents(directory: Path) -> None:
    directory.mkdir(mode=NEW_DIR_MODE, parents=True, exist_ok=True)


def sync_directory(directory: Path) -> None:
    """fsync the directory so the rename itself survives a crash."""
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


_TEMPORARY_ERRNOS = {errno.EAGAIN, errno.EBUSY, errno.EINTR, errno.ENOSPC, errno.EDQUOT, errno.ETXTBSY}


def os_error(exc: OSError, what: str) -> Exception:
    """An OSError as a driver error: a full disk may clear up, a read-only filesystem will not."""
    message = f"{what}: {exc.strerror or exc}"
    return TemporaryError(message) if exc.errno in _TEMPORARY_ERRNOS else PermanentError(message)


def _discard(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def converge(path: Path, found: FileState, content: bytes, spec: dict[str, Any], backup: Path | None) -> None:
    """Write the file when its content differs, else fix only its mode and owner."""
    if found.content != content:
        write_atomic(path, content, spec.get("permissions"), spec.get("owner"), spec.get("group"), backup)
    else:
        set_metadata(path, spec.get("permissions"), spec.get("owner"), spec.get("group"))
