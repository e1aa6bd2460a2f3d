"""The coordinator's inventory in SQL (SQLAlchemy): nodes, their documents with history, and events.

SQLite under the coordinator's state directory by default; any SQLAlchemy URL
(PostgreSQL, MySQL) in production. ``nodeagentctl`` and ``nodeagentctl serve``
share it.
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from sqlalchemy import (JSON, BigInteger, Boolean, Double, ForeignKey, Integer, String, Text, create_engine, distinct,
                        event, func, inspect, make_url, select)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, column_property, mapped_column, sessionmaker
from sqlalchemy.types import TypeDecorator

from nodeagent.fleet.options import coordinator_opts


class SealedText(TypeDecorator):
    """Text encrypted with the database's vault (the coordinator's ``box.Vault``); as given when there is none.
    Values stored in clear before are read as they are. SQLAlchemy hands a column type only the dialect, so
    ``Inventory(url, vault)`` puts its vault there (``nodeagent_vault``), in that one place."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        vault = getattr(dialect, "nodeagent_vault", None)
        return vault.encrypt(value) if vault is not None and value is not None else value

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        vault = getattr(dialect, "nodeagent_vault", None)
        return vault.decrypt(value) if vault is not None and value is not None else value


class SealedJSON(SealedText):
    """JSON, encrypted like ``SealedText``."""

    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        return super().process_bind_param(None if value is None else json.dumps(value), dialect)

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        text = super().process_result_value(value, dialect)
        return None if text is None else json.loads(text)


class Base(DeclarativeBase):
    pass


class Node(Base):
    __tablename__ = "nodes"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    public_key: Mapped[str | None] = mapped_column(String(64))
    enrolment: Mapped[str] = mapped_column(String(16), default="pending")  # pending | accepted
    roles: Mapped[list] = mapped_column(JSON, default=list)
    variables: Mapped[dict] = mapped_column(JSON, default=dict)
    facts: Mapped[dict] = mapped_column(JSON, default=dict)
    health: Mapped[dict] = mapped_column(JSON, default=dict)
    status: Mapped[dict] = mapped_column(JSON, default=dict)
    alive: Mapped[bool] = mapped_column(Boolean, default=False)
    # When the row last took a report's health (a plain heartbeat writes it only when something moved, or its
    # figures are older than health_refresh); when the node was last heard is ``last_heard``.
    last_heartbeat: Mapped[float | None] = mapped_column(Double)
    desired_generation: Mapped[int] = mapped_column(Integer, default=0)
    observed_generation: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[float] = mapped_column(Double, default=time.time)
    held: Mapped[str | None] = mapped_column(Text)  # why its roles do not render now; None: not held

    @property
    def last_heard(self) -> float | None:
        """When its last report was taken: its trust row's time (``heard_at``, read with the row; every report
        taken writes it), else the row's own; None while no report was taken (a pending node's are refused)."""
        if self.last_heartbeat is None:
            return None
        return max(self.last_heartbeat, self.heard_at or 0)

    @property
    def state(self) -> str:
        """pending, held, rolled_back, failed, converging or converged: what an operator asks first."""
        if self.enrolment != "accepted":
            return self.enrolment
        if self.held:
            return "held"  # its roles do not render now: it keeps what it has (node show says why)
        if ((self.status or {}).get("rolled_back") or {}).get("generation") == self.desired_generation:
            return "rolled_back"  # its connectivity guard undid this generation: it runs the one before
        if (self.status or {}).get("failed"):
            return "failed"
        reconciled = (self.status or {}).get("reconciled_generation", self.desired_generation)
        if self.observed_generation < self.desired_generation or reconciled < self.desired_generation:
            return "converging"  # not yet received, or received and still being applied
        return "converged"


class StateDocument(Base):
    __tablename__ = "documents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    node: Mapped[str] = mapped_column(ForeignKey("nodes.name"), index=True)
    generation: Mapped[int] = mapped_column(Integer)
    body: Mapped[dict] = mapped_column(SealedJSON)  # a rendered document holds the secrets
    created_at: Mapped[float] = mapped_column(Double, default=time.time)


