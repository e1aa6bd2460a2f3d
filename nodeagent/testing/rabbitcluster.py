"""A private RabbitMQ of one or more clustered nodes, on loopback ports of its own, in a folder: for the tests
that kill a broker node and the benchmarks that need more connections than the machine's shared broker.

The host's broker (``rabbit@host`` on 5672) is never touched: these nodes have their own names, ports, data,
cookie (``HOME``) and file-descriptor limit, and share only epmd. Measured on this kind of machine: three
nodes clustered in about 21 s, a killed node back and rejoined in about 8 s (``../shared/notes/scale``).
"""

from __future__ import annotations

import os
import resource
import secrets
import signal
import socket
import subprocess
import time
from pathlib import Path

from nodeagent.testing.waiting import wait_until

RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")  # not /usr/sbin: that wrapper switches to the rabbitmq user and cookie


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class BrokerNode:
    """One node: its name, AMQP port and folder."""

    def __init__(self, cluster: "RabbitCluster", number: int):
        self.cluster = cluster
        self.number = number
        self.name = f"{cluster.prefix}{number}@{socket.gethostname().split('.')[0]}"
        self.port = _free_port()
        self.dist_port = _free_port()
        self.directory = cluster.directory / f"node{number}"
        self.process: subprocess.Popen | None = None

    @property
    def env(self) -> dict[str, str]:
        base = self.directory
        return {**os.environ, "HOME": str(self.cluster.directory / "home"), "RABBITMQ_NODENAME": self.name,
                "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1", "RABBITMQ_NODE_PORT": str(self.port),
                "RABBITMQ_DIST_PORT": str(self.dist_port), "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
                "RABBITMQ_LOG_BASE": str(base / "log"), "RABBITMQ_PID_FILE": str(base / "rabbit.pid"),
                "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq"),
                "RABBITMQ_ADVANCED_CONFIG_FILE": str(base / "advanced.config"),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
                "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf")}

    def ctl(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([str(RABBIT_BIN / "rabbitmqctl"), "-n", self.name, *args], env=self.env,
                              capture_output=True, text=True, timeout=timeout)

    def start(self) -> None:
        for folder in ("mnesia", "log"):
            (self.directory / folder).mkdir(parents=True, exist_ok=True)
        (self.directory / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\nloopback_users = none\n"
            "vm_memory_high_watermark.relative = 0.2\ndisk_free_limit.absolute = 200MB\n"
            "cluster_partition_handling = pause_minority\n")
        for name, text in (("advanced.config", "[].\n"), ("enabled_plugins", "[].\n"), ("rabbitmq-env.conf", "")):
            (self.directory / name).write_text(text)

        def raise_limit() -> None:  # every agent holds connections: the shell's 1024 is far too few
            hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            os.setsid()

        self.process = subprocess.Popen([str(RABBIT_BIN / "rabbitmq-server")], env=self.env,
                                        stdout=open(self.directory / "server.log", "ab"), stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, preexec_fn=raise_limit)
        wait_until(lambda: (self.directory / "rabbit.pid").exists(), 60, f"RabbitMQ node {self.name} pid file")
        done = self.ctl("wait", str(self.directory / "rabbit.pid"), "--timeout", "120", timeout=150)
        if done.returncode != 0:
            raise RuntimeError(f"RabbitMQ node {self.name} did not start: {done.stderr.strip()} "
                               f"(see {self.directory}/server.log)")

    def kill(self) -> None:
        """SIGKILL, as a crash: the other nodes carry the queues (quorum) and the clients fail over."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(30)
        (self.directory / "rabbit.pid").unlink(missing_ok=True)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.ctl("stop", timeout=60)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.kill()


class RabbitCluster:
    """``nodes`` RabbitMQ nodes clustered together, with the ``guest`` user on loopback."""

    def __init__(self, directory: Path, nodes: int = 1):
        self.directory = Path(directory)
        self.prefix = f"na{secrets.token_hex(3)}n"
        self.nodes = [BrokerNode(self, number) for number in range(1, nodes + 1)]

    def start(self) -> "RabbitCluster":
        home = self.directory / "home"
        home.mkdir(parents=True, exist_ok=True)
        cookie = home / ".erlang.cookie"
        if not cookie.exists():
            cookie.write_text(secrets.token_hex(16).upper())
            cookie.chmod(0o400)
        started = time.monotonic()
        for node in self.nodes:  # one at a time: parallel starts on two cores were slower
            node.start()
        first = self.nodes[0]
        for node in self.nodes[1:]:
            for args in (("stop_app",), ("reset",), ("join_cluster", first.name), ("start_app",)):
                done = node.ctl(*args)
                if done.returncode != 0:
                    raise RuntimeError(f"RabbitMQ node {node.name}: {' '.join(args)} failed: {done.stderr.strip()}")
        self.start_seconds = time.monotonic() - started
        return self

    def restart(self, node: BrokerNode) -> None:
        """Start a killed node again: it rejoins its cluster from its own data."""
        node.start()

    def url(self, vhost: str = "") -> str:
        """A ``transport_url`` naming every node: oslo.messaging fails over between them."""
        return "rabbit://" + ",".join(f"guest:guest@127.0.0.1:{node.port}" for node in self.nodes) + f"/{vhost}"

    def stop(self) -> None:
        for node in reversed(self.nodes):
            try:
                node.stop()
            except Exception:
                node.kill()

    def __enter__(self) -> "RabbitCluster":
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
