"""Lab nodes: a network namespace with an Open vSwitch of its own, for demos and tests.

Two simulated nodes that both want ``br-int`` cannot share the host's Open vSwitch,
so each gets its own ovsdb-server and ovs-vswitchd running inside its namespace
(userspace datapath). Nothing of the host's network is touched.

    python -m nodeagent.lab up NAME DIR [--veth IFACE ...]   # prints the OVSDB connection
    python -m nodeagent.lab down NAME DIR
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"


def _run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, text=True)


@dataclass
class LabNode:
    """A namespace ``name`` whose Open vSwitch keeps its files in ``directory``."""

    name: str
    directory: Path
    nics: list[str] = field(default_factory=list)

    @property
    def ovsdb(self) -> str:
        return f"unix:{self.directory}/db.sock"

    def exec(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run a command inside the node's namespace."""
        return subprocess.run(["ip", "netns", "exec", self.name, *args], check=check, capture_output=True,
                              text=True)

    def vsctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.exec("ovs-vsctl", f"--db={self.ovsdb}", "--timeout=10", *args, check=check)

    def up(self) -> "LabNode":
        self.directory.mkdir(parents=True, exist_ok=True)
        _run("ip", "netns", "add", self.name)
        self.exec("ip", "link", "set", "lo", "up")
        database = self.directory / "conf.db"
        if not database.exists():
            _run("ovsdb-tool", "create", str(database), SCHEMA)
        d = self.directory
        self.exec("ovsdb-server", str(database), f"--remote=punix:{d}/db.sock", f"--pidfile={d}/ovsdb-server.pid",
                  f"--unixctl={d}/ovsdb-server.ctl", f"--log-file={d}/ovsdb-server.log", "--detach")
        self.vsctl("--no-wait", "init")
        self.exec("ovs-vswitchd", self.ovsdb, f"--pidfile={d}/ovs-vswitchd.pid", f"--unixctl={d}/ovs-vswitchd.ctl",
                  f"--log-file={d}/ovs-vswitchd.log", "--detach")
        for nic in self.nics:
            self.add_nic(nic)
        return self

    def add_nic(self, nic: str) -> None:
        """A stand-in for a physical NIC: one end of a veth pair, both ends inside the namespace."""
        peer = f"{nic[:11]}-p"
        self.exec("ip", "link", "add", nic, "type", "veth", "peer", "name", peer)
        self.exec("ip", "link", "set", nic, "up")
        self.exec("ip", "link", "set", peer, "up")

    def down(self) -> None:
        for daemon in ("ovs-vswitchd", "ovsdb-server"):
            # 'exit' through the control socket returns once the daemon has stopped.
            stopped = subprocess.run(["ovs-appctl", "-t", str(self.directory / f"{daemon}.ctl"), "exit"],
                                     capture_output=True, timeout=10).returncode == 0
            if not stopped:
                self._kill(self.directory / f"{daemon}.pid")
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)

    @staticmethod
    def _kill(pidfile: Path) -> None:
        try:
            os.kill(int(pidfile.read_text().strip()), signal.SIGKILL)
        except (FileNotFoundError, ValueError, ProcessLookupError):
            pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nodeagent.lab", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["up", "down"])
    parser.add_argument("name", help="namespace name (unique)")
    parser.add_argument("directory", help="where the node's Open vSwitch keeps its database, sockets and logs")
    parser.add_argument("--veth", action="append", default=[], metavar="IFACE",
                        help="add a veth stand-in for a NIC (repeatable)")
    args = parser.parse_args(argv)
    node = LabNode(args.name, Path(args.directory), args.veth)
    if args.action == "up":
        node.up()
        print(node.ovsdb)
    else:
        node.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
