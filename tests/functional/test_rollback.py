"""A network change that cuts the node off is rolled back: agents inside lab nodes, reaching the broker
through the node's uplink (``testing.labuplink``), a real coordinator and RabbitMQ.

The cut is the classic one: the uplink goes into a bridge that keeps it (its address stays on it) while the
bridge is down, as ``ovs-vsctl add-br br-ex; add-port br-ex eth0`` leaves br-ex until someone sets it up:
the uplink's frames go to the bridge, which drops them. (An up Linux bridge would still hand them to the
node's stack, which takes them for the uplink's address on any interface.)

Each test has a node of its own; the coordinator is shared by the module.
"""

from __future__ import annotations

import json
import signal
import sys
import time
import urllib.request

import pytest
import yaml

from nodeagent.testing.webhook import Webhook
from nodeagent.testing.lab import Fleet
from nodeagent.testing.labcloud import free_port
from nodeagent.testing.labuplink import GATEWAY_ADDRESS, NIC, Uplink
from nodeagent.testing.waiting import wait_until
from tests.conftest import run_cli

pytestmark = pytest.mark.timeout(300)
PROBES = [{"id": "gw", "ping": GATEWAY_ADDRESS}]
FILE = {"id": "motd", "driver": "file", "path": "/etc/openstack/motd", "content": "kept\n"}
CUT = {"id": "br-ex", "driver": "linux_bridge", "name": "br-ex", "ports": [NIC], "state": "down"}
GOOD = {"id": "br-tun", "driver": "linux_bridge", "name": "br-tun"}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    directory = tmp_path_factory.mktemp("rollback")
    webhook = Webhook()
    metrics = free_port()  # each agent's inside its own node, so one port serves them all
    fleet = Fleet(directory, report_interval=1,
                  coordinator_options={"webhooks": webhook.url,
                                       "metrics_address": f"127.0.0.1:{metrics}"},
                  agent_options={"transport_url": Uplink("x", directory).transport_url(), "rollback_timeout": 4,
                                 "metrics_address": f"127.0.0.1:{metrics}"})
    fleet.uplinks, fleet.metrics, fleet.webhook = [], metrics, webhook
    try:
        fleet.start("coordinator")
        yield fleet
    finally:
        fleet.close()  # the agents first: their broker connections go through the uplinks
        for uplink in fleet.uplinks:
            uplink.down()
        webhook.close()


def node_with_uplink(fleet, prefix: str, document: dict) -> str:
    """A node of the calling test's own, its agent running inside it, accepted and converged on ``document``."""
    name = f"{prefix}-{len(fleet.nodes)}"
    node = fleet.add_node(name, [])
    fleet.uplinks.append(Uplink(node.name, fleet.directory / name / "uplink").up())
    fleet.start(name, inside=True)
    wait_until(lambda: name in nodes(fleet), timeout=60, what=f"{name} reports")
    fleet.ctl("node", "accept", name)
    push(fleet, name, document)
    wait_until(lambda: converged(fleet, name, 1), timeout=60, what=f"{name} converged on generation 1")
    return name


def push(fleet, name: str, document: dict) -> None:
    path = fleet.directory / f"{name}-{time.monotonic_ns()}.yaml"
    path.write_text(yaml.safe_dump(document))
    fleet.ctl("node", "set-state", name, str(path))


def nodes(fleet) -> dict[str, dict]:
    return {row["Host"]: row for row in json.loads(fleet.ctl("node", "list", "-f", "json").stdout)}


def converged(fleet, name: str, generation: int) -> bool:
    row = nodes(fleet).get(name, {})
    return row.get("State") == "converged" and row.get("Generation") == f"{generation}/{generation}"


def status(fleet, name: str) -> dict:
    return yaml.safe_load(fleet.ctl("node", "show", name, "-f", "yaml").stdout)["status"]


def events(fleet, name: str, kind: str) -> list[dict]:
    return json.loads(fleet.ctl("events", "-f", "json", "--node", name, "--type", kind).stdout)


def link(fleet, name: str, interface: str) -> dict | None:
    shown = fleet.nodes[name].exec("ip", "-j", "link", "show", interface, check=False)
    return json.loads(shown.stdout)[0] if shown.returncode == 0 else None


def metrics(fleet, name: str | None = None) -> str:
    """The coordinator's metrics, or those of ``name``'s agent (read inside its node)."""
    url = f"http://127.0.0.1:{fleet.metrics}/metrics"
    if name is None:
        return urllib.request.urlopen(url, timeout=5).read().decode()
    return fleet.nodes[name].exec(sys.executable, "-c", f"import urllib.request; print(urllib.request.urlopen("
                                                        f"{url!r}, timeout=5).read().decode())").stdout


def state_dir(fleet, name: str):
    return fleet.directory / name / "state"


