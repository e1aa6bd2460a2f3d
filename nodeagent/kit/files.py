"""Managed files: what they look like now, and replacing them safely.

Shared by every driver that writes a file (ini, file, sysctl's persisted values) and by the agent's and
the coordinator's own state (keys, vault, report sequence, cache, status, drift spool): content is replaced
by the one atomic write (``write_private`` / ``_replace``: temporary file in the same directory, fsync,
rename, fsync of the directory), mode and owner are kept or set, the previous version is kept aside.
"""

from __future__ import annotations

import difflib
import errno
import grp
import os
import pwd
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from nodeagent.kit.context import Context
from nodeagent.kit.result import Change
from nodeagent.kit.errors import Conflict, PermanentError, TemporaryError

NEW_FILE_MODE = 0o644
NEW_DIR_MODE = 0o755
BACKUP_DIR_MODE = 0o700
TEMPORARY_SUFFIX = ".nodeagent"  # ".NAME.<random>.nodeagent" beside NAME while it is written


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


_KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
          stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a directory", stat.S_IFLNK: "a symbolic link"}


def read_file(path: Path) -> FileState:
    """The file at ``path``; anything but a regular file is refused before it is opened.

    lstat first, then open with O_NONBLOCK and O_NOFOLLOW: a FIFO put at a managed
    path must not hang the agent, a device must not be read.
    """
    try:
        info = os.lstat(path)
        if not stat.S_ISREG(info.st_mode):
            raise PermanentError(_not_regular(path, info))
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return FileState(None)
    except OSError as exc:
        raise os_error(exc, f"cannot read '{path}'") from None
    with os.fdopen(descriptor, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):  # swapped between lstat and open
            raise PermanentError(_not_regular(path, info))
        return FileState(handle.read(), stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid)


def _not_regular(path: Path, info: os.stat_result) -> str:
    kind = _KINDS.get(stat.S_IFMT(info.st_mode), "not a regular file")
    return f"'{path}' is {kind}, not a regular file; refusing to open or replace it"


def read_text(path: Path) -> tuple[FileState, str]:
    """A text file to edit in place: it must be UTF-8, or rewriting it would mangle the bytes it has."""
    found = read_file(path)
    try:
        return found, (found.content or b"").decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PermanentError(f"'{path}' is not UTF-8 text (byte 0x{found.content[exc.start]:02x} at offset "
                             f"{exc.start}); refusing to edit it") from None


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
                 group: str | int | None = None, backup: Path | None = None,
                 expected: FileState | None = None) -> None:
    """Replace ``path`` with ``content`` so that readers see the old file or the new one, never half.

    Mode and owner are those asked for, else those of the file replaced, else
    0644 and the agent's own. The replaced file is copied to ``backup`` first.
    With ``expected`` (the file as the caller read it), an edit made meanwhile
    raises Conflict instead of being overwritten unseen.
    """
    found = read_file(path)

    def unchanged() -> None:
        if expected is not None and read_file(path) != expected:
            raise Conflict(f"'{path}' was edited while being corrected; it is looked at again")

    unchanged()
    uid = uid_of(owner) if owner is not None else found.uid
    gid = gid_of(group) if group is not None else found.gid
    if mode is None:
        mode = found.mode if found.exists else NEW_FILE_MODE
    make_parents(path.parent)
    if found.exists and backup is not None:
        write_backup(backup, found, found.mode & mode)
    try:
        _replace(path, content, mode, uid, gid, before_rename=unchanged)
    except OSError as exc:
        raise os_error(exc, f"cannot write '{path}'") from None


