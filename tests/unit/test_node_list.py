"""``nodeagentctl node list`` filters and sorts the fleet as operators of a large one need: by role, state,
drift and liveness, on a real inventory made by keygen."""

from __future__ import annotations

import json
import time

import pytest

from nodeagent.cli import config
from nodeagent.fleet.coordinator import Coordinator
from nodeagent.fleet.inventory import DriftRecord, Node
from tests.conftest import run_cli


@pytest.fixture
def conf_file(tmp_path):
    conf_file = tmp_path / "coordinator.conf"
    conf_file.write_text(f"[coordinator]\nstate_dir = {tmp_path / 'state'}\n")
    coordinator = Coordinator(config.make_conf([str(conf_file)]))
    coordinator.set_up()
    now = time.time()
    with coordinator.inventory.session() as session:
        def node(name, roles, alive, heartbeat, enrolment="accepted", held=None, desired=1, observed=1):
            session.add(Node(name=name, roles=roles, variables={}, facts={}, health={}, status={}, alive=alive,
                             last_heartbeat=heartbeat, enrolment=enrolment, held=held, desired_generation=desired,
                             observed_generation=observed))
        node("compute1", ["compute"], True, now - 5)
        node("compute2", ["compute"], False, now - 500, desired=2)
        node("network1", ["network"], True, now - 1, held="interface eth1 of node 'network1' has no IPv4 address")
        node("new1", [], False, None, enrolment="pending", desired=0, observed=0)
        session.flush()
        session.add(DriftRecord(uid="d1", node="compute1", resource="ml2", driver="ini", generation=1,
                                state="left", changes=[], seen_at=now))
    return conf_file


def hosts(conf_file, *args) -> list[str]:
    done = run_cli("--config-file", str(conf_file), "node", "list", *args, "-f", "json", program="nodeagentctl")
    assert done.returncode == 0, done.stderr
    return [row["Host"] for row in json.loads(done.stdout)]


def test_filters_combine_and_name_the_states_operators_ask_about(conf_file):
    assert hosts(conf_file) == ["compute1", "compute2", "network1", "new1"]
    assert hosts(conf_file, "--role", "compute") == ["compute1", "compute2"]
    assert hosts(conf_file, "--state", "held") == ["network1"]
    assert hosts(conf_file, "--state", "converging") == ["compute2"]
    assert hosts(conf_file, "--state", "pending") == ["new1"]
    assert hosts(conf_file, "--drifted") == ["compute1"]
    assert hosts(conf_file, "--down", "--role", "compute") == ["compute2"]
    assert hosts(conf_file, "--up") == ["compute1", "network1"]
    assert hosts(conf_file, "--sort", "heartbeat") == ["new1", "compute2", "compute1", "network1"]


def test_a_held_node_says_why_and_a_bad_filter_is_refused_naming_the_choices(conf_file):
    done = run_cli("--config-file", str(conf_file), "node", "show", "network1", "-f", "json", program="nodeagentctl")
    shown = json.loads(done.stdout)
    assert (shown["state"], shown["held"]) == ("held", "interface eth1 of node 'network1' has no IPv4 address")
    done = run_cli("--config-file", str(conf_file), "node", "list", "--state", "sleepy", program="nodeagentctl")
    assert done.returncode == 2 and "invalid choice: 'sleepy'" in done.stderr and "converged" in done.stderr


def test_a_node_named_in_capitals_on_the_command_line_is_the_node_agents_name_in_lower_case(conf_file):
    done = run_cli("--config-file", str(conf_file), "node", "show", "NETWORK1", "-f", "json", program="nodeagentctl")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["host"] == "network1"
    assert hosts(conf_file, "--role", "compute", "--sort", "host") == ["compute1", "compute2"]
    done = run_cli("--config-file", str(conf_file), "node", "accept", "NEW1", program="nodeagentctl")
    assert done.returncode == 0 and "accepted new1" in done.stdout
