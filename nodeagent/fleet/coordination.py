"""Work that must happen once across several coordinators on one database, through tooz locks.

Several ``nodeagentctl serve`` share one inventory and the RPC topic: any of them answers any agent. What one
of them must do alone is guarded by a named tooz lock on the backend the deployment already has: the SQL
server itself (MariaDB ``GET_LOCK``, PostgreSQL advisory locks), or, on SQLite, a lock file beside the
database. These locks belong to the holder's session or process: a coordinator that dies lets go at once.

* ``converge``: rendering and storing the fleet's documents (each generation decided once);
* ``schema``: the migrations at start;
* ``rollouts``: judging and releasing rollouts' batches (tried each tick, skipped when another holds it);
* ``neutron``: asking Neutron which agents are alive (claimed for as long as the coordinator runs).

Nodes going down need no lock: the down check's conditional update marks each node once (``Liveness``).
On the SQL server (and the lock folder), a hung (not dead) holder keeps its lock, so no one waits for a lock
for ever: ``held`` gives up after a timeout and says which lock, the periodic work just tries again at the next
tick. With ``coordination_url = redis://...`` a lock is a lease the holder renews (``_beat``): a hung holder's
lock expires after the driver's ``lock_timeout`` (30 s unless the URL says ``?lock_timeout=N``) and another
coordinator takes the work on.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from pathlib import Path
from typing import Iterator

import tenacity
from sqlalchemy.engine import make_url

from nodeagent.kit.errors import Unavailable

LOG = logging.getLogger(__name__)
LOCK_WAIT = 30.0  # seconds an operator's change waits for another coordinator's converge


def backend_url(database_url: str, state_dir: Path) -> str:
    """The tooz backend beside the inventory: the same SQL server, or a lock folder for SQLite."""
    url = make_url(database_url)
    backend = url.get_backend_name()
    if backend == "sqlite":
        return f"file://{state_dir / 'locks'}"
    scheme = {"mysql": "mysql", "mariadb": "mysql", "postgresql": "postgresql"}.get(backend)
    if scheme is None:
        raise Unavailable(f"no tooz lock backend for database '{backend}': set [coordinator] coordination_url")
    return url.set(drivername=scheme).render_as_string(hide_password=False)


class Coordination:
    """One coordinator's membership: named locks, started on first use, stopped with the coordinator."""

    def __init__(self, url: str, member: str):
        self.url = url
        self.member = f"{member}-{uuid.uuid4().hex[:8]}".encode()
        self._coordinator = None
        self._guard = threading.Lock()  # tooz locks are per process: threads of one coordinator take turns here
        self._claimed: dict[str, object] = {}
        self._stopping = threading.Event()

    def _started(self):
        from tooz import coordination

        if self._coordinator is None:
            if self.url.startswith("file://"):
                Path(self.url[len("file://"):]).mkdir(parents=True, exist_ok=True, mode=0o700)
            self._coordinator = coordination.get_coordinator(self.url, self.member)
            # The SQL and file backends' locks live with the session or process. Redis's are leases: renewed
            # here, not by tooz's own heart, which sleeps a whole lock_timeout between two renewals (a lease
            # could lapse between them).
            self._coordinator.start(start_heart=False)
            if self._coordinator.requires_beating:
                threading.Thread(target=self._beat, args=(self._coordinator,), name="coordination beat",
                                 daemon=True).start()
        return self._coordinator

    def _beat(self, coordinator) -> None:
        """Renew this member and its locks three times per lease, until stopped."""
        interval = 1.0
        while not self._stopping.wait(interval):
            try:
                interval = max(0.2, (coordinator.heartbeat() or 3.0) / 3)
            except Exception as exc:  # the backend away: its leases lapse, held() says so to the next caller
                LOG.warning("coordination backend did not take a heartbeat: %s", exc)
                interval = 1.0

    @contextlib.contextmanager
    def held(self, name: str, wait: float = LOCK_WAIT) -> Iterator[None]:
        """Hold lock ``name``, waiting up to ``wait`` seconds; Unavailable when another coordinator keeps it."""
        with self._lock(name, wait) as got:
            if not got:
                raise Unavailable(f"another coordinator holds lock '{name}' for over {wait:.0f} s "
                                  "(a hung one keeps it until it is stopped)")
            yield

    @contextlib.contextmanager
    def tried(self, name: str) -> Iterator[bool]:
        """Lock ``name`` if it is free now: True inside when this coordinator holds it (periodic work that one
        coordinator at a time does, such as advancing rollouts)."""
        with self._lock(name, 0) as got:
            yield got

    @contextlib.contextmanager
    def _lock(self, name: str, wait: float) -> Iterator[bool]:
        ours = self._guard.acquire(timeout=wait) if wait > 0 else self._guard.acquire(blocking=False)
        if not ours:
            yield False
            return
        try:
            lock = self._started().get_lock(f"nodeagent-{name}".encode())
            try:
                got = lock.acquire(blocking=wait if wait > 0 else False)
            except tenacity.RetryError:  # tooz's SQL drivers give up a timed wait so instead of returning False
                got = False
            try:
                yield got
            finally:
                if got:
                    self._release(lock, name)
        finally:
            self._guard.release()

    @staticmethod
    def _release(lock, name: str) -> None:
        """Let go of a lock held; a lease that ran out meanwhile (this coordinator paused longer than it) may be
        another's now: that is left alone, and said."""
        try:
            released = lock.release()
        except Exception as exc:  # redis-py: the lease is not ours any more
            released = False
            LOG.debug("releasing lock '%s': %s", name, exc)
        if released is False:
            LOG.warning("lock '%s' was no longer this coordinator's when it let go: its lease ran out while it "
                        "held it (paused or hung for longer than the lease)", name)

    def claim(self, name: str) -> bool:
        """Whether this coordinator holds lock ``name`` for as long as it runs (taken now if free): for work one
        coordinator keeps state for (the Neutron watch's alert clocks). When it dies another one claims it."""
        if name in self._claimed:
            return True
        with self._guard:
            lock = self._started().get_lock(f"nodeagent-{name}".encode())
            if lock.acquire(blocking=False):
                self._claimed[name] = lock
                LOG.info("this coordinator now does '%s' for the fleet", name)
                return True
        return False

    def stop(self) -> None:
        self._stopping.set()
        for lock in self._claimed.values():
            try:
                lock.release()
            except Exception as exc:
                LOG.warning("could not release a lock: %s", exc)
        self._claimed.clear()
        if self._coordinator is not None:
            try:
                self._coordinator.stop()
            except Exception as exc:  # a database gone away: its locks went with it
                LOG.warning("coordination backend did not stop cleanly: %s", exc)
            self._coordinator = None
