"""Fleet simulator: N real agents (the same ``Agent`` code path as ``nodeagent run``) in K processes over the real
RabbitMQ, each with its own keys, state directory and scratch root, and facts of its own (host name, an overlay
address) so that roles render differently per node.

Each process hosts its agents on one shared RPC transport (one process holds about 200 agents before its
threads contend: ``../shared/notes/scale/FINDINGS.md``). A process writes ``ready-<first>`` once all its agents
are started, and stops them all on SIGTERM.

    python -m nodeagent.testing.simulator --conf BASE.conf --directory DIR --first 0 --count 125 [--prefix sim]

``SimulatedFleet`` starts and stops such processes from a test or a benchmark.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

OVERLAY = ipaddress.ip_network("198.18.128.0/17")  # simulated nodes' overlay addresses (the test range)


def host_name(prefix: str, index: int) -> str:
    return f"{prefix}{index:05d}"


def simulated_facts(host: str, index: int) -> dict[str, Any]:
    """Facts as ``facts.gather_facts`` reports them, distinct per node: eth0 for management, eth1 the overlay."""
    overlay = OVERLAY.network_address + 1 + index
    return {"host": host, "hostname": host, "os": "Debian GNU/Linux 12 (bookworm)", "kernel": "6.1.0-simulated",
            "openvswitch": None, "cpus": 8, "memory_mb": 32768,
            "interfaces": {"eth0": {"mac": _mac(index, 0), "ipv4": [f"198.19.{index // 250}.{index % 250 + 2}/16"]},
                           "eth1": {"mac": _mac(index, 1), "ipv4": [f"{overlay}/17"]}}}


def _mac(index: int, nic: int) -> str:
    return "02:5a:{:02x}:{:02x}:{:02x}:{:02x}".format(nic, (index >> 16) & 255, (index >> 8) & 255, index & 255)


class SimulatedFleet:
    """K simulator processes for N agents, named ``<prefix>00000`` on, from one base configuration."""

    def __init__(self, directory: Path, base_conf: Path, count: int, processes: int = 1, prefix: str = "sim",
                 start_rate: float = 50.0):
        self.directory = Path(directory)
        self.base_conf = Path(base_conf)
        self.count = count
        self.processes = max(1, min(processes, count))
        self.prefix = prefix
        self.start_rate = start_rate
        self.children: list[subprocess.Popen] = []

    @property
    def hosts(self) -> list[str]:
        return [host_name(self.prefix, index) for index in range(self.count)]

    def slices(self) -> list[tuple[int, int]]:
        size, extra = divmod(self.count, self.processes)
        slices, first = [], 0
        for number in range(self.processes):
            length = size + (number < extra)
            slices.append((first, length))
            first += length
        return slices

    def start(self, timeout: float = 300) -> "SimulatedFleet":
        """Start the processes; returns once every agent is started (not yet reported)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        for first, length in self.slices():
            log = open(self.directory / f"simulator-{first}.log", "ab")
            self.children.append(subprocess.Popen(
                [sys.executable, "-m", "nodeagent.testing.simulator", "--conf", str(self.base_conf),
                 "--directory", str(self.directory), "--first", str(first), "--count", str(length),
                 "--prefix", self.prefix, "--start-rate", str(self.start_rate / self.processes)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True))
        deadline = time.monotonic() + timeout
        for first, _ in self.slices():
            while not (self.directory / f"ready-{first}").exists():
                if any(child.poll() is not None for child in self.children):
                    raise RuntimeError(f"a simulator process ended early (see {self.directory}/simulator-*.log)")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"simulated agents not started within {timeout:.0f} s")
                time.sleep(0.2)
        return self

    def pids(self) -> list[int]:
        return [child.pid for child in self.children if child.poll() is None]

    def stop(self, timeout: float = 120) -> None:
        for child in self.children:
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGTERM)
        for child in self.children:
            try:
                child.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait(10)
        self.children = []

    def __enter__(self) -> "SimulatedFleet":
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def _agent_conf(directory: Path, host: str) -> Path:
    """The node's own options, read after the base configuration."""
    node = directory / host
    (node / "root").mkdir(parents=True, exist_ok=True)
    path = directory / f"{host}.conf"
    path.write_text(f"[DEFAULT]\nhost = {host}\nstate_dir = {node / 'state'}\nroot = {node / 'root'}\n"
                    f"backup_dir = {node / 'state' / 'backups'}\n")
    return path


def main(argv: list[str] | None = None) -> int:
    """One simulator process: its agents on one transport until SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conf", required=True, help="base configuration ([DEFAULT] transport_url, "
                        "control_exchange, coordinator_public_key, report_interval)")
    parser.add_argument("--directory", required=True, type=Path)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--prefix", default="sim")
    parser.add_argument("--start-rate", type=float, default=50.0, help="agents started per second")
    args = parser.parse_args(argv)

    from nodeagent.cli import config
    from nodeagent.node.agent import Agent
    from nodeagent.wire import rpc

    from oslo_messaging import opts as messaging_opts

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    agents, transport, notifications = [], None, None
    for index in range(args.first, args.first + args.count):
        host = host_name(args.prefix, index)
        conf = config.make_conf([args.conf, str(_agent_conf(args.directory, host))], with_messaging=True)
        if transport is None:
            # One pool for hundreds of agents' calls: oslo.messaging's default (30) makes them queue.
            for group, options in messaging_opts.list_opts():
                conf.register_opts(options, group=group)
            conf.set_override("rpc_conn_pool_size", max(30, args.count), group="oslo_messaging_rabbit")
            transport, notifications = rpc.rpc_transport(conf), rpc.notification_transport(conf)
        agents.append(Agent(conf, transport=transport, notification_transport=notifications,
                            facts=lambda host=host, index=index: simulated_facts(host, index)))
    for agent in agents:
        if stop.is_set():
            break
        agent.start()
        time.sleep(1 / args.start_rate)
    (args.directory / f"ready-{args.first}").write_text(str(os.getpid()))
    while not stop.wait(1):
        pass
    with ThreadPoolExecutor(32) as pool:
        list(pool.map(lambda agent: agent.stop(), agents))
    if transport is not None:
        rpc.close_transport(transport)
        notifications.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
