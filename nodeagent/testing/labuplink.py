"""A lab node's management uplink: the way its agent, running inside the node's namespace, reaches the broker.

The node's ``up0`` (198.18.77.2/24) is cabled to ``gw0`` (198.18.77.1/24) in a gateway namespace of its
own, where a relay answers on 198.18.77.1:5672 for the host's RabbitMQ. The relay is two socat processes
joined by a unix socket (a unix socket crosses namespaces, a TCP port on the host's loopback does not):
one in the gateway namespace listening on the gateway's address, one on the host connecting to
127.0.0.1:5672. Nothing of the host's network is touched; whatever cuts ``up0`` cuts the agent off.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from nodeagent.testing.waiting import wait_until

NODE_ADDRESS, GATEWAY_ADDRESS, PREFIX = "198.18.77.2", "198.18.77.1", 24
NIC = "up0"


class Uplink:
    """``up()`` cables node namespace ``node`` to a gateway namespace and starts the relay; ``down()`` undoes it."""

    def __init__(self, node: str, directory: Path, broker: tuple[str, int] = ("127.0.0.1", 5672)):
        self.node = node
        self.gateway = f"{node[:10]}gw"
        self.socket = directory / "broker.sock"
        self.broker = broker
        self.processes: list[subprocess.Popen] = []
        self.directory = directory

    def transport_url(self, user: str = "guest", password: str = "guest") -> str:
        return f"rabbit://{user}:{password}@{GATEWAY_ADDRESS}:{self.broker[1]}/"

    def up(self) -> "Uplink":
        self.directory.mkdir(parents=True, exist_ok=True)
        run = _run
        run("ip", "netns", "add", self.gateway)
        run("ip", "netns", "exec", self.node, "ip", "link", "add", NIC, "type", "veth", "peer", "name", "gw0",
            "netns", self.gateway)
        run("ip", "netns", "exec", self.node, "ip", "addr", "add", f"{NODE_ADDRESS}/{PREFIX}", "dev", NIC)
        run("ip", "netns", "exec", self.node, "ip", "link", "set", NIC, "up")
        run("ip", "netns", "exec", self.gateway, "ip", "addr", "add", f"{GATEWAY_ADDRESS}/{PREFIX}", "dev", "gw0")
        run("ip", "netns", "exec", self.gateway, "ip", "link", "set", "gw0", "up")
        run("ip", "netns", "exec", self.gateway, "ip", "link", "set", "lo", "up")
        log = open(self.directory / "relay.log", "ab")
        host, port = self.broker
        self.processes.append(subprocess.Popen(
            ["socat", f"UNIX-LISTEN:{self.socket},fork,unlink-early", f"TCP:{host}:{port}"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        wait_until(self.socket.exists, 10, f"relay socket {self.socket}")
        self.processes.append(subprocess.Popen(
            ["ip", "netns", "exec", self.gateway, "socat",
             f"TCP-LISTEN:{port},bind={GATEWAY_ADDRESS},fork,reuseaddr", f"UNIX-CONNECT:{self.socket}"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        wait_until(self.answers, 10, f"the relay on {GATEWAY_ADDRESS}:{port} in {self.gateway}")
        return self

    def answers(self) -> bool:
        """Whether the broker answers from inside the node, through the uplink."""
        probe = subprocess.run(["ip", "netns", "exec", self.node, "socat", "-T1", "/dev/null",
                                f"TCP:{GATEWAY_ADDRESS}:{self.broker[1]},connect-timeout=1"], capture_output=True)
        return probe.returncode == 0

    def down(self) -> None:
        for process in self.processes:  # each relay with the children it forked for its connections
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for process in self.processes:
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        self.processes.clear()
        subprocess.run(["ip", "netns", "del", self.gateway], capture_output=True)
        self.socket.unlink(missing_ok=True)


def _run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, text=True)
