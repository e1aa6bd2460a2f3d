"""OVSDB for drivers: one ovsdbapp connection per database socket, and row events.

ovsdbapp keeps an in-memory replica of the database (the IDL) updated by a
thread of its own; every resource on the same socket shares it, and the watch
hub registers RowEvents on it (one listener per connection) instead of polling.
"""

from __future__ import annotations

import sys
import threading
from typing import Callable, Iterable

from nodeagent.kit.errors import TemporaryError


def _without_eventlet() -> None:
    """Import ``ovs.poller`` so that it does not import eventlet (and dnspython: 0.15 s, 10 MiB).

    It imports eventlet only to ask whether ``select`` is monkey-patched; nodeagent never patches it, and a
    process that did would have eventlet loaded already, so the answer is the poller's own 'no'.
    """
    if "eventlet" in sys.modules or "ovs.poller" in sys.modules:
        return
    sys.modules["eventlet"] = None  # type: ignore[assignment]  # makes `from eventlet import ...` fail
    try:
        import ovs.poller  # noqa: F401
    finally:
        del sys.modules["eventlet"]


_without_eventlet()

from ovsdbapp.backend.ovs_idl import connection, event as row_event, idlutils  # noqa: E402
from ovsdbapp.schema.open_vswitch import impl_idl  # noqa: E402

TIMEOUT = 10
# Columns ovs-vswitchd rewrites on its own every few seconds: never read, not even replicated.
_NOISE = frozenset({"statistics"})
_apis: dict[str, impl_idl.OvsdbIdl] = {}
_lock = threading.Lock()


class _NotifyingIdl(connection.OvsdbIdl):
    """An IDL that hands every row change to a RowEventHandler (ovsdbapp's documented pattern), and says
    when it has resynced after a reconnect (ovsdb-server restarted).

    On a reconnect the IDL reloads its replica silently: rows that vanished meanwhile (a database
    recreated empty) produce no delete event. So watchers get ``resync_handlers`` called once the
    replica is whole again, and look at everything they watch.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.notify_handler = row_event.RowEventHandler()
        self.resync_handlers: list[Callable[[], None]] = []
        self._connections = 0
        self._resync_due = False

    def notify(self, event, row, updates=None):
        self.notify_handler.notify(event, row, updates)

    def restart_fsm(self):  # the ovs IDL calls this on every (re)connection
        super().restart_fsm()
        self._connections += 1
        self._resync_due = self._connections > 1

    def run(self):
        changed = super().run()
        if self._resync_due and self.state == self.IDL_S_MONITORING:
            self._resync_due = False
            for handler in list(self.resync_handlers):
                handler()
        return changed


def _schema_without_noise(connection_string: str) -> "idlutils.idl.SchemaHelper":
    """Every table and column but those ovs-vswitchd rewrites on its own (``_NOISE``): with them, the IDL's
    thread woke every 5 s (ovs-vswitchd's stats-update-interval) to parse statistics nothing reads."""
    helper = idlutils.get_schema_helper(connection_string, "Open_vSwitch")
    for table, spec in helper.schema_json["tables"].items():
        helper.register_columns(table, [column for column in spec["columns"] if column not in _NOISE])
    return helper


def api(connection_string: str) -> impl_idl.OvsdbIdl:
    """The shared ovsdbapp API for a database, connecting on first use."""
    with _lock:
        if connection_string not in _apis:
            try:
                idl = _NotifyingIdl(connection_string, _schema_without_noise(connection_string))
                # ovsdbapp keeps the connection in a class attribute (one database per process,
                # as in Neutron); a subclass per database lets a lab host several.
                api_class = type(f"OvsdbIdl{len(_apis)}", (impl_idl.OvsdbIdl,), {"_ovsdb_connection": None})
                _apis[connection_string] = api_class(connection.Connection(idl, timeout=TIMEOUT))
            except Exception as exc:
                raise TemporaryError(f"cannot reach the Open vSwitch database at {connection_string}: {exc}") from None
        return _apis[connection_string]


def close(connection_string: str) -> None:
    """Stop the connection's thread (tests that start private databases close theirs)."""
    with _lock:
        found = _apis.pop(connection_string, None)
    if found is not None:
        found.ovsdb_connection.stop()


class _NameEvent(row_event.RowEvent):
    def __init__(self, table: str, callback: Callable[[str, str], None]):
        super().__init__((self.ROW_CREATE, self.ROW_UPDATE, self.ROW_DELETE), table, None)
        self.callback = callback
        self.event_name = f"nodeagent-{table}-{id(self)}"

    def match_fn(self, event, row, old):
        changed = getattr(old, "_data", None) if event == self.ROW_UPDATE else None
        return not changed or not set(changed) <= _NOISE

    def run(self, event, row, old):
        self.callback(self.table, getattr(row, "name", ""))


class RowListener:
    """One event handler per database connection: calls ``on_row(table, name)`` when a row of ``tables``
    changes, and ``on_resync()`` once the replica is whole again after a reconnect."""

    def __init__(self, connection_string: str, tables: Iterable[str], on_row: Callable[[str, str], None],
                 on_resync: Callable[[], None]):
        self.api = api(connection_string)
        self.on_resync = on_resync
        self.events = [_NameEvent(table, on_row) for table in sorted(set(tables))]
        self.api.idl.notify_handler.watch_events(self.events)
        self.api.idl.resync_handlers.append(self._resynced)

    def _resynced(self) -> None:
        self.on_resync()

    def stop(self) -> None:
        self.api.idl.notify_handler.unwatch_events(self.events)
        if self._resynced in self.api.idl.resync_handlers:
            self.api.idl.resync_handlers.remove(self._resynced)
