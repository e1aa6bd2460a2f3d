"""Where a reconcile acts: a filesystem root, a network namespace, and the roots it may write.

Tests and demos point ``root`` at a scratch directory and ``netns`` at a namespace
they made, so nothing of the host is touched.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Callable, TypeVar

from nodeagent.kit.errors import PathRefused, PermanentError

DEFAULT_ALLOWED_ROOTS = ("/etc/neutron", "/etc/nova", "/etc/sysctl.d", "/etc/modules-load.d", "/etc/openvswitch",
                         "/etc/openstack", "/etc/placement")
DEFAULT_OVSDB = "unix:/var/run/openvswitch/db.sock"
NETNS_DIR = Path("/run/netns")
_MAX_SYMLINKS = 40

T = TypeVar("T")


@dataclass(frozen=True)
class Context:
    """The place a reconcile acts on; one per node (or per test)."""

    root: Path = Path("/")
    netns: str | None = None
    allowed_roots: tuple[str, ...] = DEFAULT_ALLOWED_ROOTS
    backup_dir: str | None = "/var/lib/nodeagent/backups"
    ovsdb: str = DEFAULT_OVSDB  # where ovs-vswitchd's database listens; vswitchd runs in ``netns``
    systemctl: tuple[str, ...] = ("systemctl",)  # how to reach the node's systemd (a prefix in labs)
    command_prefix: tuple[str, ...] = ()  # how command resources run in the node's view (a prefix in labs)
    package_prefix: tuple[str, ...] = ()  # how the package manager runs: outside the agent's sandbox, a transient unit
    extra: dict[str, Any] = field(default_factory=dict)

    def where(self) -> str:
        """How messages name the place: 'on this node' or 'in network namespace X'."""
        return f"in network namespace '{self.netns}'" if self.netns else "on this node"

    def check_netns(self) -> None:
        """Fail clearly when the namespace does not exist (pyroute2 would create it)."""
        if self.netns and not (NETNS_DIR / self.netns).exists():
            raise PermanentError(f"network namespace '{self.netns}' does not exist")

    def host_path(self, path: str, follow_final: bool = True) -> Path:
        """Map a document path to the real path under ``root``, refusing anything outside the allowed roots.

        Symlinks are resolved inside ``root`` (an absolute link target means
        ``root`` + target), so a link can no more escape than ``..`` can.
        ``follow_final`` is False for the symlink driver, which manages the link itself.
        """
        pure = PurePosixPath(path)
        if not pure.is_absolute() or ".." in pure.parts:
            raise PathRefused(f"path '{path}' must be absolute and must not contain '..'")
        parent = self._resolve_in_root(pure.parent)
        # The resolved parent holds no link: only the final name is left to follow.
        resolved = self._resolve_in_root(PurePosixPath(pure.name), parent) if follow_final else parent / pure.name
        return self._allowed(path, resolved)

    def link_target(self, path: str, target: str) -> Path:
        """Where a link at ``path`` pointing at ``target`` leads, refused outside the allowed roots
        like any path (a link to /etc/shadow would let a reader of the link read the shadow file)."""
        parent = self._resolve_in_root(PurePosixPath(path).parent)
        joined = PurePosixPath(target) if target.startswith("/") else parent / target
        resolved = self._resolve_in_root(joined)
        return self._allowed(f"{path} -> {target}", resolved)

    def _allowed(self, path: str, resolved: PurePosixPath) -> Path:
        # Every folder above a resolved path is a real folder (no link): an allowed root found among them by
        # name is its own resolution. Only the others (a link, a '..', the path itself) need resolving.
        for allowed in map(PurePosixPath, self.allowed_roots):
            if ".." not in allowed.parts and allowed in resolved.parents:
                return self.root / str(resolved).lstrip("/")
        for allowed in self.allowed_roots:
            allowed_real = self._resolve_in_root(PurePosixPath(allowed))
            if resolved == allowed_real or allowed_real in resolved.parents:
                return self.root / str(resolved).lstrip("/")
        shown = f"'{path}'" if str(resolved) == path else f"'{path}' (resolves to '{resolved}')"
        raise PathRefused(f"path {shown} is outside the allowed roots: {', '.join(self.allowed_roots)}")

    def backup_path(self, path: str) -> Path | None:
        """Where the previous version of a managed file is kept, mirrored under ``backup_dir``.

        ``backup_dir`` itself is resolved inside ``root`` (a link above it leads no further out than
        ``..`` would), and no part of the path under it may be a symbolic link: a link planted there
        would carry copies of managed files (and their secrets) anywhere.
        """
        if not self.backup_dir:
            return None
        base = self.root / str(self._resolve_in_root(PurePosixPath("/", self.backup_dir))).lstrip("/")
        backup = base / path.lstrip("/")
        current = base
        for part in ("", *PurePosixPath(path).parts[1:]):
            current = current / part if part else current
            if current.is_symlink():
                raise PathRefused(f"backup path '{current}' is a symbolic link; backups never follow links")
        return backup

    def _resolve_in_root(self, path: PurePosixPath, resolved: PurePosixPath = PurePosixPath("/")) -> PurePosixPath:
        """``path`` (absolute, or relative to ``resolved``, a path already resolved) with its links followed.

        os.path.realpath() knows only the host's "/", and a chroot would need a process of its own, so links are
        followed here by hand, relative to root."""
        pending = list(path.parts[1:] if path.is_absolute() else path.parts)
        hops = 0
        while pending:
            part = pending.pop(0)
            if part in ("", "."):
                continue
            if part == "..":
                resolved = resolved.parent
                continue
            candidate = resolved / part
            real = self.root / str(candidate).lstrip("/")
            try:
                is_link = real.is_symlink()
            except OSError as exc:  # a name too long, a loop: refused like any path that cannot be checked
                raise PathRefused(f"cannot check '{path}': {exc.strerror or exc}") from None
            if is_link:
                hops += 1
                if hops > _MAX_SYMLINKS:
                    raise PathRefused(f"too many symbolic links under '{path}'")
                target = PurePosixPath(os.readlink(real))
                if target.is_absolute():
                    resolved = PurePosixPath("/")
                pending = list(target.parts[1:] if target.is_absolute() else target.parts) + pending
                continue
            resolved = candidate
        return resolved

    def in_netns(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` in a thread moved into the context's namespace (setns moves one thread only)."""
        if not self.netns:
            return fn(*args)
        self.check_netns()
        outcome: dict[str, Any] = {}

        def runner() -> None:
            try:
                _setns(NETNS_DIR / self.netns)
                outcome["value"] = fn(*args)
            except BaseException as exc:  # handed to the calling thread
                outcome["error"] = exc

        thread = threading.Thread(target=runner, name=f"netns-{self.netns}", daemon=True)
        thread.start()
        thread.join()
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]


CLONE_NEWNET = 0x40000000


def _setns(path: Path) -> None:
    """Move the calling thread into the network namespace at ``path`` (never creating it).

    One system call: ``os.setns`` from Python 3.12, libc's through ctypes before. pyroute2's ``setns`` does
    the same but its module imports ctypes.util, multiprocessing and more: 0.015 s of a local command.
    """
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if hasattr(os, "setns"):
            os.setns(fd, CLONE_NEWNET)
            return
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.setns(fd, CLONE_NEWNET) != 0:
            error = ctypes.get_errno()
            raise OSError(error, f"setns {path}: {os.strerror(error)}")
    finally:
        os.close(fd)
