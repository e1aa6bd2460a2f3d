"""Lab nodes and lab fleets: namespaces with an Open vSwitch of their own, a coordinator and agents.

Two simulated nodes that both want ``br-int`` cannot share the host's Open vSwitch,
so each gets its own ovsdb-server and ovs-vswitchd running inside its namespace
(userspace datapath). Nothing of the host's network is touched.

    python -m nodeagent.testing.lab up NAME DIR [--veth IFACE ...]   # prints the OVSDB connection
    python -m nodeagent.testing.lab down NAME DIR
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from nodeagent.testing import labkernel, labpackages
from nodeagent.testing.waiting import wait_until

SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
_namespaces = itertools.count()


def _run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, text=True)


@dataclass
class LabNode:
    """A namespace ``name`` whose Open vSwitch keeps its files in ``directory``."""

    name: str
    directory: Path
    nics: list[str] = field(default_factory=list)
    switch: "LabSwitch | None" = None  # where the NICs' cables go (none: each NIC's peer stays in the node)

    @property
    def ovsdb(self) -> str:
        return f"unix:{self.directory}/db.sock"

    def exec(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run a command inside the node's namespace, with the node's Open vSwitch run directory."""
        # OVS_RUNDIR: without it a private ovs-vswitchd makes its br-*.mgmt sockets in the host's
        # /var/run/openvswitch, where two nodes' (or the host's) br-int fight over one path.
        return subprocess.run(["ip", "netns", "exec", self.name, "env", f"OVS_RUNDIR={self.directory}", *args],
                              check=check, capture_output=True, text=True)

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
        # The manager_options remote lets a Neutron agent open its usual ptcp:6640 on the node's loopback.
        self.exec("ovsdb-server", str(database), f"--remote=punix:{d}/db.sock",
                  "--remote=db:Open_vSwitch,Open_vSwitch,manager_options", f"--pidfile={d}/ovsdb-server.pid",
                  f"--unixctl={d}/ovsdb-server.ctl", f"--log-file={d}/ovsdb-server.log", "--detach")
        self.vsctl("--no-wait", "init")
        self.exec("ovs-vswitchd", self.ovsdb, f"--pidfile={d}/ovs-vswitchd.pid", f"--unixctl={d}/ovs-vswitchd.ctl",
                  f"--log-file={d}/ovs-vswitchd.log", "--detach")
        for nic in self.nics:
            self.add_nic(nic)
        return self

    def add_nic(self, nic: str) -> None:
        """A stand-in for a physical NIC: one end of a veth pair; the other end stays in the namespace, or is
        plugged into the lab switch's segment of that NIC's name (eth1 of every node on one segment)."""
        if self.switch is not None:
            self.switch.plug(self, nic)
        else:
            peer = f"{nic[:11]}-p"
            self.exec("ip", "link", "add", nic, "type", "veth", "peer", "name", peer)
            self.exec("ip", "link", "set", peer, "up")
        self.exec("ip", "link", "set", nic, "up")

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


@dataclass
class LabSwitch:
    """The lab's cables: a namespace with one Linux bridge per segment (one per NIC name), so that every
    node's eth1 (or eth2) is on one wire with the other nodes' eth1 (eth2), and nowhere else."""

    name: str
    ports: int = 0

    def up(self) -> "LabSwitch":
        _run("ip", "netns", "add", self.name)
        return self

    def plug(self, node: LabNode, nic: str) -> None:
        self.ports += 1
        port, segment = f"p{self.ports}-{nic[:8]}", f"sw-{nic[:12]}"
        node.exec("ip", "link", "add", nic, "type", "veth", "peer", "name", port, "netns", self.name)
        switch = ["ip", "netns", "exec", self.name, "ip", "link"]
        if subprocess.run([*switch, "show", segment], capture_output=True).returncode != 0:
            _run(*switch, "add", segment, "type", "bridge")
            _run(*switch, "set", segment, "up")
        _run(*switch, "set", port, "master", segment, "up")

    def attach(self, netns: str, nic: str, segment_of: str) -> None:
        """A host that is no node (the upstream router of the provider network) on the wire of the nodes'
        ``segment_of`` NICs: ``nic`` in namespace ``netns``, up, no address."""
        self.ports += 1
        port = f"p{self.ports}-{segment_of[:8]}"
        _run("ip", "netns", "exec", netns, "ip", "link", "add", nic, "type", "veth", "peer", "name", port,
             "netns", self.name)
        _run("ip", "netns", "exec", self.name, "ip", "link", "set", port, "master", f"sw-{segment_of[:12]}", "up")
        _run("ip", "netns", "exec", netns, "ip", "link", "set", nic, "up")

    def down(self) -> None:
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)


