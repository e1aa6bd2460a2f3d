"""What an agent tells the coordinator about its node: facts (slow-changing) and health (each heartbeat)."""

from __future__ import annotations

import functools
import os
import platform
import shutil
import socket
import subprocess
from typing import Any

import psutil

from nodeagent.kit import netlink
from nodeagent.kit.context import Context


def gather_facts(ctx: Context, host: str) -> dict[str, Any]:
    """Host name, interfaces (addresses, MAC) of the node's namespace, OS, kernel, Open vSwitch, CPUs, memory."""
    return {
        "host": host,
        "hostname": socket.gethostname(),
        "interfaces": interfaces(ctx),
        "os": _os_release(),
        "kernel": platform.release(),
        "openvswitch": _ovs_version(),
        "cpus": psutil.cpu_count(),
        "memory_mb": psutil.virtual_memory().total // (1024 * 1024),
    }


def interfaces(ctx: Context) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    with netlink.iproute(ctx) as ipr:
        names = {}
        for link in ipr.get_links():
            name = link.get_attr("IFLA_IFNAME")
            names[link["index"]] = name
            found[name] = {"mac": link.get_attr("IFLA_ADDRESS"), "state": link.get_attr("IFLA_OPERSTATE"),
                           "mtu": link.get_attr("IFLA_MTU"), "ipv4": [], "ipv6": []}
        for address in ipr.get_addr():
            name = names.get(address["index"])
            if name in found:
                family = "ipv4" if address["family"] == socket.AF_INET else "ipv6"
                found[name][family].append(f"{address.get_attr('IFA_ADDRESS')}/{address['prefixlen']}")
    return found


def health(state_dir: str, services: list[str]) -> dict[str, Any]:
    """Load, CPU, memory, the state directory's disk, and whether each managed service has processes."""
    running = {name: False for name in services}
    if services:
        for process in psutil.process_iter(["name", "cmdline"]):
            text = " ".join(process.info.get("cmdline") or []) or process.info.get("name") or ""
            for name in services:
                if name in text:
                    running[name] = True
    disk = shutil.disk_usage(state_dir if os.path.isdir(state_dir) else "/")
    return {
        "load": [round(value, 2) for value in os.getloadavg()],
        "cpu_percent": psutil.cpu_percent(interval=None),
        "memory_percent": psutil.virtual_memory().percent,
        "state_dir_free_mb": disk.free // (1024 * 1024),
        "state_dir_used_percent": round(100 * disk.used / disk.total, 1),
        "services": running,
    }


@functools.lru_cache(maxsize=1)  # read once per process: these change with a package upgrade and a restart
def _os_release() -> str:
    try:
        with open("/etc/os-release") as stream:
            for line in stream:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.platform()


@functools.lru_cache(maxsize=1)
def _ovs_version() -> str | None:
    if not shutil.which("ovs-vsctl"):
        return None
    try:
        out = subprocess.run(["ovs-vsctl", "--version"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.split()[3] if len(out.split()) > 3 else None