class Event(Base):
    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uid: Mapped[str | None] = mapped_column(String(32), unique=True)  # an agent's id: stored once however often sent
    at: Mapped[float] = mapped_column(Double, default=time.time, index=True)
    node: Mapped[str | None] = mapped_column(String(255), index=True)
    type: Mapped[str] = mapped_column(String(64), index=True)
    detail: Mapped[str] = mapped_column(Text, default="")


class DriftRecord(Base):
    __tablename__ = "drift"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uid: Mapped[str] = mapped_column(String(32), unique=True)
    node: Mapped[str] = mapped_column(String(255), index=True)
    resource: Mapped[str] = mapped_column(String(128))
    driver: Mapped[str] = mapped_column(String(64))
    generation: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))  # corrected, left, contested, failed
    changes: Mapped[list] = mapped_column(JSON, default=list)
    error: Mapped[str | None] = mapped_column(Text)
    seen_at: Mapped[float] = mapped_column(Double, index=True)
    fixed_at: Mapped[float | None] = mapped_column(Double)
    closed_at: Mapped[float | None] = mapped_column(Double)  # a left / contested / failed drift that went away
    by: Mapped[dict | None] = mapped_column(JSON)  # who made the change (messages.Writer), when the node could tell

    @property
    def open(self) -> bool:
        return self.fixed_at is None and self.closed_at is None


class SiteVariable(Base):
    __tablename__ = "variables"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Secret(Base):
    """Secrets the roles render into documents as sensitive fields; never listed with their values.

    Encrypted at rest under the coordinator's key file (``secrets.key``), like the rendered documents.
    """

    __tablename__ = "secrets"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[str] = mapped_column(SealedText)
    set_at: Mapped[float] = mapped_column(Double, default=time.time)


class NodeTrust(Base):
    """What proves a node's messages fresh and keeps its documents private: the last report sequence
    accepted and its encryption key (a table of its own, so existing databases gain it)."""

    __tablename__ = "node_trust"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    sequence: Mapped[int] = mapped_column(BigInteger, default=0)
    box_key: Mapped[str | None] = mapped_column(String(64))
    # When its last report was taken, written with the sequence. Liveness reads this: a change's transaction
    # holds the nodes' rows (so nodes.last_heartbeat may wait), never these.
    heard_at: Mapped[float | None] = mapped_column(Double)


# Read with every node (one indexed lookup each): what node list, node show and the web view say as "last heartbeat".
Node.heard_at = column_property(select(NodeTrust.heard_at).where(NodeTrust.name == Node.name)
                                .correlate_except(NodeTrust).scalar_subquery())


class Rollout(Base):
    """A change pushed to its nodes in batches (``nodeagentctl rollout``); its state survives a coordinator's
    restart because it lives here, and every coordinator may advance it (one at a time: the 'rollouts' lock)."""

    __tablename__ = "rollouts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    state: Mapped[str] = mapped_column(String(16), default="running")  # running paused failed aborted completed
    selection: Mapped[str] = mapped_column(Text, default="")  # what the operator chose: "role compute", "nodes a,b"
    change: Mapped[str] = mapped_column(Text, default="")  # what it rolls out: "var set tag blue", "" (pending)
    canary: Mapped[int] = mapped_column(Integer, default=0)
    max_unavailable: Mapped[str] = mapped_column(String(8), default="1")  # "N" or "N%"
    soak: Mapped[float] = mapped_column(Double, default=0.0)
    batch: Mapped[int] = mapped_column(Integer, default=0)  # the batch released last (1 is the first)
    reason: Mapped[str | None] = mapped_column(Text)  # why it failed, was paused or aborted
    created_at: Mapped[float] = mapped_column(Double, default=time.time)
    updated_at: Mapped[float] = mapped_column(Double, default=time.time)


