"""Converge figures: how long one operator change holds the inventory's write transaction.

A change (a site variable every node's role reads) and every node's new document are stored in
one transaction (nodeagent.fleet.desired); while it is open it holds the rows it wrote (every
node's, on PostgreSQL and MariaDB; SQLite's one write lock), and while Python works between two of
its statements the server sees it "idle in transaction": the longest such gap is what
``database_idle_transaction_timeout`` must stay above. Measured for NODES nodes with a one-resource
role, no broker (the nodes are pending, so nothing is pushed): the first document of every node, a
change for every node, a change for none, a change for one node (its own variable); for each, the wall
time and that time per node of the fleet (what a fleet-wide change costs per node: render, checks,
validation, storing), and of the transaction that stored (the one that committed writes) how long it
was open and its longest gap between statements.

Run:  .venv/bin/python benchmarks/converge.py [--nodes 100 300 1000] [--databases sqlite postgresql]
          [--role compute|tunnel]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402
from sqlalchemy import event  # noqa: E402

from nodeagent.fleet.coordinator import Coordinator  # noqa: E402
from nodeagent.fleet.inventory import Node, Secret, SiteVariable  # noqa: E402
from nodeagent.cli import config  # noqa: E402
from nodeagent.testing.sqlserver import SERVERS  # noqa: E402
from nodeagent.wire import box, trust  # noqa: E402

# A one-resource role (the template takes well under a millisecond), or the install guide's compute role
# (etc/roles: twelve resources, a few milliseconds per node, as a real fleet renders).
TUNNEL = """resources:
  - id: tunnel
    driver: ini
    path: /etc/neutron/tunnel.ini
    settings:
      ovs:
        local_ip: "{{ ipv4_of('eth0') }}"
        tag: "{{ tag }}"
