"""Drift end to end: a running agent sees each kind of out-of-band change, fixes it (or leaves it in
monitor mode), and the coordinator, its drift list, the metrics and a webhook receiver all hear of it.

The tests share one fleet (starting it takes a while); each makes the drift it looks for and counts
records, alerts and generations from what it finds at its start, so any test runs alone and in any order.
Only test_something_that_keeps_fighting_the_agent wants a resource contested: the limit is above the
corrections the other tests can make to one resource within the window (two kinds and monitor mode's
re-enforcement touch "provider")."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest
import yaml

from nodeagent.testing.webhook import Webhook
from nodeagent.testing.lab import Fleet
from nodeagent.testing.labcloud import free_port
from tests.drift_kinds import DOCUMENT, KINDS, edit, root
from nodeagent.testing.waiting import wait_until

# The first test to run also starts the shared fleet (a minute or two on a loaded machine).
pytestmark = pytest.mark.timeout(600)

CONTESTED_COUNT = 5  # corrections within the window that make a resource contested
BACKOFF = 15  # s: long enough for the test to see the agent leave the contested file alone

@pytest.fixture(scope="module")
def webhook():
    with Webhook() as hook:
        yield hook


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, webhook):
    dead = free_port()  # nothing listens there: alerts to it end as dead letters
    ports = {"agent": free_port(), "coordinator": free_port()}
    fleet = Fleet(tmp_path_factory.mktemp("drift"), report_interval=1, auto_accept=True,
                  coordinator_options={"webhooks": f"{webhook.url},http://127.0.0.1:{dead}/down",
                                       "webhook_retries": 1, "webhook_timeout": 1,
                                       "metrics_address": f"127.0.0.1:{ports['coordinator']}"},
                  agent_options={"metrics_address": f"127.0.0.1:{ports['agent']}", "drift_contested_count": CONTESTED_COUNT,
                                 "drift_contested_window": 30, "drift_backoff": BACKOFF})
    fleet.ports = ports
    try:
        node = fleet.add_node("drift1", ["eth1", "eth2"])
        node.exec("ethtool", "-K", "eth2", "gro", "on")
        fleet.start("coordinator")
        fleet.start("drift1")
        (fleet.directory / "state.yaml").write_text(yaml.safe_dump(DOCUMENT))
        wait_until(lambda: "drift1" in fleet.ctl("node", "list", "-f", "value", "-c", "Host").stdout, timeout=60)
        fleet.ctl("node", "set-state", "drift1", str(fleet.directory / "state.yaml"))
        wait_until(lambda: "converged 1/1" in " ".join(
            fleet.ctl("node", "list", "-f", "value", "-c", "Generation", "-c", "State").stdout.split()), timeout=60)
        yield fleet
    finally:
        fleet.close()


def drift(fleet, **filters) -> list[dict]:
    args = ["drift", "list", "-f", "json", "--node", "drift1"] + (["--open"] if filters.pop("open", False) else [])
    return json.loads(fleet.ctl(*args).stdout)


def generation(fleet) -> int:
    """The generation the coordinator holds for drift1."""
    return int(fleet.ctl("node", "list", "-f", "value", "-c", "Generation").stdout.split("/")[1])


def scrape(port: int) -> str:
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()


@pytest.mark.parametrize("kind", list(KINDS))
def test_each_kind_of_drift_is_fixed_and_reported_everywhere(fleet, webhook, kind):
    resource, change, fixed = KINDS[kind]
    node = fleet.nodes["drift1"]
    before = len([d for d in drift(fleet) if d["Resource"] == resource])
    hooks_before = len([a for a in webhook.received if a.get("resource") == resource])
    change(fleet, node)
    wait_until(lambda: fixed(fleet, node), timeout=10)
    records = wait_until(lambda: [d for d in drift(fleet) if d["Resource"] == resource][before:] or None)
    assert records[0]["State"] == "corrected" and records[0]["Open"] == "closed" and records[0]["Changes"]
    assert "s3cret" not in json.dumps(records)
    wait_until(lambda: len([a for a in webhook.received if a.get("resource") == resource]) > hooks_before)
    alert = [a for a in webhook.received if a.get("resource") == resource][-1]
    assert alert["type"] == "nodeagent.drift.corrected" and alert["node"] == "drift1"
    driver = records[0]["Driver"]
    assert f'nodeagent_drift_events_total{{driver="{driver}",state="corrected"}}' in scrape(fleet.ports["agent"])
    assert f'nodeagent_node_drift_events_total{{driver="{driver}",node="drift1",state="corrected"}}' in \
        scrape(fleet.ports["coordinator"])


def test_monitor_mode_reports_every_kind_and_leaves_it(fleet):
    kinds = {resource for resource, _, _ in KINDS.values()}
    open_before = {d["Resource"] for d in drift(fleet, open=True)}
    monitored = generation(fleet) + 1
    (fleet.directory / "monitor.yaml").write_text(yaml.safe_dump({**DOCUMENT, "mode": "monitor"}))
    fleet.ctl("node", "set-state", "drift1", str(fleet.directory / "monitor.yaml"))
    wait_until(lambda: f"{monitored}/{monitored}" in fleet.ctl("node", "list", "-f", "value", "-c", "Generation").stdout)
    node = fleet.nodes["drift1"]
    for kind, (resource, change, fixed) in KINDS.items():
        before = len([d for d in drift(fleet) if d["Resource"] == resource])
        change(fleet, node)
        records = wait_until(lambda: [d for d in drift(fleet) if d["Resource"] == resource][before:] or None)
        assert records[0]["State"] == "left", kind
        assert not fixed(fleet, node), f"{kind}: monitor mode must leave the change"
    open_resources = {d["Resource"] for d in drift(fleet, open=True)}
    assert kinds <= open_resources and open_resources - kinds <= open_before
    assert '"Drifted": 7' in fleet.ctl("node", "list", "-f", "json").stdout
    assert json.loads(fleet.ctl("events", "-f", "json", "--node", "drift1", "--type", "drift.left").stdout)
    fleet.ctl("node", "set-state", "drift1", str(fleet.directory / "state.yaml"))  # enforce again: all put back
    wait_until(lambda: all(fixed(fleet, node) for _, _, fixed in KINDS.values()), timeout=30)
    wait_until(lambda: not {d["Resource"] for d in drift(fleet, open=True)} & kinds)


def test_something_that_keeps_fighting_the_agent_is_contested_and_backed_off(fleet, webhook):
    fought = root(fleet) / "etc/neutron/fought.conf"
    contested_before = len([d for d in drift(fleet) if d["Resource"] == "fought" and d["State"] == "contested"])
    for _ in range(CONTESTED_COUNT):
        fought.write_text("theirs\n")
        wait_until(lambda: fought.read_text() == "mine\n", timeout=10)
        time.sleep(0.3)  # apart, so that each write is a drift of its own (not one debounced burst)
    # The agent's own view says at once that it backed off (the coordinator's hears of it a report later).
    status = fleet.directory / "drift1/state/status.json"
    wait_until(lambda: any(r["id"] == "fought" and r["backed_off"]
                           for r in json.loads(status.read_text())["resources"]), timeout=5, step=0.05)
    fought.write_text("theirs\n")
    # Proof that the agent looked at that write: a drift made after it, in the same watched directory (so its
    # event comes later), is corrected. The write to the backed-off file was looked at and left.
    dnsmasq = KINDS["managed file rewritten"]
    dnsmasq[1](fleet, None)
    wait_until(lambda: dnsmasq[2](fleet, None), timeout=10)
    assert fought.read_text() == "theirs\n"  # backed off: not rewritten
    wait_until(lambda: fought.read_text() == "mine\n", timeout=2 * BACKOFF + 30)  # after the backoff: enforced
    assert wait_until(lambda: [d for d in drift(fleet) if d["Resource"] == "fought" and d["State"] == "contested"]
                      [contested_before:])
    assert any(a.get("type") == "nodeagent.drift.contested" for a in webhook.received)


def test_a_webhook_that_stays_down_leaves_a_dead_letter(fleet):
    def dead_letters():
        return json.loads(fleet.ctl("events", "-f", "json", "--type", "webhook.dead_letter").stdout)
    before = len(dead_letters())
    ml2 = root(fleet) / "etc/neutron/plugins/ml2/ml2_conf.ini"  # a drift to alert about, of no other test's
    wait_until(lambda: "type_drivers = gre" in ml2.read_text(), timeout=10)
    edit(ml2, "type_drivers = gre", "type_drivers = vlan")
    wait_until(lambda: "type_drivers = gre" in ml2.read_text(), timeout=10)
    events = wait_until(lambda: dead_letters()[before:], timeout=30)
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


def test_a_file_is_put_back_once_whole_never_while_half_written(fleet):
    ml2 = root(fleet) / "etc/neutron/plugins/ml2/ml2_conf.ini"
    wait_until(lambda: "type_drivers = gre" in ml2.read_text(), timeout=10)
    with open(ml2, "w") as writer:  # a tool writing the file in place, slowly
        writer.write("[ml2]\ntype_dri")
        writer.flush()
        time.sleep(2)  # twenty debounces: the agent heard the writes, and leaves the file to its writer
        assert ml2.read_text() == "[ml2]\ntype_dri"
        writer.write("vers = vlan\n")
    wait_until(lambda: "type_drivers = gre" in ml2.read_text(), timeout=10)  # closed, whole: put back