STUB_TARGETS = ("sysinit", "basic", "shutdown", "default", "multi-user", "local-fs", "sockets", "timers", "paths",
                "slices", "network", "network-online", "nodeagent-lab")
BOOT_SCRIPT = """#!/bin/sh
# The host's network namespaces stay visible under the fresh /run (agents act on them).
mkdir -p {directory}/netns /run/netns
mount --rbind /run/netns {directory}/netns
mount -t tmpfs tmpfs /run
mkdir -p /run/systemd /run/netns
mount --move {directory}/netns /run/netns
mount -t tmpfs tmpfs /sys/fs/cgroup
mkdir -p /sys/fs/cgroup/unified /sys/fs/cgroup/systemd
mount -t cgroup2 none /sys/fs/cgroup/unified
mount -t cgroup -o none,name=systemd systemd /sys/fs/cgroup/systemd
# 'systemctl enable' writes under /etc/systemd/system: a tmpfs there keeps that in this namespace.
mount -t tmpfs tmpfs /etc/systemd/system
exec env -i container=docker SYSTEMD_UNIT_PATH=/etc/systemd/system:{units} /lib/systemd/systemd --system \
    --unit=nodeagent-lab.target
"""


STAND_IN_UNIT = """[Unit]
Description=stand-in for {name}
[Service]
ExecStart=/bin/bash -c 'echo started >> {log}; exec -a {name} sleep infinity'
[Install]
WantedBy=multi-user.target
"""


class LabSystemd:
    """A real systemd as PID 1 of its own PID and mount namespace, seeing only ``units``.

    The unit path is restricted to the lab's directory so the host's units (RabbitMQ,
    Open vSwitch) never start a second time. ``systemctl`` is the command prefix that
    reaches it. Stopping kills it (and with it everything it started) and removes the
    cgroups it made.
    """

    def __init__(self, directory: Path):
        self.directory = directory
        self.units = directory / "units"
        self.process: subprocess.Popen | None = None
        self.pid: int | None = None
        self.cgroups: list[str] = []

    @property
    def systemctl(self) -> list[str]:
        return ["nsenter", "-t", str(self.pid), "-m", "-p", "--", "systemctl"]

    def add_unit(self, name: str, text: str) -> None:
        """A unit file, or a drop-in such as 'x.service.d/lab.conf'."""
        (self.units / name).parent.mkdir(parents=True, exist_ok=True)
        (self.units / name).write_text(text)

    def boot_script(self) -> str:
        """What PID 1 of the new namespaces runs: the mounts, then systemd."""
        return BOOT_SCRIPT.format(units=self.units, directory=self.directory)

    def launcher(self) -> list[str]:
        """A prefix for unshare (a network namespace to start in)."""
        return []

    def target(self) -> str:
        return "[Unit]\nDescription=nodeagent-lab\n"

    def start(self) -> "LabSystemd":
        self.units.mkdir(parents=True, exist_ok=True)
        for target in STUB_TARGETS:
            self.add_unit(f"{target}.target", f"[Unit]\nDescription={target}\n")
        self.add_unit("nodeagent-lab.target", self.target())
        script = self.directory / "boot.sh"
        script.write_text(self.boot_script())
        script.chmod(0o755)
        # A cgroup of its own in every hierarchy, entered before the cgroup namespace is made:
        # two lab systemds must not share init.scope and system.slice (stopping a unit in one
        # would kill the other's processes).
        self.cgroups = _own_cgroups(f"nodeagent-lab-{os.getpid()}-{id(self)}")
        self.process = subprocess.Popen([*self.launcher(), "unshare", "--fork", "--uts", "--pid", "--mount", "--mount-proc", "--cgroup",
                                         "--propagation", "private", str(script)],
                                        stdout=open(self.directory / "systemd.log", "ab"), stderr=subprocess.STDOUT,
                                        preexec_fn=lambda: _enter(self.cgroups))
        wait_until(self._running, 30, f"systemd started (see {self.directory / 'systemd.log'})", step=0.1)
        return self

    def _running(self) -> bool:
        children = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True)
        if not children.stdout.strip():
            return False
        self.pid = int(children.stdout.split()[0])
        state = subprocess.run([*self.systemctl, "is-system-running"], capture_output=True, text=True)
        return state.stdout.strip() in ("running", "degraded")

    def stop(self) -> None:
        if self.pid:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.process is not None:
            self.process.wait(10)
        for top in self.cgroups:
            for path in sorted((os.path.join(d, "") for d, _, _ in os.walk(top)), key=len, reverse=True):
                for _ in range(50):
                    try:
                        os.rmdir(path)
                        break
                    except FileNotFoundError:
                        break
                    except OSError:
                        time.sleep(0.05)  # its processes are still being reaped