def _replace(path: Path, data: bytes, mode: int, uid: int | None = None, gid: int | None = None,
             before_rename: Callable[[], None] | None = None, durable: bool = True) -> None:
    """The one atomic write: temporary file beside ``path`` (made 0600, then given its mode and owner
    before any data), fsync, rename over ``path``, fsync of the directory so the rename survives a crash
    too (not ``durable``: no fsync). The rename replaces whatever is at ``path``, a link included, never
    following it; on any failure before the rename the temporary file is removed and ``path`` is as it was."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMPORARY_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            os.fchmod(stream.fileno(), mode)
            if uid is not None or gid is not None:
                os.fchown(stream.fileno(), -1 if uid is None else uid, -1 if gid is None else gid)
            stream.write(data)
            stream.flush()
            if durable:
                os.fsync(stream.fileno())
        if before_rename is not None:
            before_rename()
        os.rename(temporary, path)
    except BaseException:
        _discard(temporary)
        raise
    if durable:
        sync_directory(path.parent)


def write_private(path: Path, data: bytes, mode: int = 0o600, durable: bool = True) -> None:
    """Replace one of nodeagent's own state files (keys, vault, sequence, cache, status, spool) atomically
    and durably (the spool promises that no drift event is lost, even across a power cut). Not ``durable``:
    atomic only, for a view written again at every start (the two fsyncs cost about 1 ms).

    On failure (a full disk) the old file stays whole, no temporary file is left, and the
    OSError is raised for the caller to report.
    """
    _replace(path, data, mode, durable=durable)


def write_backup(backup: Path, found: FileState, mode: int | None) -> None:
    """Keep the replaced version, never more readable than the file it was or becomes.

    Written like any managed file, so a symbolic link planted at the backup's name is
    replaced, not followed.
    """
    try:
        make_parents(backup.parent, BACKUP_DIR_MODE)
        _replace(backup, found.content or b"", 0o600 if mode is None else mode, found.uid, found.gid)
    except OSError as exc:
        raise os_error(exc, f"cannot keep a backup at '{backup}'") from None


def link_temporary(path: Path) -> Path:
    """Where a symbolic link is made before it is renamed over ``path``."""
    return path.with_name(f".{path.name}{TEMPORARY_SUFFIX}-link")


def remove_leftovers(path: Path) -> list[Path]:
    """Delete the temporary files an interrupted write of ``path`` left beside it; return them."""
    removed = []
    try:
        names = os.listdir(path.parent)
    except OSError:
        return removed
    prefix = f".{path.name}."
    for name in names:
        if name.startswith(prefix) and (name.endswith(TEMPORARY_SUFFIX) or name == link_temporary(path).name):
            leftover = path.parent / name
            try:
                if stat.S_ISREG(os.lstat(leftover).st_mode) or leftover.is_symlink():
                    leftover.unlink()
                    removed.append(leftover)
            except OSError:
                continue
    return removed


def set_metadata(path: Path, mode: int | None, owner: str | int | None, group: str | int | None) -> None:
    """Change only mode and owner of an existing file, through the file opened (never a link to follow).

    Refused for a file with more than one hard link: its other names may be outside the allowed roots (a
    hard link to /etc/shadow at a managed name would have it chmod-ed). Rewriting it breaks the link.
    """
    if mode is None and owner is None and group is None:
        return
    uid, gid = uid_of(owner), gid_of(group)
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        raise os_error(exc, f"cannot change '{path}'") from None
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            raise PermanentError(f"cannot change '{path}': {_not_regular(path, info)}")
        if (mode is None or stat.S_IMODE(info.st_mode) == mode) and uid in (None, info.st_uid) \
                and gid in (None, info.st_gid):
            return  # nothing to change
        if info.st_nlink > 1:
            raise PermanentError(f"cannot change '{path}': it has {info.st_nlink} hard links, and another name "
                                 "may be outside the allowed roots; mode and owner are never changed through one "
                                 "(remove the other names, or change its content: a rewrite breaks the link)")
        if mode is not None:
            os.fchmod(descriptor, mode)
        if uid is not None or gid is not None:
            os.fchown(descriptor, -1 if uid is None else uid, -1 if gid is None else gid)
    except OSError as exc:
        raise os_error(exc, f"cannot change '{path}'") from None
    finally:
        os.close(descriptor)


def remove(path: Path, backup: Path | None = None) -> None:
    try:
        if backup is not None:
            info = os.lstat(path)
            if stat.S_ISREG(info.st_mode):
                write_backup(backup, read_file(path), None)
        path.unlink()
        sync_directory(path.parent)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise os_error(exc, f"cannot remove '{path}'") from None


def make_parents(directory: Path, mode: int = NEW_DIR_MODE) -> None:
    directory.mkdir(mode=mode, parents=True, exist_ok=True)


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
    """Write the file when its content differs, else fix only its mode and owner.

    ``found`` is the file the new content was made from: an edit made since is not overwritten unseen.
    """
    if found.content != content:
        write_atomic(path, content, spec.get("permissions"), spec.get("owner"), spec.get("group"), backup,
                     expected=found)
    else:
        set_metadata(path, spec.get("permissions"), spec.get("owner"), spec.get("group"))


def rewrite(ctx: Context, path: str, render: Callable[[str], str]) -> None:
    """The document's ``path`` (under the context's root) written as ``render`` makes it from its text now, only
    when that changes it, the previous version backed up: the files a driver keeps in step with what it applies
    live (``sysctl.d``, ``modules-load.d``)."""
    host = ctx.host_path(path)
    found = read_file(host)
    content = render(found.text).encode()
    if content != found.content:
        write_atomic(host, content, backup=ctx.backup_path(path))