class RolloutNode(Base):
    """One node of a rollout: its batch and where it stands (waiting, rolling, soaking, done, failed; superseded
    when a later rollout took it over)."""

    __tablename__ = "rollout_nodes"

    rollout: Mapped[int] = mapped_column(ForeignKey("rollouts.id"), primary_key=True)
    node: Mapped[str] = mapped_column(String(255), primary_key=True)
    batch: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default="waiting", index=True)
    since: Mapped[float | None] = mapped_column(Double)  # when it entered its state
    generation: Mapped[int | None] = mapped_column(Integer)  # the generation it was judged on
    reason: Mapped[str | None] = mapped_column(Text)


_OPTION_DEFAULTS = {opt.name: opt.default for opt in coordinator_opts}  # an Inventory made without options


@dataclass(frozen=True)
class SessionLimits:
    """How long a coordinator's database session waits for a row another transaction holds, and how long the
    server lets a transaction sit idle before ending it (seconds; 0: the server's own setting).

    Any client may stop inside a transaction (a coordinator hung, SIGSTOPped, its host frozen) holding node
    rows. Without a bound, every other coordinator's heartbeat for those nodes waits on them holding a pooled
    connection, the pools run dry and the whole fleet's reports fail. Set per connection at its start, so a
    session's own SET can never be rolled back with a transaction. SQLite has one writer and its busy timeout.
    """

    lock_timeout: float = _OPTION_DEFAULTS["database_lock_timeout"]
    idle_transaction_timeout: float = _OPTION_DEFAULTS["database_idle_transaction_timeout"]

    def connect_args(self, url: str) -> dict[str, Any]:
        backend = make_url(url).get_backend_name()
        lock, idle = int(self.lock_timeout * 1000), int(self.idle_transaction_timeout * 1000)
        if backend == "postgresql":
            settings = [f"lock_timeout={lock}"] if lock else []
            settings += [f"idle_in_transaction_session_timeout={idle}"] if idle else []
            return {"options": " ".join(f"-c {setting}" for setting in settings)} if settings else {}
        if backend in ("mysql", "mariadb"):  # InnoDB counts whole seconds, at least one
            settings = [f"innodb_lock_wait_timeout={max(1, round(self.lock_timeout))}"] if lock else []
            settings += [f"idle_transaction_timeout={max(1, round(self.idle_transaction_timeout))}"] if idle else []
            return {"init_command": "SET SESSION " + ", SESSION ".join(settings)} if settings else {}
        return {}


