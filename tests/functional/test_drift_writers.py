"""Who made a file change, on the real kernel: fanotify, the process events, /proc, a real systemd unit.

Each writer is a real process with an argv of its own (a marker no other process on the machine has);
the tests read what the watcher says of it. The agent here is this test process: its own writes must
name nobody.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from nodeagent.kit import fanotify
from nodeagent.kit.watches import File, Sysctl, Touch
from nodeagent.node import processlog, writers
from nodeagent.node.fanwatch import FanotifyObserver
from nodeagent.node.watchhub import WatchHub
from nodeagent.testing.lab import LabSystemd
from nodeagent.testing.waiting import wait_until
from nodeagent.wire.messages import Writer

pytestmark = pytest.mark.timeout(180)


def marker() -> str:
    return f"--drift-writer-{uuid.uuid4().hex[:12]}"


def python_writer(path: Path, text: str, mark: str) -> list[str]:
    """A short-lived writer: a Python process that appends and exits at once."""
    return [sys.executable, "-c", f"open({str(path)!r}, 'a').write({text!r})", mark]


class Heard:
    """What an observer reported, per path: the writers (None for the agent's own writes)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.items: list[tuple[str, Writer | None]] = []

    def __call__(self, path: str, by: Writer | None) -> None:
        with self.lock:
            self.items.append((path, by))

    def writer_with(self, text: str) -> Writer | None:
        with self.lock:
            return next((by for _, by in self.items if by is not None and text in (by.command or "")), None)


@pytest.fixture
def watched(tmp_path):
    directory = tmp_path / "etc" / "neutron"
    directory.mkdir(parents=True)
    path = directory / "neutron.conf"
    path.write_text("[DEFAULT]\n")
    heard = Heard()
    observer = FanotifyObserver([path], heard)
    yield path, heard
    observer.stop()


def test_a_shell_edit_names_the_shell_with_its_parents(watched):
    """An operator's shell: ``echo >> file`` is run by the shell itself (a builtin)."""
    path, heard = watched
    mark = marker()
    shell = subprocess.Popen(["bash", "-s", "--", mark], stdin=subprocess.PIPE, text=True)
    try:
        shell.stdin.write(f"echo debug = true >> {path}\n")
        shell.stdin.flush()
        by = wait_until(lambda: heard.writer_with(mark), timeout=10)
        assert by.command == f"bash -s -- {mark}" and by.pid == shell.pid and by.user == "root"
        assert f"[{os.getpid()}]" in by.parents[0]  # its parent: this test, which started it
    finally:
        shell.stdin.close()
        shell.wait()


def test_a_named_process_is_named_by_its_command_line_and_executable(watched):
    path, heard = watched
    mark = marker()
    writer = subprocess.Popen([sys.executable, "-c", f"import time; open({str(path)!r}, 'a').write('x = 1\\n'); "
                                                     "time.sleep(30)", mark])
    try:
        by = wait_until(lambda: heard.writer_with(mark), timeout=10)
        assert by.pid == writer.pid and not by.exited
        assert by.executable == os.path.realpath(sys.executable)
        assert by.command.endswith(mark)
    finally:
        writer.kill()
        writer.wait()


def test_the_agents_own_writes_name_nobody(watched):
    path, heard = watched
    path.write_text("[DEFAULT]\nmine = 1\n")  # this process is the agent here
    wait_until(lambda: heard.items, timeout=10)
    time.sleep(0.2)
    assert {by for _, by in heard.items} == {None}


def test_a_rename_into_place_names_the_process_that_renamed(watched):
    path, heard = watched
    mark = marker()
    new = path.parent / ".neutron.conf.dpkg-new"
    # As a package manager installs a configuration file: a new file written beside it, renamed over it.
    subprocess.run([sys.executable, "-c", f"import os; open({str(new)!r}, 'w').write('[DEFAULT]\\n'); "
                                          f"os.rename({str(new)!r}, {str(path)!r})", mark], check=True)
    by = wait_until(lambda: heard.writer_with(mark), timeout=10)
    assert by.executable == os.path.realpath(sys.executable)
    assert f"[{os.getpid()}]" in by.parents[0]


def test_a_writer_reaped_before_its_event_is_read_is_named_from_the_process_events(tmp_path):
    """No listener thread here: the writer has exited and been reaped before a single event is read."""
    path = tmp_path / "neutron.conf"
    path.write_text("")
    group = fanotify.Fanotify()
    log = processlog.hold(writers.read_process)
    try:
        group.mark(str(tmp_path))
        mark = marker()
        done = subprocess.run(python_writer(path, "x = 1\n", mark), check=True)
        assert done.returncode == 0  # exited and reaped: /proc/PID is gone
        events = wait_until(lambda: [e for e in group.read() if e.name == "neutron.conf"], timeout=10)
        event = events[0]
        assert event.directory == str(tmp_path)
        assert not Path(f"/proc/{event.pid}").exists()
        if group.pidfds:  # the kernel could make no pidfd: the process was reaped
            assert event.pidfd == fanotify.FAN_NOPIDFD
        assert writers.describe(event.pid, None, None) == Writer(pid=event.pid, exited=True)  # /proc alone
        by = writers.describe(event.pid, event.pidfd, log)
        assert by.exited and by.pid == event.pid
        assert by.command.endswith(mark) and by.executable == os.path.realpath(sys.executable)
        assert f"[{os.getpid()}]" in by.parents[0]
    finally:
        processlog.release(log)
        group.close()


def test_a_process_in_a_systemd_unit_is_named_with_its_unit(tmp_path):
    directory = tmp_path / "etc"
    directory.mkdir()
    path = directory / "nova.conf"
    path.write_text("")
    lab = LabSystemd(tmp_path / "systemd")
    mark = marker()
    script = tmp_path / "config_tool.py"
    script.write_text(f"open({str(path)!r}, 'a').write('[neutron]')\n")
    lab.add_unit("config-tool.service", f"[Unit]\nDescription=another configuration tool\n[Service]\n"
                                        f"Type=oneshot\nExecStart=/bin/sh -c '{sys.executable} {script} {mark}; :'\n")
    heard = Heard()
    observer = FanotifyObserver([path], heard)
    try:
        lab.start()
        subprocess.run([*lab.systemctl, "start", "config-tool.service"], check=True, timeout=60)
        by = wait_until(lambda: heard.writer_with(mark), timeout=10)
        assert by.unit == "config-tool.service"
        # Its parent is the unit's shell; the chain stops at the top of the unit (systemd is not in it).
        assert [p.split("[")[0] for p in by.parents] == ["sh"]
    finally:
        observer.stop()
        lab.stop()


def test_the_hub_says_how_it_hears_files_and_passes_the_writer_on(tmp_path):
    path = tmp_path / "a.conf"
    path.write_text("")
    touches: list[Touch] = []
    for mode, expected in (("inotify", "inotify"), ("auto", "fanotify")):
        hub = WatchHub(touches.append, file_watch=mode)
        hub.watch({"a": [File(path)]})
        try:
            assert hub.files_by.startswith(expected)
            mark = marker()
            touches.clear()
            subprocess.run(python_writer(path, "x\n", mark), check=True)
            wait_until(lambda: touches, timeout=10)
            time.sleep(0.2)
            writers_seen = [t.by for t in touches if t.by is not None]
            if mode == "inotify":
                assert not writers_seen
            else:
                assert any(mark in w.command for w in writers_seen)
        finally:
            hub.stop()


def test_a_sysctl_written_in_a_namespace_is_named_only_there(tmp_path):
    """/proc/sys/net is each namespace's own: the hub marks it from inside the node's namespace."""
    names = [f"na25w{os.getpid() % 10000}x{i}" for i in range(2)]
    for name in names:
        subprocess.run(["ip", "netns", "add", name], check=True)
    touches: list[Touch] = []
    hub = WatchHub(touches.append)
    try:
        hub.watch({"forwarding": [Sysctl("net.ipv4.ip_forward", names[0])]})
        subprocess.run(["ip", "netns", "exec", names[1], "sysctl", "-qw", "net.ipv4.ip_forward=1"], check=True)
        writer = subprocess.Popen(["ip", "netns", "exec", names[0], "sysctl", "-qw", "net.ipv4.ip_forward=1"])
        writer.wait()
        touch = wait_until(lambda: touches and touches[0], timeout=10)
        time.sleep(0.2)
        assert {t.resources for t in touches} == {("forwarding",)}
        assert {t.by.pid for t in touches} == {writer.pid}  # ip execs sysctl: one pid; the other namespace unheard
        # sysctl lives a millisecond: its command line when it was read in time, else its pid alone.
        assert touch.by.command is None and touch.by.exited or touch.by.command.split()[0] == "sysctl"
    finally:
        hub.stop()
        for name in names:
            subprocess.run(["ip", "netns", "del", name], check=False)


def test_an_expected_writer_is_left_and_another_manager_contested_on_real_events(root, tmp_path):
    """The policy on the real chain: fanotify names the process, the enforcer holds its resource back."""
    import shutil

    from nodeagent.document.model import parse_document
    from nodeagent.document.registry import DriverRegistry
    from nodeagent.drivers.file import FileDriver
    from nodeagent.kit.context import Context
    from nodeagent.node.driftpolicy import WriterPolicy
    from nodeagent.node.enforcer import Enforcer, Outlet, Pacing
    from nodeagent.node.engine import Engine

    tools = tmp_path / "bin"
    tools.mkdir()
    for name in ("fake-dpkg", "fake-puppet"):  # programs of their own names: copies of bash
        shutil.copy("/bin/bash", tools / name)
    driver = FileDriver()
    driver.name = "file"
    events: list = []
    document = parse_document({"node": "n1", "generation": 1, "resources": [
        {"id": "a", "driver": "file", "path": "/etc/neutron/a.conf", "content": "a\n"},
        {"id": "b", "driver": "file", "path": "/etc/neutron/b.conf", "content": "b\n"}]}, DriverRegistry([driver]))
    enforcer = Enforcer(Engine(DriverRegistry([driver]), Context(root=root)),
                        Outlet("n1", tmp_path, lambda kind, detail, drift=None: events.append(drift), lambda *_: None),
                        Pacing(debounce=0.05, contested_backoff=60,
                               writers=WriterPolicy(ignore_from=("fake-dpkg",), contest_from=("fake-puppet",))))
    enforcer.apply_document(document, "generation 1")

    def drift_of(resource):
        enforcer.run_due() if enforcer.due_at() is not None and time.monotonic() >= enforcer.due_at() else None
        return next((e for e in events if e is not None and e.resource == resource), None)
    try:
        for tool, name in (("fake-dpkg", "a"), ("fake-puppet", "b")):
            path = root / f"etc/neutron/{name}.conf"
            # "; true": the shell's last command is not exec'd in its place (the pid would be sleep's by then)
            subprocess.run([str(tools / tool), "-c", f"printf 'theirs\\n' > {path}; sleep 0.5; true"], check=True)
            event = wait_until(lambda: drift_of(name), timeout=10, step=0.02)
            assert event.by.executable == str(tools / tool)
            assert path.read_text() == "theirs\n"  # neither is fought
        states = {e.resource: e.state for e in events if e is not None}
        assert states == {"a": "ignored", "b": "contested"}
        assert enforcer.status()["contested"] == ["b"] and enforcer.status()["drifted"] == ["a", "b"]
    finally:
        enforcer.stop_watches()
