"""Converge figures: how long one operator change holds the inventory's write transaction.

A change (a site variable every node's role reads) and every node's new document are stored in
one transaction (nodeagent.fleet.desired); while it is open, agents' reports wait for SQLite's
lock. Measured for NODES nodes with a one-resource role, no broker (the nodes are pending, so
nothing is pushed): the first document of every node, a change for every node, a change for none.

Run:  .venv/bin/python benchmarks/converge.py [--nodes 10 100 300]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from nodeagent.fleet.coordinator import Coordinator  # noqa: E402
from nodeagent.fleet.inventory import Node  # noqa: E402
from nodeagent.cli import config  # noqa: E402
from nodeagent.wire import box, trust  # noqa: E402

ROLE = """resources:
  - id: tunnel
    driver: ini
    path: /etc/neutron/tunnel.ini
    settings:
      ovs:
        local_ip: "{{ ipv4_of('eth0') }}"
        tag: "{{ tag }}"
"""


def fleet(directory: Path, nodes: int) -> Coordinator:
    """A coordinator whose NODES pending nodes reported their facts and carry the role (not rendered yet)."""
    (directory / "roles").mkdir()
    (directory / "roles/tunnel.yaml.j2").write_text(ROLE)
    (directory / "c.conf").write_text(f"[coordinator]\nstate_dir = {directory / 'state'}\n"
                                      "max_pending_nodes = 1000000\nenrolments_per_minute = 1000000\n"
                                      f"roles_dir = {directory / 'roles'}\n")
    coordinator = Coordinator(config.make_conf([str(directory / "c.conf")]))
    coordinator.set_up()
    coordinator.settings.set_variable("tag", "first")
    for number in range(nodes):  # each node enrols (pending: its facts are kept once accepted)
        coordinator.reports.report_state(trust.seal({
            "node": f"n{number}", "seq": 1, "status": {"generation": 0}, "events": [],
            "box_key": box.public_text(box.X25519PrivateKey.generate().public_key())}, Ed25519PrivateKey.generate()))
    with coordinator.inventory.session() as session:  # facts and the role on every node (setup, not measured)
        for number, node in enumerate(session.query(Node).order_by(Node.created_at)):
            node.facts = {"interfaces": {"eth0": {"ipv4": [f"198.18.{number // 250}.{number % 250 + 1}/24"]}}}
            node.roles = ["tunnel"]
    return coordinator


def timed(call) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[10, 100, 300])
    args = parser.parse_args()
    figures = {}
    for nodes in args.nodes:
        with tempfile.TemporaryDirectory() as directory:
            coordinator = fleet(Path(directory), nodes)
            first = timed(coordinator.desired.converge)
            every = timed(lambda: coordinator.settings.set_variable("tag", "second"))
            none = timed(lambda: coordinator.settings.set_variable("tag", "second"))
            figures[nodes] = {"first_s": round(first, 3), "change_all_s": round(every, 3),
                              "change_none_s": round(none, 3)}
            print(f"{nodes:4d} nodes: first documents {first:.2f} s; a variable every node reads {every:.2f} s; "
                  f"set again, nothing changes {none:.2f} s")
    print(json.dumps({"benchmark": "converge", "nodes": figures}))


if __name__ == "__main__":
    main()