def test_a_change_that_cuts_the_node_off_is_rolled_back_and_reported(fleet):
    name = node_with_uplink(fleet, "cut", {"probes": PROBES, "resources": [FILE]})
    push(fleet, name, {"probes": PROBES, "resources": [FILE, CUT]})
    # The agent loses the broker, restores, reconnects and reports: the coordinator has the event.
    rolled = wait_until(lambda: events(fleet, name, "rolled_back"), timeout=90, what="the rollback reported")
    assert len(rolled) == 1
    assert rolled[0]["Detail"].startswith("generation 2 rolled back: probe broker failed: broker (198.18.77.1:5672)")
    assert "still fail" not in rolled[0]["Detail"]
    assert link(fleet, name, "br-ex") is None and "master" not in link(fleet, name, NIC)  # the uplink is free
    wait_until(lambda: status(fleet, name).get("rolled_back"), timeout=30, what="the rollback in the status")
    held = status(fleet, name)
    assert held["generation"] == 1 and held["rolled_back"]["generation"] == 2
    assert held["rolled_back"]["probe"] == "broker" and held["rolled_back"]["restored"] is True
    local = json.loads((state_dir(fleet, name) / "status.json").read_text())
    assert local["generation"] == 1 and local["rolled_back"]["probe"] == "broker"
    assert not (state_dir(fleet, name) / "checkpoint.json").exists()
    assert (fleet.directory / name / "root/etc/openstack/motd").read_text() == "kept\n"
    shown = run_cli("--config-file", str(fleet.agent_conf(name)), "status")
    assert shown.returncode == 0 and "generation 2 rolled back: probe broker failed: broker (198.18.77.1:5672)" in \
        shown.stderr and "(restored: yes)" in shown.stderr
    alert = wait_until(lambda: [a for a in fleet.webhook.received if a.get("node") == name
                                and a["type"] == "nodeagent.node.rolled_back"], what="the webhook's alert")[0]
    assert alert["detail"] == rolled[0]["Detail"]
    assert alert["rollback"]["probe"] == "broker" and alert["rollback"]["generation"] == 2
    assert f'nodeagent_node_rollbacks_total{{node="{name}"}} 1.0' in metrics(fleet)
    assert 'nodeagent_rollbacks_total{probe="broker"} 1.0' in metrics(fleet, name)
    # Generation 2 is not applied again (no loop), though the coordinator still holds it and the agent pulls.
    time.sleep(4)
    assert link(fleet, name, "br-ex") is None and len(events(fleet, name, "rolled_back")) == 1
    assert nodes(fleet)[name]["Generation"] == "2/1"  # desired/observed
    # A newer generation, fixed, is applied and kept: the rollback is history.
    push(fleet, name, {"probes": PROBES, "resources": [FILE, GOOD]})
    wait_until(lambda: converged(fleet, name, 3), timeout=60, what="generation 3 kept")
    assert status(fleet, name).get("rolled_back") is None and link(fleet, name, "br-tun") is not None


def test_a_good_change_with_the_same_probes_is_kept(fleet):
    name = node_with_uplink(fleet, "good", {"probes": PROBES, "resources": [FILE]})
    closed = {"id": "closed", "tcp": f"{GATEWAY_ADDRESS}:9"}  # fails before the change: does not count
    push(fleet, name, {"probes": [*PROBES, closed], "rollback_timeout": 4, "resources": [FILE, GOOD]})
    wait_until(lambda: converged(fleet, name, 2), timeout=60, what="generation 2 kept")
    assert link(fleet, name, "br-tun") is not None
    time.sleep(6)  # beyond the rollback timeout: still kept
    assert converged(fleet, name, 2) and link(fleet, name, "br-tun") is not None
    assert events(fleet, name, "rolled_back") == [] and status(fleet, name).get("rolled_back") is None
    assert not (state_dir(fleet, name) / "checkpoint.json").exists()
    log = (fleet.directory / f"{name}.log").read_text()
    assert "generation 2 kept: broker, gw answered after the change" in log
    assert "probe closed does not answer before the change to generation 2: not counted" in log


def test_an_agent_killed_during_a_change_rolls_it_back_at_its_next_start(fleet):
    name = node_with_uplink(fleet, "kill", {"probes": PROBES, "resources": [FILE]})
    checkpoint = state_dir(fleet, name) / "checkpoint.json"
    push(fleet, name, {"probes": PROBES, "rollback_timeout": 600, "resources": [FILE, CUT]})
    wait_until(lambda: checkpoint.exists() and link(fleet, name, "br-ex") is not None, timeout=60,
               what="the change in flight")
    assert fleet.stop(name, signal.SIGKILL) == -signal.SIGKILL
    assert json.loads(checkpoint.read_text())["generation"] == 2  # left whole by the kill
    assert link(fleet, name, NIC).get("master") == "br-ex"  # the node is cut off, with no agent
    fleet.start(name, inside=True)
    rolled = wait_until(lambda: events(fleet, name, "rolled_back"), timeout=90, what="the rollback reported")
    assert rolled[0]["Detail"].startswith("generation 2 rolled back: probe interrupted failed: the agent stopped "
                                          "during the change")
    assert link(fleet, name, "br-ex") is None and not checkpoint.exists()
    log = (fleet.directory / f"{name}.log").read_text().split("was interrupted: rolling back br-ex")
    assert len(log) == 2 and "enforcing cached document, generation 1" in log[1]  # before anything else
    wait_until(lambda: (status(fleet, name).get("rolled_back") or {}).get("generation") == 2, timeout=30)
    assert status(fleet, name)["generation"] == 1
    time.sleep(3)
    assert link(fleet, name, "br-ex") is None  # and not applied again