"""
CHANGED = {"tunnel": "tag", "compute": "controller_host"}  # a variable every node's role reads
OWN = {"tunnel": "tag", "compute": "provider_bridge"}  # one a node may set for itself (no fleet check compares it)
REPO = Path(__file__).resolve().parent.parent


class Transactions:
    """Each transaction the engine runs, as the server sees it: open from its first statement to its commit
    or rollback; its longest gap is the longest time the server saw it idle (between two statements, or
    after the last one until the commit)."""

    def __init__(self, engine: Any):
        self.open: dict[int, dict[str, Any]] = {}
        self.done: list[dict[str, Any]] = []
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)
        event.listen(engine, "commit", lambda conn: self._end(conn, True))
        event.listen(engine, "rollback", lambda conn: self._end(conn, False))

    def _before(self, conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        now = time.perf_counter()
        state = self.open.setdefault(id(conn), {"opened": now, "last": now, "gap": 0.0, "writes": 0})
        state["gap"] = max(state["gap"], now - state["last"])
        state["writes"] += statement.lstrip().split(None, 1)[0].upper() in ("INSERT", "UPDATE", "DELETE")

    def _after(self, conn: Any, *_args: Any) -> None:
        if id(conn) in self.open:
            self.open[id(conn)]["last"] = time.perf_counter()

    def _end(self, conn: Any, committed: bool) -> None:
        state = self.open.pop(id(conn), None)
        if state is not None:
            now = time.perf_counter()
            self.done.append({"open_s": now - state["opened"], "gap_s": max(state["gap"], now - state["last"]),
                              "writes": state["writes"], "committed": committed})

    def measure(self, call: Callable[[], Any], nodes: int) -> dict[str, float]:
        """Wall time of ``call``, and per node of the fleet; how long the longest transaction that committed
        writes during it was open (0 when none did); the longest gap of any of its transactions (what the idle
        timeout must outlast)."""
        self.done.clear()
        started = time.perf_counter()
        call()
        wall = time.perf_counter() - started
        stored = max((t["open_s"] for t in self.done if t["committed"] and t["writes"]), default=0.0)
        gap = max((t["gap_s"] for t in self.done), default=0.0)
        return {"wall_s": round(wall, 3), "ms_per_node": round(wall / nodes * 1000, 2),
                "write_open_s": round(stored, 3), "idle_gap_s": round(gap, 3)}


def fleet(directory: Path, nodes: int, database_url: str | None, role: str) -> Coordinator:
    """A coordinator whose NODES pending nodes reported their facts and carry the role (not rendered yet)."""
    roles = REPO / "etc/roles" if role == "compute" else directory / "roles"
    if role == "tunnel":
        roles.mkdir()
        (roles / "tunnel.yaml.j2").write_text(TUNNEL)
    (directory / "c.conf").write_text(f"[coordinator]\nstate_dir = {directory / 'state'}\n"
                                      "max_pending_nodes = 1000000\nenrolments_per_minute = 1000000\n"
                                      f"roles_dir = {roles}\n"
                                      + (f"database_connection = {database_url}\n" if database_url else ""))
    coordinator = Coordinator(config.make_conf([str(directory / "c.conf")]))
    coordinator.set_up()
    coordinator.desired.converge(_set_up)  # what the roles read (no node yet: nothing renders)
    for number in range(nodes):  # each node enrols (pending: its facts are kept once accepted)
        coordinator.reports.report_state(trust.seal({
            "node": f"n{number}", "seq": 1, "status": {"generation": 0}, "events": [],
            "box_key": box.public_text(box.X25519PrivateKey.generate().public_key())}, Ed25519PrivateKey.generate()))
    with coordinator.inventory.session() as session:  # facts and the role on every node (setup, not measured)
        for number, node in enumerate(session.query(Node).order_by(Node.created_at)):
            node.facts = {"interfaces": {"eth0": {"ipv4": [f"198.18.{number // 250}.{number % 250 + 1}/24"]},
                                         "eth1": {}}}
            node.roles = [role]
    return coordinator


def _set_up(session: Any) -> None:
    for key, value in {"tag": "first", "overlay_interface": "eth0", "provider_interface": "eth1"}.items():
        session.merge(SiteVariable(key=key, value=value))
    for key in ("NEUTRON_PASS", "RABBIT_PASS"):
        session.merge(Secret(key=key, value="benchmark", set_at=time.time()))


def run(directory: Path, nodes: int, database_url: str | None, role: str) -> dict[str, dict[str, float]]:
    coordinator = fleet(directory, nodes, database_url, role)
    transactions = Transactions(coordinator.inventory.engine)
    settings = coordinator.settings
    figures = {"first": transactions.measure(coordinator.desired.converge, nodes),
               "change_all": transactions.measure(lambda: settings.set_variable(CHANGED[role], "second"), nodes),
               "change_none": transactions.measure(lambda: settings.set_variable(CHANGED[role], "second"), nodes),
               "change_one": transactions.measure(lambda: settings.set_variable(OWN[role], "br-third", host="n0"),
                                                  nodes)}
    coordinator.inventory.engine.dispose()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[100, 300, 1000])
    parser.add_argument("--databases", nargs="+", default=["sqlite"], choices=["sqlite", *SERVERS])
    parser.add_argument("--role", default="compute", choices=sorted(CHANGED))
    args = parser.parse_args()
    results: dict[str, dict[int, Any]] = {}
    for database in args.databases:
        with tempfile.TemporaryDirectory() as scratch:
            server = SERVERS[database](Path(scratch) / database).start() if database != "sqlite" else None
            try:
                for nodes in args.nodes:
                    url = server.create_database(f"converge{nodes}") if server else None
                    (Path(scratch) / str(nodes)).mkdir()
                    figures = results.setdefault(database, {})[nodes] = run(Path(scratch) / str(nodes), nodes, url,
                                                                                 args.role)
                    print(f"{database:10s} {nodes:5d} nodes: " + "; ".join(
                        f"{name} {f['wall_s']:.2f} s = {f['ms_per_node']:.2f} ms/node (write transaction open "
                        f"{f['write_open_s']:.2f} s, "
                        f"longest idle {f['idle_gap_s'] * 1000:.0f} ms)" for name, f in figures.items()))
            finally:
                if server:
                    server.stop()
    print(json.dumps({"benchmark": "converge", "role": args.role, "databases": results}))


if __name__ == "__main__":
    main()
