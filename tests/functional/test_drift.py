"""Drift end to end: a running agent sees each kind of out-of-band change, fixes it (or leaves it in
monitor mode), and the coordinator, its drift list, the metrics and a webhook receiver all hear of it."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import yaml

from nodeagent.testing.lab import Fleet
from tests.drift_kinds import DOCUMENT, KINDS, edit, root
from nodeagent.testing.waiting import wait_until

class Receiver(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self):  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def webhook():
    server = HTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/alerts"
    server.shutdown()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, webhook):
    dead = free_port()  # nothing listens there: alerts to it end as dead letters
    ports = {"agent": free_port(), "coordinator": free_port()}
    fleet = Fleet(tmp_path_factory.mktemp("drift"), report_interval=1, auto_accept=True,
                  coordinator_options={"webhooks": f"{webhook},http://127.0.0.1:{dead}/down",
                                       "webhook_retries": 1, "webhook_timeout": 1,
                                       "metrics_address": f"127.0.0.1:{ports['coordinator']}"},
                  agent_options={"metrics_address": f"127.0.0.1:{ports['agent']}", "drift_contested_count": 3,
                                 "drift_contested_window": 30, "drift_backoff": 8})
    fleet.ports = ports
    try:
        node = fleet.add_node("drift1", ["eth1", "eth2"])
        node.exec("ethtool", "-K", "eth2", "gro", "on")
        fleet.start("coordinator")
        fleet.start("drift1")
        (fleet.directory / "state.yaml").write_text(yaml.safe_dump(DOCUMENT))
        wait_until(lambda: "drift1" in fleet.ctl("node", "list", "-f", "value", "-c", "Host").stdout)
        fleet.ctl("node", "set-state", "drift1", str(fleet.directory / "state.yaml"))
        wait_until(lambda: "converged 1/1" in " ".join(
            fleet.ctl("node", "list", "-f", "value", "-c", "Generation", "-c", "State").stdout.split()))
        yield fleet
    finally:
        fleet.close()


def drift(fleet, **filters) -> list[dict]:
    args = ["drift", "list", "-f", "json", "--node", "drift1"] + (["--open"] if filters.pop("open", False) else [])
    return json.loads(fleet.ctl(*args).stdout)


def scrape(port: int) -> str:
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()


@pytest.mark.parametrize("kind", list(KINDS))
def test_each_kind_of_drift_is_fixed_and_reported_everywhere(fleet, kind):
    resource, change, fixed = KINDS[kind]
    node = fleet.nodes["drift1"]
    before = len([d for d in drift(fleet) if d["Resource"] == resource])
    hooks_before = len([a for a in Receiver.received if a.get("resource") == resource])
    change(fleet, node)
    wait_until(lambda: fixed(fleet, node), timeout=10)
    records = wait_until(lambda: [d for d in drift(fleet) if d["Resource"] == resource][before:] or None)
    assert records[0]["State"] == "corrected" and records[0]["Open"] == "closed" and records[0]["Changes"]
    assert "s3cret" not in json.dumps(records)
    wait_until(lambda: len([a for a in Receiver.received if a.get("resource") == resource]) > hooks_before)
    alert = [a for a in Receiver.received if a.get("resource") == resource][-1]
    assert alert["type"] == "nodeagent.drift.corrected" and alert["node"] == "drift1"
    driver = records[0]["Driver"]
    assert f'nodeagent_drift_events_total{{driver="{driver}",state="corrected"}}' in scrape(fleet.ports["agent"])
    assert f'nodeagent_node_drift_events_total{{driver="{driver}",node="drift1",state="corrected"}}' in \
        scrape(fleet.ports["coordinator"])


def test_monitor_mode_reports_every_kind_and_leaves_it(fleet):
    (fleet.directory / "monitor.yaml").write_text(yaml.safe_dump({**DOCUMENT, "mode": "monitor"}))
    fleet.ctl("node", "set-state", "drift1", str(fleet.directory / "monitor.yaml"))
    wait_until(lambda: "2/2" in fleet.ctl("node", "list", "-f", "value", "-c", "Generation").stdout)
    node = fleet.nodes["drift1"]
    for kind, (resource, change, fixed) in KINDS.items():
        before = len([d for d in drift(fleet) if d["Resource"] == resource])
        change(fleet, node)
        records = wait_until(lambda: [d for d in drift(fleet) if d["Resource"] == resource][before:] or None)
        assert records[0]["State"] == "left", kind
        assert not fixed(fleet, node), f"{kind}: monitor mode must leave the change"
    open_resources = {d["Resource"] for d in drift(fleet, open=True)}
    assert open_resources == {resource for resource, _, _ in KINDS.values()}
    assert '"Drifted": 7' in fleet.ctl("node", "list", "-f", "json").stdout
    assert json.loads(fleet.ctl("events", "-f", "json", "--node", "drift1", "--type", "drift.left").stdout)
    fleet.ctl("node", "set-state", "drift1", str(fleet.directory / "state.yaml"))  # enforce again: all put back
    wait_until(lambda: all(fixed(fleet, node) for _, _, fixed in KINDS.values()), timeout=30)
    wait_until(lambda: not drift(fleet, open=True))


def test_something_that_keeps_fighting_the_agent_is_contested_and_backed_off(fleet):
    fought = root(fleet) / "etc/neutron/fought.conf"
    for _ in range(3):
        fought.write_text("theirs\n")
        wait_until(lambda: fought.read_text() == "mine\n", timeout=10)
        time.sleep(0.3)
    # The agent's own view says at once that it backed off (the coordinator's hears of it a report later).
    status = fleet.directory / "drift1/state/status.json"
    wait_until(lambda: any(r["id"] == "fought" and r["backed_off"]
                           for r in json.loads(status.read_text())["resources"]), timeout=5, step=0.05)
    fought.write_text("theirs\n")
    time.sleep(2)
    assert fought.read_text() == "theirs\n"  # backed off: not rewritten
    wait_until(lambda: fought.read_text() == "mine\n", timeout=30)  # after the backoff it is enforced again
    assert wait_until(lambda: [d for d in drift(fleet) if d["Resource"] == "fought" and d["State"] == "contested"])
    assert any(a.get("type") == "nodeagent.drift.contested" for a in Receiver.received)


def test_a_webhook_that_stays_down_leaves_a_dead_letter(fleet):
    events = wait_until(lambda: json.loads(fleet.ctl("events", "-f", "json", "--type", "webhook.dead_letter").stdout))
    assert "/down did not take nodeagent.drift" in events[0]["Detail"]
    assert "nodeagent_webhook_dead_letters_total" in scrape(fleet.ports["coordinator"])


def test_nodeagent_status_shows_the_local_view(fleet):
    from tests.conftest import run_cli

    neutron = root(fleet) / "etc/neutron/neutron.conf"
    wait_until(lambda: "core_plugin = ml2" in neutron.read_text(), timeout=10)
    edit(neutron, "core_plugin = ml2", "core_plugin = local-view")
    wait_until(lambda: "core_plugin = ml2" in neutron.read_text(), timeout=10)

    def status():
        done = run_cli("--config-file", str(fleet.agent_conf("drift1")), "status", "-f", "json")
        assert done.returncode == 0, done.stderr
        rows = {row["Resource"]: row for row in json.loads(done.stdout)}
        drift = rows["neutron-conf"]["Last drift"]
        return drift and "local-view" in json.dumps(drift) and (rows, done.stderr)
    rows, summary = wait_until(status, timeout=10)
    assert set(rows) == {r["id"] for r in DOCUMENT["resources"]}
    assert rows["neutron-conf"]["Last drift"]["state"] == "corrected"
    generation = fleet.ctl("node", "list", "-f", "value", "-c", "Generation").stdout.split("/")[0].strip()
    assert f"drift1: generation {generation}, mode enforce" in summary
