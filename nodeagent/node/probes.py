"""Running a document's probes on the node: does an address answer a ping, does a port accept a connection.

Both run in the node's network namespace (the context's), where a change can cut them off. A ping is the
``ping`` of iputils, the operator's own tool, run from a thread moved into the namespace (its child inherits
that namespace); no library is needed for one echo, and a raw ICMP socket of our own would need the same
privilege for less. A TCP probe is a plain connect, closed at once.
"""

from __future__ import annotations

import socket
import subprocess
from typing import Callable

from nodeagent.document.probes import BROKER, Probe
from nodeagent.kit.context import Context
from nodeagent.kit.errors import one_line

Check = Callable[[float], "str | None"]  # a probe bound to its node: why it failed within the seconds, or None


def check(probe: Probe, ctx: Context, timeout: float) -> str | None:
    """None when ``probe`` answered within ``timeout`` seconds, else why not (one line)."""
    try:
        if probe.kind == "ping":
            return ctx.in_netns(_ping, probe.host, timeout)
        return ctx.in_netns(_connect, probe.host, probe.port, timeout)
    except Exception as exc:  # a namespace gone, a name that does not resolve: the probe failed, saying why
        return one_line(f"{probe.describe()}: {exc}")


def bound(probe: Probe, ctx: Context) -> Check:
    return lambda timeout: check(probe, ctx, timeout)


def broker_check(answers: Callable[[float], bool], where: str) -> Check:
    """The implicit probe: the agent's broker (``where``) accepts a connection from the agent's own network."""
    return lambda timeout: None if answers(timeout) else f"{BROKER} ({where}): no connection within {timeout:g} s"


def _ping(host: str, timeout: float) -> str | None:
    seconds = str(max(1, round(timeout)))
    try:
        done = subprocess.run(["ping", "-n", "-q", "-c", "1", "-W", seconds, host], capture_output=True, text=True,
                              timeout=timeout + 5)
    except subprocess.TimeoutExpired:
        return f"ping {host}: no answer within {timeout:g} s"
    if done.returncode == 0:
        return None
    lines = (done.stderr.strip() or done.stdout.strip()).splitlines()  # "ping: ... Name or service not known"
    said = lines[-1] if lines else ""  # or "1 packets transmitted, 0 received, 100% packet loss, time 0ms"
    return one_line(f"ping {host}: no answer within {seconds} s" + (f" ({said})" if said else ""))


def _connect(host: str, port: int, timeout: float) -> str | None:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except socket.timeout:
        return f"tcp {host}:{port}: no answer within {timeout:g} s"
    except OSError as exc:
        return one_line(f"tcp {host}:{port}: {exc.strerror or exc}")
