"""The web view's pages against the fleet's size: each page served (through the WSGI app, a reader's password
checked each time) for N nodes with 20 drift records each over the last day, on SQLite in a scratch folder.
The password check (scrypt, about 16 MiB) is timed alone too: it is in every request.

    .venv/bin/python benchmarks/web.py [NODES ...]     # default: 100 1000
"""

from __future__ import annotations

import base64
import json
import sys
import tempfile
import time
from pathlib import Path

from nodeagent.cli import config
from nodeagent.fleet.coordinator import Coordinator
from nodeagent.fleet.inventory import DriftRecord, Node
from nodeagent.fleet.web import auth
from nodeagent.fleet.web.app import make_app
from timing import timed  # noqa: E402 (benchmarks/ is the script's directory)

STATES = ("corrected", "left", "contested", "failed")
PAGES = ("/", "/?state=converged&sort=heartbeat", "/nodes/node0001", "/timeline?hours=24", "/events")


def fleet(directory: Path, nodes: int) -> Coordinator:
    """A coordinator's inventory with ``nodes`` nodes, 20 drift records each in the last day."""
    auth.set_password(directory / "pw", "bench", "reader", "bench-pass")
    conf_file = directory / "coordinator.conf"
    conf_file.write_text(f"[coordinator]\nstate_dir = {directory / 'state'}\n[web]\npassword_file = {directory / 'pw'}\n")
    coordinator = Coordinator(config.make_conf([str(conf_file)]))
    coordinator.set_up()
    now = time.time()
    with coordinator.inventory.session() as session:
        for n in range(nodes):
            session.add(Node(name=f"node{n:04d}", roles=["compute"], variables={}, facts={}, status={
                "counts": {"in_sync": 20}}, health={"load": [0.1], "cpu_percent": 1.0, "memory_percent": 20.0},
                alive=True, last_heartbeat=now, enrolment="accepted", desired_generation=1, observed_generation=1))
        session.flush()
        for n in range(nodes):
            for d in range(20):
                session.add(DriftRecord(uid=f"{n}-{d}", node=f"node{n:04d}", resource=f"r{d}", driver="ini",
                                        generation=1, state=STATES[d % 4], seen_at=now - 86000 * d / 20,
                                        fixed_at=None, changes=[{"field": "DEFAULT.debug", "expected": "false",
                                                                 "found": "true"}]))
    return coordinator


def main() -> None:
    sizes = [int(arg) for arg in sys.argv[1:]] or [100, 1000]
    reader = {"Authorization": "Basic " + base64.b64encode(b"bench:bench-pass").decode()}
    hashed = auth.hash_password("bench-pass")
    check_seconds = min(timed(lambda: auth.check_password("bench-pass", hashed), 5))
    print(f"password check (scrypt): {check_seconds * 1000:.1f} ms")
    figures = {}
    for nodes in sizes:
        with tempfile.TemporaryDirectory(prefix="nodeagent-bench-web.") as scratch:
            coordinator = fleet(Path(scratch), nodes)
            client = make_app(coordinator.conf, coordinator.inventory, coordinator.neutron).test_client()
            figures[nodes] = {}
            for page in PAGES:
                assert client.get(page, headers=reader).status_code == 200, page

                def get(page: str = page) -> None:
                    client.get(page, headers=reader)
                seconds = min(timed(get, 3))
                figures[nodes][page] = round(seconds, 4)
                print(f"{nodes:5d} nodes ({nodes * 20} drift records): {page:36s} {seconds * 1000:8.1f} ms")
            coordinator.close()
    print(json.dumps({"benchmark": "web", "password_check_s": round(check_seconds, 4), "pages_s": figures}))


if __name__ == "__main__":
    main()
