"""systemd integration: unit files that verify, and the notify protocol against a socket the test opens."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from nodeagent.testing.lab import Fleet
from nodeagent.testing.waiting import wait_until
from tests.conftest import REPO

UNITS = ["nodeagent.service", "nodeagent-coordinator.service"]
DNSMASQ = {"id": "dnsmasq", "driver": "file", "path": "/etc/neutron/dnsmasq-neutron.conf",
           "content": "dhcp-option-force=26,1454\n"}


def test_unit_files_verify(tmp_path):
    bindir = Path(sys.executable).parent
    for unit in UNITS:
        text = (REPO / "systemd" / unit).read_text().replace("/usr/bin/nodeagent", f"{bindir}/nodeagent")
        (tmp_path / unit).write_text(text)
    done = subprocess.run(["systemd-analyze", "verify", *(str(tmp_path / u) for u in UNITS)],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0 and done.stderr.strip() == "", done.stderr


def test_agent_unit_asks_for_notify_watchdog_and_hardening():
    unit = (REPO / "systemd" / "nodeagent.service").read_text()
    for line in ("Type=notify", "WatchdogSec=", "Restart=on-failure", "ProtectSystem=strict", "NoNewPrivileges=true",
                 "ReadWritePaths=-/etc/neutron", "CapabilityBoundingSet=CAP_NET_ADMIN"):
        assert line in unit


@pytest.fixture
def offline_fleet(tmp_path):
    """A fleet whose broker is unreachable: the agent must work from its cache alone."""
    fleet = Fleet(tmp_path / "fleet", transport_url="rabbit://guest:guest@127.0.0.1:1/")
    try:
        yield fleet
    finally:
        fleet.close()


def test_notify_protocol_ready_status_watchdog_and_reload(offline_fleet, tmp_path):
    fleet = offline_fleet
    fleet.add_node("node-s", ["eth2"])
    fleet.cache_document("node-s", {"generation": 3, "resources": [DNSMASQ]})

    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify.sock")
    listener.bind(path)
    listener.settimeout(30)
    log = open(tmp_path / "agent.log", "wb")
    agent = subprocess.Popen([str(Path(sys.executable).parent / "nodeagent"), "--config-file",
                              str(fleet.agent_conf("node-s")), "run"],
                             env={**os.environ, "NOTIFY_SOCKET": path}, stdout=log, stderr=subprocess.STDOUT)
    try:
        messages = []
        while not any(m.startswith("WATCHDOG=1") for m in messages):
            messages.append(listener.recv(4096).decode())
        ready = next(m for m in messages if "READY=1" in m)
        assert "STATUS=generation 3: 1 changed" in ready
        assert (fleet.directory / "node-s/root/etc/neutron/dnsmasq-neutron.conf").exists()  # before any broker

        conf = fleet.agent_conf("node-s")
        conf.write_text(conf.read_text().replace("report_interval = 1", "report_interval = 7"))
        agent.send_signal(signal.SIGHUP)
        wait_until(lambda: b"report_interval 7" in (tmp_path / "agent.log").read_bytes(), 20,
                   "the agent logged its reloaded report_interval")
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(30) == 0
        assert b"stopped" in (tmp_path / "agent.log").read_bytes()
    finally:
        if agent.poll() is None:
            agent.kill()
        listener.close()
