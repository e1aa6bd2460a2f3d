"""Drivers made on first use, and pyroute2 by its submodules: what keeps a local command lean."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from nodeagent.document.model import parse_document
from nodeagent.document.registry import DriverRegistry
from nodeagent.kit.errors import InvalidResource


def test_a_registry_makes_only_the_drivers_a_document_uses(tmp_path):
    registry = DriverRegistry.from_entry_points()
    assert {"ini", "ovs_bridge", "ethtool", "linux_bridge"} <= set(registry.names)
    assert registry.loaded == []
    parse_document({"node": "n1", "resources": [
        {"id": "a", "driver": "ini", "path": "/etc/neutron/neutron.conf", "settings": {"DEFAULT": {"debug": True}}},
        {"id": "b", "driver": "file", "path": "/etc/neutron/x", "content": "x\n"}]}, registry)
    assert registry.loaded == ["file", "ini"]
    assert registry.get("ini") is registry.get("ini")  # made once


def test_an_unknown_driver_still_names_every_installed_one():
    registry = DriverRegistry.from_entry_points()
    with pytest.raises(InvalidResource) as caught:
        registry.get("ovs_brige")
    assert "ovs_bridge" in str(caught.value) and "linux_bridge" in str(caught.value)
    assert registry.loaded == []


def run_fresh(code: str) -> dict:
    """``code`` in a new interpreter (this one may have pyroute2 whole already); it prints a JSON value."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_pyroute2_submodules_come_without_the_package_and_the_package_is_whole_when_asked():
    found = run_fresh("""
import json, sys
from nodeagent.kit import pyroute
pyroute.load("ethtool.ethtool").Ethtool
import nodeagent.kit.netlink
light = "pyroute2.ndb.main" in sys.modules
from pyroute2 import NDB, IPRoute
import pyroute2
print(json.dumps({"light_had_ndb": light, "whole": "pyroute2.ndb.main" in sys.modules,
                  "same": IPRoute is nodeagent.kit.netlink.IPRoute, "version": pyroute2.__version__}))
""")
    assert found == {"light_had_ndb": False, "whole": True, "same": True, "version": found["version"]}
    assert found["version"] != "unknown"
