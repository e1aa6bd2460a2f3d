"""Fixtures shared by every test: the driver registry, scratch roots, test namespaces, the CLI."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nodeagent.kit.context import Context
from nodeagent.node.engine import Engine
from nodeagent.document.registry import DriverRegistry

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "etc" / "examples"
DATA = Path(__file__).resolve().parent / "data"
_names = itertools.count()


@pytest.fixture(scope="session")
def registry() -> DriverRegistry:
    return DriverRegistry.from_entry_points()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A scratch filesystem root standing in for the node's /."""
    scratch = tmp_path / "root"
    scratch.mkdir()
    return scratch


@pytest.fixture
def netns() -> str:
    """A network namespace of this test's own, removed afterwards."""
    name = f"na-t{os.getpid()}-{next(_names)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.fixture(scope="module")
def sql_servers(tmp_path_factory):
    """One private MariaDB and one PostgreSQL per test module; each test makes a database of its own."""
    from nodeagent.testing.sqlserver import SERVERS

    started = {}
    try:
        for kind, server in SERVERS.items():
            started[kind] = server(tmp_path_factory.mktemp(kind)).start()
        yield started
    finally:
        for server in started.values():
            server.stop()


@pytest.fixture(params=["sqlite", "mariadb", "postgresql"])
def database_url(request, tmp_path):
    """A new database on each backend the coordinator supports (a test using it runs once per backend)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'coordinator.db'}"
    return request.getfixturevalue("sql_servers")[request.param].create_database(f"inventory{next(_names)}")


@pytest.fixture
def engine(registry: DriverRegistry, root: Path) -> Engine:
    return Engine(registry, Context(root=root))


def set_up_coordinator(directory: Path, coordinator_options: str = ""):
    """A coordinator set up (state directory, keys, inventory) under ``directory``, no broker: for unit tests
    of its parts. ``coordinator_options``: more lines of its [coordinator] section."""
    from nodeagent.fleet.coordinator import Coordinator
    from nodeagent.cli import config

    conf_file = directory / "coordinator.conf"
    conf_file.write_text(f"[DEFAULT]\nreport_interval = 1\n[coordinator]\nstate_dir = {directory / 'state'}\n"
                         + coordinator_options)
    coordinator = Coordinator(config.make_conf([str(conf_file)]))
    coordinator.set_up()
    return coordinator


def run_cli(*args: str, program: str = "nodeagent", stdin: str | None = None) -> subprocess.CompletedProcess:
    """Run an installed console script, as an operator would."""
    binary = Path(sys.executable).parent / program
    return subprocess.run([str(binary), *args], capture_output=True, text=True, input=stdin, timeout=120)


def netns_sysctl(name: str, key: str) -> str:
    out = subprocess.run(["ip", "netns", "exec", name, "sysctl", "-n", key], capture_output=True, text=True,
                         check=True)
    return out.stdout.strip()


@pytest.fixture
def lab(tmp_path: Path):
    """A test node: its own namespace with a private Open vSwitch and a veth stand-in for eth2."""
    from nodeagent.kit import ovsdb
    from nodeagent.testing.lab import LabNode

    node = LabNode(f"na-t{os.getpid()}-{next(_names)}", tmp_path / "ovs", ["eth2"])
    try:
        yield node.up()
    finally:
        ovsdb.close(node.ovsdb)
        node.down()


def lab_context(node, root: Path | None = None) -> Context:
    return Context(root=root or Path("/nonexistent-root"), netns=node.name, ovsdb=node.ovsdb)


# Files that take many minutes (a real OpenStack deployment, a three-node fleet): handed out first, so the
# parallel workers of scripts/test.sh do not end the run waiting on one of them started last. Everything
# else keeps pytest-randomly's order (it shuffles before this hook; the sort is stable).
LONG_FILES = ("test_real_neutron.py", "test_real_neutron_two_node.py", "test_real_traffic.py", "test_roles_e2e.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.path.name not in LONG_FILES)
