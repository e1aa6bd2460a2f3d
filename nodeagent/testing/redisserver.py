"""A private Redis for tests: its own folder and unix socket (no network), nothing saved, removed with its folder.

What tooz's Redis backend needs to give coordinators locks as leases (``[coordinator] coordination_url``).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from nodeagent.testing.sqlserver import SQLServer
from nodeagent.testing.waiting import wait_until


class Redis(SQLServer):
    """``redis-server`` on ``folder/redis.sock``; ``url(lock_timeout)`` is tooz's URL for it. The same life cycle
    as the private SQL servers (start, stop, a log in the folder)."""

    kind = "redis"

    @property
    def socket(self) -> Path:
        return self.directory / "redis.sock"

    def start(self) -> "Redis":
        if shutil.which("redis-server") is None:
            raise RuntimeError("redis-server is not installed (scripts/setup.sh installs it)")
        self.directory.mkdir(parents=True, exist_ok=True)
        self._spawn(["redis-server", "--port", "0", "--unixsocket", str(self.socket), "--unixsocketperm", "700",
                     "--save", "", "--appendonly", "no", "--dir", str(self.directory)])
        wait_until(self._answers, 30, f"Redis answering (see {self.log})")
        return self

    def _answers(self) -> bool:
        done = subprocess.run(["redis-cli", "-s", str(self.socket), "ping"], capture_output=True, text=True,
                              timeout=10)
        return done.stdout.strip() == "PONG"

    def url(self, lock_timeout: int = 30) -> str:
        """tooz's URL: its locks expire ``lock_timeout`` seconds after their holder last renewed them."""
        return f"redis://{self.socket}?lock_timeout={lock_timeout}"

    def create_database(self, name: str) -> str:
        return self.url()
