"""The command driver: the controller's database step against a real MariaDB, and refresh-only steps."""

from __future__ import annotations

import subprocess

import pytest

from nodeagent.kit.context import Context
from nodeagent.node.engine import Engine
from nodeagent.kit.errors import InvalidDocument
from nodeagent.kit.result import Status
from nodeagent.testing.sqlserver import install_mariadb, mariadb_tmpdir
from nodeagent.testing.waiting import wait_until
from tests.functional.helpers import reconcile

PASSWORD = "db-s3cret-value"


@pytest.fixture(scope="module")
def mariadb(tmp_path_factory):
    """A private MariaDB on a unix socket of the test's own (no network)."""
    directory = tmp_path_factory.mktemp("mariadb")
    install_mariadb(directory / "data")
    socket = directory / "mysqld.sock"
    server = subprocess.Popen(["/usr/sbin/mariadbd", f"--datadir={directory}/data", f"--socket={socket}",
                               "--skip-networking", "--user=root", f"--pid-file={directory}/mysqld.pid",
                               f"--tmpdir={mariadb_tmpdir(directory / 'data')}",
                               f"--log-error={directory}/error.log"])
    try:
        wait_until(lambda: subprocess.run(["mariadb", f"--socket={socket}", "-e", "SELECT 1"],
                                          capture_output=True).returncode == 0, 60,
                   f"MariaDB answering (see {directory / 'error.log'})")
        yield str(socket)
    finally:
        server.terminate()
        server.wait(30)


def sql(socket, statement) -> subprocess.CompletedProcess:
    return subprocess.run(["mariadb", f"--socket={socket}", "-N", "-e", statement], capture_output=True, text=True)


def database_step(socket):
    return {"id": "neutron-database", "driver": "command",
            "command": ["mariadb", f"--socket={socket}", "-e",
                        "CREATE DATABASE neutron; CREATE USER 'neutron'@'localhost' IDENTIFIED BY "
                        f"'{PASSWORD}'; GRANT ALL PRIVILEGES ON neutron.* TO 'neutron'@'localhost'"],
            "unless": ["mariadb", f"--socket={socket}", "-e", "USE neutron"],
            "timeout": 30, "sensitive": True}


@pytest.fixture
def engine(registry, tmp_path):
    return Engine(registry, Context(root=tmp_path))


def test_the_database_step_runs_once_and_again_only_when_undone(mariadb, engine):
    step = database_step(mariadb)
    planned = reconcile(engine, step, dry_run=True)["neutron-database"]
    assert planned.status is Status.PENDING and PASSWORD not in repr(planned)
    assert reconcile(engine, step)["neutron-database"].status is Status.CHANGED
    assert sql(mariadb, "SHOW GRANTS FOR 'neutron'@'localhost'").stdout.count("neutron") >= 2
    login = subprocess.run(["mariadb", f"--socket={mariadb}", "-u", "neutron", f"-p{PASSWORD}", "-e", "USE neutron"],
                           capture_output=True)
    assert login.returncode == 0
    assert reconcile(engine, step)["neutron-database"].status is Status.IN_SYNC
    sql(mariadb, "DROP DATABASE neutron; DROP USER 'neutron'@'localhost'")
    assert reconcile(engine, step)["neutron-database"].status is Status.CHANGED


def test_a_failing_command_is_a_clear_error_with_its_secrets_masked(mariadb, engine):
    step = {**database_step(mariadb), "id": "broken",
            "command": ["mariadb", f"--socket={mariadb}", "-e", f"GRANT NONSENSE TO '{PASSWORD}'"],
            "unless": "false"}
    failed = reconcile(engine, step)["broken"]
    assert failed.status is Status.FAILED and failed.error.startswith("mariadb exited with 1: ")
    assert PASSWORD not in failed.error


def test_refresh_only_runs_when_notified(engine, tmp_path):
    marker = tmp_path / "upgraded"
    upgrade = {"id": "db-upgrade", "driver": "command", "command": f"echo upgraded >> {marker}",
               "refresh_only": True}
    conf = {"id": "neutron-conf", "driver": "ini", "path": "/etc/neutron/neutron.conf",
            "settings": {"DEFAULT": {"core_plugin": "ml2"}}, "notify": ["db-upgrade"]}
    results = reconcile(engine, upgrade, conf)
    assert results["db-upgrade"].notified == ("ran (notified by 'neutron-conf')",)
    assert reconcile(engine, upgrade, conf)["db-upgrade"].notified == ()
    assert marker.read_text() == "upgraded\n"


def test_creates_guards_and_an_unguarded_command_is_refused(engine, tmp_path):
    (tmp_path / "etc/neutron").mkdir(parents=True)
    (tmp_path / "etc/neutron/done").write_text("")
    guarded = {"id": "c", "driver": "command", "command": "exit 1", "creates": "/etc/neutron/done"}
    assert reconcile(engine, guarded)["c"].status is Status.IN_SYNC
    with pytest.raises(InvalidDocument, match="a command needs 'unless', 'creates' or 'refresh_only'"):
        reconcile(engine, {"id": "c", "driver": "command", "command": "true"})
