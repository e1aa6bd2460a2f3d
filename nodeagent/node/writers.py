"""Who a process is, read from ``/proc`` at once when fanotify names it: the ``by`` of a drift.

Read in the listener's thread as soon as the event is read, because a writer such as
``echo >> file`` is gone a moment later. What is read: the command line, the executable,
the systemd unit (the last ``*.service``/``*.scope``... of its cgroup path), the login user
(``loginuid``, the user who logged in, even after ``sudo``; else the uid) and its parents,
nearest first, up to the top process of its unit.

A pid names what the process is when the event is read: a writer that execs another program
right after its write (``sh -c 'echo >> f; exec sleep 9'``, or a shell's last command) is
named as that program, with the same pid and parents.
"""

from __future__ import annotations

import functools
import os
import pwd
import shlex

from nodeagent.node.processlog import ProcessLog
from nodeagent.wire.messages import Writer

UNIT_SUFFIXES = (".service", ".scope", ".socket", ".timer", ".mount", ".swap", ".path")
NO_LOGIN = 4294967295  # (uid_t) -1: the process has no login session (a service, or a test run)
MAX_PARENTS = 8


def describe(pid: int, pidfd: int | None = None, log: ProcessLog | None = None) -> Writer:
    """The process ``pid``; ``pidfd`` (from the event, or None) says whether it was still there to read.

    A pidfd of ``FAN_NOPIDFD`` (negative) means the kernel found the process reaped when the event was read:
    ``/proc/PID`` then is gone or, rarely, another process's, and is not read.
    """
    process = read_process(pid) if pidfd is None or pidfd >= 0 else None
    if process is not None and process["command"]:
        return _writer(pid, process, exited=False)
    # Reaped, or exiting (its command line already released): what the process log read at its exec says more
    # than what is left of it; a zombie still tells its name, unit, user and parents.
    seen = log.lookup(pid) if log is not None else None
    if seen is not None:
        return _writer(pid, seen, exited=True, log=log)
    if process is not None:
        return _writer(pid, {**process, "command": process["name"]}, exited=True)
    return Writer(pid=pid, exited=True)


def _writer(pid: int, process: dict, exited: bool, log: ProcessLog | None = None) -> Writer:
    return Writer(pid=pid, command=process["command"][:1024] or None, executable=process["executable"],
                  unit=process["unit"], user=process["user"], parents=_chain(process["ppid"], process["unit"], log),
                  exited=exited)


def _chain(ppid: int, unit: str | None, log: ProcessLog | None = None) -> tuple[str, ...]:
    """``name[pid]`` of each parent from ``ppid`` up, nearest first, until the top of ``unit``; a parent
    already gone too (``sh -c 'cp ... && mv ...'``) as the process log saw it."""
    parents: list[str] = []
    while ppid > 1 and len(parents) < MAX_PARENTS:
        parent = read_process(ppid)
        if parent is None and log is not None:
            parent = log.lookup(ppid)
        if parent is None or (unit and parent["unit"] != unit):
            break  # the top of the writer's unit: its parent is the service manager
        parents.append(f"{parent['name']}[{ppid}]")
        ppid = parent["ppid"]
    return tuple(parents)


def read_process(pid: int) -> dict | None:
    """What /proc/PID says of a process (None when it is gone): its parent, name, command line, executable,
    unit and user."""
    try:
        stat = _text(f"/proc/{pid}/stat")
        raw = _bytes(f"/proc/{pid}/cmdline")
        cgroup = _text(f"/proc/{pid}/cgroup")
    except (OSError, ValueError):
        return None
    try:
        executable = os.readlink(f"/proc/{pid}/exe")
    except OSError:  # a kernel thread, a zombie, or another user's process seen without the capability
        executable = None
    return {"ppid": _ppid(stat), "name": stat[stat.index("(") + 1:stat.rindex(")")],
            "command": shlex.join(os.fsdecode(a) for a in raw.rstrip(b"\0").split(b"\0")) if raw else "",
            "executable": executable, "unit": unit_of(cgroup), "user": _user(pid)}


def unit_of(cgroup: str) -> str | None:
    """The systemd unit in ``/proc/PID/cgroup``: the name=systemd hierarchy's path, else the unified one's."""
    paths = {}
    for line in cgroup.splitlines():
        _, controllers, path = line.split(":", 2)
        paths[controllers] = path
    path = paths.get("name=systemd") or paths.get("") or ""
    units = [part for part in path.split("/") if part.endswith(UNIT_SUFFIXES)]
    return units[-1] if units else None


def _user(pid: int) -> str | None:
    """The login user's name (``loginuid``), else the owner's; a number where no name is known."""
    try:
        uid = int(_text(f"/proc/{pid}/loginuid"))
    except (OSError, ValueError):
        uid = NO_LOGIN
    if uid == NO_LOGIN:
        try:
            uid = os.stat(f"/proc/{pid}").st_uid
        except OSError:
            return None
    return _name(uid)


@functools.lru_cache(maxsize=64)
def _name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _ppid(stat: str) -> int:
    return int(stat[stat.rindex(")") + 2:].split()[1])


def _text(path: str) -> str:
    return _bytes(path).decode(errors="replace")


def _bytes(path: str) -> bytes:
    descriptor = os.open(path, os.O_RDONLY | os.O_CLOEXEC)  # not open(): this runs at every exec of the node
    try:
        return os.read(descriptor, 65536)
    finally:
        os.close(descriptor)