class Inventory:
    """Sessions over the inventory database; ``vault`` encrypts secrets and documents at rest."""

    def __init__(self, url: str, vault: Any = None, limits: SessionLimits | None = None):
        self.engine = create_engine(url, future=True, connect_args=(limits or SessionLimits()).connect_args(url))
        self.engine.dialect.nodeagent_vault = vault
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def create_schema(self) -> tuple[str | None, str]:
        """Make or upgrade the schema to this code's revision (``keygen``, ``serve``, ``db upgrade``); returns
        the revisions (from, to). Rows are kept: each revision changes the tables, never drops what is in them."""
        from nodeagent.fleet import schema

        return schema.upgrade(self.engine)

    def has_schema(self) -> bool:
        """Whether the inventory was set up. Asking never makes it: SQLite would create an empty file."""
        url = self.engine.url
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:") and \
                not Path(url.database).exists():
            return False
        return inspect(self.engine).has_table(Node.__tablename__)

    @property
    def where(self) -> str:
        """The database, for messages (no password)."""
        return self.engine.url.database if self.engine.url.get_backend_name() == "sqlite" else \
            self.engine.url.render_as_string(hide_password=True)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions() as session, session.begin():
            yield session

    @contextmanager
    def trial(self) -> Iterator[Session]:
        """A session whose transaction is rolled back at the end, whatever was done in it: to read what a
        change would make without making it (``DesiredState.converge`` renders from that)."""
        with self._sessions() as session:
            try:
                yield session
            finally:
                session.rollback()

    def node(self, name: str) -> Node | None:
        with self.session() as session:
            return session.get(Node, name)

    def nodes(self) -> list[Node]:
        with self.session() as session:
            return list(session.scalars(select(Node).order_by(Node.name)))

    def document(self, name: str, generation: int | None = None,
                 session: Session | None = None) -> StateDocument | None:
        """The node's document at ``generation``, else its latest (within ``session`` when given)."""
        with self.using(session) as session:
            query = select(StateDocument).where(StateDocument.node == name)
            if generation is not None:
                query = query.where(StateDocument.generation == generation)
            return session.scalars(query.order_by(StateDocument.generation.desc()).limit(1)).first()

    @contextmanager
    def using(self, session: Session | None) -> Iterator[Session]:
        """``session`` when the caller has one (its changes are seen), else a new one."""
        if session is not None:
            yield session
        else:
            with self.session() as session:
                yield session

    def variables(self, host: str | None = None, session: Session | None = None) -> dict[str, str]:
        """The site's variables, overridden by the node's own when ``host`` is given."""
        with self.using(session) as session:
            values = {v.key: v.value for v in session.query(SiteVariable)}
            node = session.get(Node, host) if host else None
            return {**values, **((node.variables or {}) if node else {})}

    def secrets(self, session: Session | None = None) -> dict[str, str]:
        with self.using(session) as session:
            return {s.key: s.value for s in session.query(Secret)}

    def add_event(self, node: str | None, kind: str, detail: str, session: Session | None = None) -> None:
        if session is None:
            with self.session() as session:
                session.add(Event(node=node, type=kind, detail=detail, at=time.time()))
        else:
            session.add(Event(node=node, type=kind, detail=detail, at=time.time()))

    def events(self, node: str | None = None, kind: str | None = None, limit: int = 200) -> list[Event]:
        with self.session() as session:
            query = select(Event)
            if node:
                query = query.where(Event.node == node)
            if kind:
                query = query.where(Event.type.like(kind.replace("*", "%")))
            return list(reversed(list(session.scalars(query.order_by(Event.id.desc()).limit(limit)))))


    def drift(self, node: str | None = None, since: float | None = None, only_open: bool = False,
              limit: int = 500) -> list[DriftRecord]:
        with self.session() as session:
            query = select(DriftRecord)
            if node:
                query = query.where(DriftRecord.node == node)
            if since:
                query = query.where(DriftRecord.seen_at >= since)
            if only_open:
                query = query.where(DriftRecord.fixed_at.is_(None), DriftRecord.closed_at.is_(None))
            return list(reversed(list(session.scalars(query.order_by(DriftRecord.id.desc()).limit(limit)))))

    def secrets_set(self) -> list[tuple[str, float]]:
        """Each secret's name and when it was set (never its value)."""
        with self.session() as session:
            return [(s.key, s.set_at) for s in session.query(Secret).order_by(Secret.key)]

    def open_drift_counts(self) -> dict[str, int]:
        """Per node, how many resources have open drift (counted by the database: a fleet's open drift may be
        tens of thousands of rows)."""
        with self.session() as session:
            query = select(DriftRecord.node, func.count(distinct(DriftRecord.resource))).where(
                DriftRecord.fixed_at.is_(None), DriftRecord.closed_at.is_(None)).group_by(DriftRecord.node)
            return {node: count for node, count in session.execute(query)}


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    # The coordinator and nodeagentctl write the same file: wait for each other, don't fail.
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # WAL with synchronous=NORMAL: a commit survives the process's crash, only an OS crash may lose the last
    # ones (heartbeats, re-sent; a document, rendered again). FULL's fsync per commit was a third of a heartbeat.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def lock_wait(error: Exception) -> bool:
    """Whether a database error is a wait for a lock given up (PostgreSQL's lock_timeout or NOWAIT, SQLSTATE
    55P03; InnoDB's lock wait timeout 1205, or 3572 for NOWAIT), rather than any other failure."""
    original = getattr(error, "orig", None)
    code = (getattr(original, "args", None) or (None,))[0]
    return getattr(original, "pgcode", None) == "55P03" or code in (1205, 3572)
