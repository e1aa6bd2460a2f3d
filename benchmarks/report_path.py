"""The coordinator's cost of one heartbeat, in process, without the broker: where the CPU goes.

A coordinator (SQLite, or a private MariaDB/PostgreSQL with --db) holds NODES accepted nodes; each
sends heartbeats as a real agent does (signed, the next sequence, its status and health). Timed
apart, in CPU seconds per heartbeat (medians of ROUNDS rounds over every node):

* verify: reading the envelope and checking its Ed25519 signature (the floor the trust model sets),
* parse: reading the payload as a ``Report`` and bounding it,
* report: the whole intake of a called report (``Reports.report_state``: verify, freshness, parse, store,
  answer), for a heartbeat that changes nothing but the time and for one whose health numbers moved,
* batch: the intake of cast heartbeats (``Reports.take_heartbeats``), BATCH at a time in one transaction, as a
  coordinator's listener takes them (its prefetch, 32), per heartbeat, health moved: with the default
  ``health_refresh`` (the figures younger than it: no node row written) and with 0 (each stored, one row write
  per heartbeat, as before health_refresh).

The broker's own cost per call (oslo.messaging's receive, dispatch and reply) is not in these figures:
``benchmarks/scale.py`` measures whole coordinator processes under real agents.

Run:  .venv/bin/python benchmarks/report_path.py [--nodes 200] [--rounds 5] [--db sqlite mariadb postgresql]
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import tempfile
import time
import warnings
from contextlib import ExitStack
from pathlib import Path

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from nodeagent.cli import config  # noqa: E402
from nodeagent.fleet import reportbounds  # noqa: E402
from nodeagent.fleet.coordinator import Coordinator  # noqa: E402
from nodeagent.wire import box, messages, trust  # noqa: E402
from nodeagent.wire.protocol import CoordinatorChannel  # noqa: E402

STATUS = {"generation": 3, "mode": "enforce", "counts": {"in_sync": 14}, "reconciled_at": 1.0e9,
          "reconciled_generation": 3}
SERVICES = {"neutron-server": True, "neutron-openvswitch-agent": True}


class Node:
    """One simulated agent: its keys and its next sequence."""

    def __init__(self, name: str):
        self.name = name
        self.key = Ed25519PrivateKey.generate()
        self.box_key = box.public_text(box.X25519PrivateKey.generate().public_key())
        self.sequence = itertools.count(1)

    def heartbeat(self, load: float = 0.5) -> dict:
        health = {"load": [load, 0.4, 0.3], "cpu_percent": 3.0, "memory_percent": 41.0,
                  "state_dir_free_mb": 9000, "state_dir_used_percent": 52.0, "services": SERVICES}
        return trust.seal({"node": self.name, "seq": next(self.sequence), "sent_at": time.time(),
                           "box_key": self.box_key, "status": STATUS, "health": health, "events": []}, self.key)


def coordinator(directory: Path, connection: str | None) -> Coordinator:
    options = "".join([f"[coordinator]\nstate_dir = {directory / 'state'}\nauto_accept = true\n",
                       f"database_connection = {connection}\n" if connection else ""])
    (directory / "c.conf").write_text("[DEFAULT]\nreport_interval = 10\n" + options)
    made = Coordinator(config.make_conf([str(directory / "c.conf")]))
    made.set_up()
    return made


def per_call(calls: list, rounds: int) -> float:
    """Median over rounds of the CPU seconds per call, in milliseconds."""
    figures = []
    for round_calls in calls[:rounds]:
        start = time.process_time()
        for call in round_calls:
            call()
        figures.append((time.process_time() - start) / len(round_calls))
    return round(1000 * statistics.median(figures), 3)


def measure(directory: Path, connection: str | None, nodes: int, rounds: int, batch: int) -> dict:
    made = coordinator(directory, connection)
    fleet = [Node(f"n{number}") for number in range(nodes)]
    for node in fleet:  # enrolment and the first report: not measured
        made.reports.report_state(node.heartbeat())
    # Sealing is the agents' cost: done ahead, so only the coordinator's side is timed.
    same = [[node.heartbeat() for node in fleet] for _ in range(rounds)]
    moved = [[node.heartbeat(load=0.5 + 0.01 * r) for node in fleet] for r in range(rounds)]
    verify = per_call([[lambda s=s: CoordinatorChannel.read_request(s, trust.public_text(
        trust.public_from_text(s["key"])))for s in sealed] for sealed in same], rounds)
    parse = per_call([[lambda s=s: reportbounds.bound(messages.Report.from_dict(s["payload"]))
                       for s in sealed] for sealed in same], rounds)
    unchanged = per_call([[lambda s=s: made.reports.report_state(s) for s in sealed] for sealed in same], rounds)
    health = per_call([[lambda s=s: made.reports.report_state(s) for s in sealed] for sealed in moved], rounds)
    cast = [[node.heartbeat(load=0.7 + 0.01 * r) for node in fleet] for r in range(rounds)]
    batches = [[lambda b=sealed[i:i + batch]: made.reports.take_heartbeats(b) for i in range(0, len(sealed), batch)]
               for sealed in cast]
    batched = round(per_call(batches, rounds) * len(batches[0]) / nodes, 3)  # per batch, to per heartbeat
    made.reports.heartbeats.health_refresh = 0
    stored = [[node.heartbeat(load=0.8 + 0.01 * r) for node in fleet] for r in range(rounds)]
    batches = [[lambda b=sealed[i:i + batch]: made.reports.take_heartbeats(b) for i in range(0, len(sealed), batch)]
               for sealed in stored]
    batched_stored = round(per_call(batches, rounds) * len(batches[0]) / nodes, 3)
    answers = {made.reports.report_state(fleet[0].heartbeat()).status}
    assert answers == {"alive"}, answers  # the figures are of accepted heartbeats
    made.close()
    return {"verify_ms": verify, "parse_ms": parse, "report_unchanged_ms": unchanged, "report_health_ms": health,
            "batch_health_ms": batched, "batch_health_stored_ms": batched_stored}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=32, help="cast heartbeats taken in one transaction")
    parser.add_argument("--db", nargs="+", default=["sqlite"], choices=["sqlite", "mariadb", "postgresql"])
    args = parser.parse_args()
    results = {}
    with ExitStack() as stack:
        for db in args.db:
            directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="report-path-")))
            connection = None
            if db != "sqlite":
                from nodeagent.testing.sqlserver import MariaDB, PostgreSQL

                server = stack.enter_context((MariaDB if db == "mariadb" else PostgreSQL)(directory / db))
                connection = server.create_database("reports")
            results[db] = measure(directory, connection, args.nodes, args.rounds, args.batch)
            figures = results[db]
            print(f"{db:<10} CPU per heartbeat (ms, median of {args.rounds} rounds x {args.nodes} nodes): "
                  f"verify {figures['verify_ms']}, parse {figures['parse_ms']}, "
                  f"whole intake unchanged {figures['report_unchanged_ms']}, "
                  f"health moved {figures['report_health_ms']}; cast, {args.batch} a transaction "
                  f"{figures['batch_health_ms']} (health stored each time: {figures['batch_health_stored_ms']})"
                  "  (goal: 0.5)")
    print(json.dumps({"benchmark": "report_path", "nodes": args.nodes, "rounds": args.rounds, "results": results}))


if __name__ == "__main__":
    main()