def _own_cgroups(name: str) -> list[str]:
    """A new cgroup under this process's own, in each mounted hierarchy."""
    made = []
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        hierarchy = {"": "unified", "name=systemd": "systemd"}.get(controllers, controllers)
        base = Path("/sys/fs/cgroup") / hierarchy
        if not base.is_dir():
            continue
        directory = base / path.lstrip("/") / name
        directory.mkdir(exist_ok=True)
        made.append(str(directory))
    return made


def _enter(cgroups: list[str]) -> None:
    for directory in cgroups:
        try:
            Path(directory, "cgroup.procs").write_text(str(os.getpid()))
        except OSError:
            pass  # a controller that will not take us: systemd still runs


class Fleet:
    """A coordinator and agents on lab nodes, as separate processes over the real RabbitMQ.

    Everything lives under ``directory``: configuration files, the coordinator's
    database and key, each node's scratch root, state and Open vSwitch. A private
    ``control_exchange`` keeps one fleet's messages apart from any other's.
    """

    def __init__(self, directory: Path, transport_url: str = "rabbit://guest:guest@127.0.0.1:5672/",
                 report_interval: int = 1, auto_accept: bool = False, exchange: str | None = None,
                 resync_interval: int = 300, coordinator_options: dict | None = None,
                 agent_options: dict | None = None, cloud=None, coordinator_sections: dict | None = None):
        self.directory = directory
        self.cloud = cloud  # a labcloud.LabCloud: nodes run the real OpenStack units instead of stand-ins
        self.directory.mkdir(parents=True, exist_ok=True)
        self.exchange = exchange or f"nodeagent-lab-{os.getpid()}-{id(self) % 100000}"
        self.common = {"transport_url": transport_url, "control_exchange": self.exchange,
                       "report_interval": report_interval, "resync_interval": resync_interval,
                       "rpc_response_timeout": 10}
        # Off unless a test asks: every lab agent would read the command line of each program the machine starts,
        # and a test run starts many (tests of drift attribution turn it on).
        self.agent_options = {"name_short_lived_writers": False, **(agent_options or {})}
        self.coordinator_conf = self._write_conf("coordinator.conf", {"host": "coordinator"}, {
            "coordinator": {"state_dir": directory / "coordinator", "auto_accept": str(auto_accept).lower(),
                            **(coordinator_options or {})}, **(coordinator_sections or {})})
        self.public_key = directory / "coordinator.pub"
        self.public_key.write_text(self.ctl("keygen").stdout)
        self.nodes: dict[str, LabNode] = {}
        self.switch: LabSwitch | None = None
        self.systemds: dict[str, LabSystemd] = {}
        self.processes: dict[str, subprocess.Popen] = {}

    def _write_conf(self, name: str, defaults: dict, sections: dict[str, dict] | None = None) -> Path:
        lines = ["[DEFAULT]"] + [f"{k} = {v}" for k, v in {**self.common, **defaults}.items()]
        for section, options in (sections or {}).items():
            lines += ["", f"[{section}]"] + [f"{k} = {v}" for k, v in options.items()]
        path = self.directory / name
        path.write_text("\n".join(lines) + "\n")
        return path

    def ctl(self, *args: str, check: bool = True, stdin: str = "", timeout: float = 60) -> subprocess.CompletedProcess:
        """Run nodeagentctl against this fleet's coordinator database."""
        program = Path(sys.executable).parent / "nodeagentctl"
        done = subprocess.run([str(program), "--config-file", str(self.coordinator_conf), *args],
                              capture_output=True, text=True, timeout=timeout, input=stdin)
        if check and done.returncode != 0:
            raise RuntimeError(f"nodeagentctl {' '.join(args)} failed: {done.stderr.strip()}")
        return done

    def agent_conf(self, name: str) -> Path:
        return self.directory / f"{name}.conf"

    def add_node(self, name: str, nics: list[str], netns: str | None = None,
                 services: list[str] | None = None) -> LabNode:
        """A lab node with its agent's configuration; ``services`` get stand-in units under a systemd of
        the node's own, which the agent's service resources then drive."""
        if self.cloud is not None and self.switch is None:  # real services talk between nodes: cable them
            self.switch = LabSwitch(f"na{os.getpid() % 100000}x{next(_namespaces)}sw").up()
        node = LabNode(netns or f"na{os.getpid() % 100000}x{next(_namespaces)}", self.directory / name / "ovs",
                       nics, self.switch).up()
        self.nodes[name] = node
        labkernel.make_module_tree(self.directory / name / "root")
        labpackages.copy_package_database(self.directory / name / "root")
        extra = {}
        if self.cloud is not None:
            systemd = self.cloud.node_systemd(name, node.name, self.directory / name / "systemd",
                                              self.directory / name / "root", node.directory)
            self.systemds[name] = systemd.start()
            extra["systemctl"] = " ".join(systemd.systemctl)
            extra["command_prefix"] = self.cloud.command_prefix(systemd)
        elif services is not None:
            systemd = LabSystemd(self.directory / name / "systemd")
            for service in services:
                systemd.add_unit(f"{service}.service", STAND_IN_UNIT.format(
                    name=service, log=self.directory / name / "systemd" / f"{service}.log"))
            self.systemds[name] = systemd.start()
            extra["systemctl"] = " ".join(systemd.systemctl)
        self._write_conf(f"{name}.conf", {**extra, 
            "host": name, "root": self.directory / name / "root", "netns": node.name,
            "ovsdb_connection": node.ovsdb, "state_dir": self.directory / name / "state",
            "coordinator_public_key": self.public_key,
            "backup_dir": self.directory / name / "backups", **self.agent_options})
        return node

    def use_own_broker_user(self, name: str) -> str:
        """Give node ``name``'s agent a RabbitMQ user of its own, limited to what an agent needs
        (``nodeagent.fleet.brokeraccess``); removed by ``close()``. Call after ``add_node``, before ``start``."""
        import uuid

        from nodeagent.fleet import brokeraccess

        password = uuid.uuid4().hex
        user = brokeraccess.create_user(name, self.exchange, password, user=f"{self.exchange}-{name}")
        self.broker_users = [*getattr(self, "broker_users", []), user]
        conf = self.agent_conf(name)
        shared = self.common["transport_url"]
        host = shared.split("@", 1)[1] if "@" in shared else "127.0.0.1:5672/"
        conf.write_text(conf.read_text().replace(shared, f"rabbit://{user}:{password}@{host}"))
        return user

    def cache_document(self, name: str, document: dict) -> None:
        """Sign ``document`` and leave it in the node's state directory, as if its agent had accepted it
        (an agent that starts with no broker enforces it)."""
        from nodeagent.wire.protocol import CoordinatorChannel

        channel = CoordinatorChannel(self.directory / "coordinator" / "coordinator.key", FileNotFoundError)
        state = self.directory / name / "state"
        state.mkdir(parents=True, exist_ok=True, mode=0o700)
        sealed = channel.seal_clear_document({**document, "node": name})
        (state / "document.json").write_text(json.dumps(sealed))

    def start(self, name: str, inside: bool = False) -> subprocess.Popen:
        """Start the coordinator (name 'coordinator') or a node's agent, logging to DIR/NAME.log; ``inside``: the
        agent runs in its node's namespace (it reaches the broker through the node's own network)."""
        if name == "coordinator":
            command = [str(Path(sys.executable).parent / "nodeagentctl"), "--config-file",
                       str(self.coordinator_conf), "serve"]
        else:
            command = [str(Path(sys.executable).parent / "nodeagent"), "--config-file",
                       str(self.agent_conf(name)), "run"]
            if inside:
                command = ["ip", "netns", "exec", self.nodes[name].name, *command]
        log = open(self.directory / f"{name}.log", "ab")
        self.processes[name] = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        return self.processes[name]

    def stop(self, name: str, sig: int = signal.SIGTERM) -> int | None:
        process = self.processes.pop(name, None)
        if process is None:
            return None
        process.send_signal(sig)
        return _reap(process)

    def close(self) -> None:
        from nodeagent.kit import ovsdb

        agents = [name for name in self.processes if name != "coordinator"]
        for name in agents:  # all at once, so that their stops overlap; the coordinator after them
            self.processes[name].send_signal(signal.SIGTERM)
        for name in agents:
            _reap(self.processes.pop(name))
        self.stop("coordinator")
        for systemd in self.systemds.values():  # first: a node's services must not outlive its namespace
            systemd.stop()
        for node in self.nodes.values():
            ovsdb.close(node.ovsdb)
            node.down()
        if self.switch is not None:
            self.switch.down()
        from nodeagent.fleet import brokeraccess

        for user in getattr(self, "broker_users", []):
            brokeraccess.delete_user(user)


def _reap(process: subprocess.Popen) -> int:
    """Its exit status, once it has exited (killed after 15 s)."""
    try:
        return process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait(5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nodeagent.testing.lab", description=__doc__,
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
