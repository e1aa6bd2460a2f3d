"""Private SQL servers for tests and benchmarks: a MariaDB or PostgreSQL of the caller's own, in a folder,
on a unix socket (no network), started in about a second, removed with its folder.

The coordinator's inventory runs on either in production; each test gets its own server (or database), so
no test sees another's rows.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

from nodeagent.testing.waiting import wait_until

POSTGRES_BIN = Path("/usr/lib/postgresql")


class SQLServer:
    """One private server: ``start()``, ``create_database(name)`` gives its SQLAlchemy URL, ``stop()``."""

    kind = ""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "SQLServer":
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    @property
    def log(self) -> Path:
        return self.directory / "server.log"

    def start(self) -> "SQLServer":
        raise NotImplementedError

    def create_database(self, name: str) -> str:
        raise NotImplementedError

    def stop(self) -> None:
        """Stop the server (its folder stays for the caller's temporary directory to remove)."""
        if self.process is None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.process.pid, sig)
                self.process.wait(15)
                break
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue
        self.process = None

    def _spawn(self, command: list[str], user: str | None = None) -> None:
        if user:
            command = ["runuser", "-u", user, "--", *command]
        self.process = subprocess.Popen(command, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)


def mariadb_tmpdir(data: Path) -> Path:
    """The folder beside a data directory where its server keeps temporary tables: not the shared /tmp, where a
    bootstrap once lost its own temporary table file under a loaded whole run (CI, session 10)."""
    tmpdir = data.with_name(data.name + "-tmp")
    tmpdir.mkdir(parents=True, exist_ok=True)
    return tmpdir


def install_mariadb(data: Path) -> None:
    """A new MariaDB data directory, root authenticated by password (none) over the socket; its output in the
    error when it fails. Tried twice: a bootstrap that fails leaves a half-made directory, removed before the
    second try."""
    errors = []
    for _ in range(2):
        done = subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={data}", "--user=root",
                               "--auth-root-authentication-method=normal", "--skip-test-db",
                               f"--tmpdir={mariadb_tmpdir(data)}"],
                              capture_output=True, text=True, timeout=120)
        if done.returncode == 0:
            return
        errors.append(f"(exit {done.returncode}) {(done.stderr or done.stdout).strip()[-2000:]}")
        shutil.rmtree(data, ignore_errors=True)
    raise RuntimeError(f"mariadb-install-db failed twice for {data}: " + " / ".join(errors))


class MariaDB(SQLServer):
    """MariaDB as root on a socket of its own (``mysql+pymysql://root@localhost/NAME?unix_socket=...``)."""

    kind = "mariadb"

    @property
    def socket(self) -> Path:
        return self.directory / "mysqld.sock"

    def start(self) -> "MariaDB":
        data = self.directory / "data"
        self.directory.mkdir(parents=True, exist_ok=True)
        if not data.exists():
            install_mariadb(data)
        self._spawn(["mariadbd", "--no-defaults", f"--datadir={data}", f"--socket={self.socket}", "--skip-networking",
                     "--user=root", f"--pid-file={self.directory / 'mysqld.pid'}", f"--tmpdir={mariadb_tmpdir(data)}",
                     "--innodb-buffer-pool-size=64M",
                     "--innodb-flush-log-at-trx-commit=2", "--max-connections=1000", "--open-files-limit=4096"])
        wait_until(lambda: self.sql("SELECT 1").returncode == 0, 60, f"MariaDB answering (see {self.log})")
        return self

    def sql(self, statement: str) -> subprocess.CompletedProcess:
        return subprocess.run(["mariadb", "--no-defaults", f"--socket={self.socket}", "-uroot", "-N", "-e", statement],
                              capture_output=True, text=True, timeout=60)

    def create_database(self, name: str) -> str:
        done = self.sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        if done.returncode != 0:
            raise RuntimeError(f"MariaDB could not create database {name}: {done.stderr.strip()}")
        return f"mysql+pymysql://root@localhost/{name}?unix_socket={self.socket}&charset=utf8mb4"


class PostgreSQL(SQLServer):
    """PostgreSQL as its ``postgres`` user, socket in the folder (``postgresql+psycopg2://postgres@/NAME?host=``)."""

    kind = "postgresql"

    @staticmethod
    def bin_dir() -> Path:
        versions = sorted(POSTGRES_BIN.glob("*/bin/initdb"))
        if not versions:
            raise RuntimeError("PostgreSQL is not installed (scripts/setup.sh installs it)")
        return versions[-1].parent

    def start(self) -> "PostgreSQL":
        self.directory.mkdir(parents=True, exist_ok=True)
        _let_through(self.directory.parent)
        data = self.directory / "data"
        shutil.chown(self.directory, "postgres", "postgres")
        self.log.touch()
        shutil.chown(self.log, "postgres", "postgres")
        if not data.exists():
            subprocess.run(["runuser", "-u", "postgres", "--", str(self.bin_dir() / "initdb"), "-D", str(data),
                            "-A", "trust", "-U", "postgres", "-E", "UTF8"], check=True, capture_output=True,
                           timeout=120)
        self._spawn([str(self.bin_dir() / "postgres"), "-D", str(data), "-k", str(self.directory),
                     "-c", "listen_addresses=", "-c", "fsync=off", "-c", "max_connections=500"], user="postgres")
        wait_until(lambda: self.sql("SELECT 1").returncode == 0, 60, f"PostgreSQL answering (see {self.log})")
        return self

    def sql(self, statement: str, database: str = "postgres") -> subprocess.CompletedProcess:
        return subprocess.run(["runuser", "-u", "postgres", "--", "psql", "-h", str(self.directory), "-d", database,
                               "-tA", "-c", statement], capture_output=True, text=True, timeout=60)

    def create_database(self, name: str) -> str:
        done = self.sql(f'CREATE DATABASE "{name}"')
        if done.returncode != 0:
            raise RuntimeError(f"PostgreSQL could not create database {name}: {done.stderr.strip()}")
        return f"postgresql+psycopg2://postgres@/{name}?host={self.directory}"


def _let_through(directory: Path) -> None:
    """PostgreSQL refuses to run as root, and its user must reach its folder: test folders are private (0700),
    so each one above it gets search permission for others (not read: nothing in them is listed)."""
    for folder in (directory, *directory.parents):
        mode = folder.stat().st_mode
        if not mode & 0o001:
            folder.chmod(mode | 0o001)


SERVERS = {"mariadb": MariaDB, "postgresql": PostgreSQL}
