"""How a rollout cuts its nodes into batches, which policies it refuses, and how it judges a node's report."""

from __future__ import annotations

import pytest

from nodeagent.fleet.errors import InvalidInput
from nodeagent.fleet.inventory import Node
from nodeagent.fleet.rollouts import Policy, _health

HOSTS = [f"compute{n}" for n in range(1, 11)]


def test_a_canary_goes_alone_then_batches_of_max_unavailable():
    assert Policy("3", canary=1).batches(HOSTS) == [HOSTS[:1], HOSTS[1:4], HOSTS[4:7], HOSTS[7:10]]


def test_a_percentage_is_of_the_rollouts_nodes_and_never_less_than_one():
    assert [len(b) for b in Policy("25%").batches(HOSTS)] == [2, 2, 2, 2, 2]
    assert [len(b) for b in Policy("1%").batches(HOSTS[:3])] == [1, 1, 1]
    assert Policy("100%").batches(HOSTS) == [HOSTS]


def test_a_canary_is_never_larger_than_what_may_be_unavailable():
    assert [len(b) for b in Policy("2", canary=5).batches(HOSTS)] == [2, 2, 2, 2, 2]


@pytest.mark.parametrize("policy, field", [
    (dict(max_unavailable="0"), "--max-unavailable"), (dict(max_unavailable="101%"), "--max-unavailable"),
    (dict(max_unavailable="two"), "--max-unavailable"), (dict(max_unavailable="-1"), "--max-unavailable"),
    (dict(canary=-1), "--canary"), (dict(soak=-5.0), "--soak"), (dict(soak=float("nan")), "--soak")])
def test_a_bad_policy_is_refused_naming_the_option(policy, field):
    with pytest.raises(InvalidInput, match=field):
        Policy(**policy)


def node(**status) -> Node:
    return Node(name="compute1", alive=True, last_heartbeat=1.0, desired_generation=4, observed_generation=4,
                status={"reconciled_generation": 4, **status})


def test_a_node_is_healthy_once_it_applied_the_generation_with_nothing_failed():
    assert _health(node(), None) == (None, True, "did not report generation 4 applied")
    waiting = node(reconciled_generation=3)
    assert _health(waiting, None)[:2] == (None, False)


def test_a_rollback_of_the_generation_fails_the_node_naming_the_probe():
    problem, healthy, _ = _health(node(rolled_back={"generation": 4, "probe": "broker", "detail": "no answer"}),
                                  None)
    assert problem == "rolled back generation 4: probe broker failed: no answer" and not healthy
    older = node(rolled_back={"generation": 3, "probe": "gw", "detail": ""})  # an earlier change's: not this one
    assert _health(older, None)[:2] == (None, True)


def test_failed_resources_down_nodes_and_dead_neutron_agents():
    assert _health(node(failed=["tunnel"]), None)[0] == "generation 4 failed on tunnel"
    down = node()
    down.alive = False
    assert _health(down, None)[0] == "down (no heartbeat)"
    assert _health(node(), ["neutron-openvswitch-agent"]) == (
        None, False, "Neutron did not list neutron-openvswitch-agent alive")


def test_a_change_of_probes_or_rollback_timeout_alone_is_a_new_generation():
    from nodeagent.fleet.desired import _differs

    body = {"mode": "enforce", "resources": [{"id": "a", "driver": "file"}]}
    stored = {**body, "node": "n", "generation": 3}
    assert not _differs(stored, body)
    assert _differs(stored, {**body, "probes": [{"id": "gw", "ping": "198.18.0.1"}]})
    assert _differs(stored, {**body, "rollback_timeout": 30.0})


def test_nodes_not_reached_stay_gated_after_abort_until_a_later_rollout_takes_them(tmp_path):
    import time

    from nodeagent.fleet import rollouts
    from nodeagent.fleet.inventory import Rollout, RolloutNode
    from tests.conftest import set_up_coordinator

    coordinator = set_up_coordinator(tmp_path)
    now = time.time()
    with coordinator.inventory.session() as session:
        session.add(Rollout(id=1, state="running", selection="role compute", change="", canary=0,
                            max_unavailable="1", soak=0.0, batch=1, created_at=now, updated_at=now))
        session.flush()
        session.add(RolloutNode(rollout=1, node="compute1", batch=1, state="done", since=now))
        session.add(RolloutNode(rollout=1, node="compute2", batch=2, state="waiting", since=now))
    with coordinator.inventory.session() as session:
        assert rollouts.gated(session) == {"compute2"}
    coordinator.rollouts.abort(1)
    with coordinator.inventory.session() as session:
        assert rollouts.gated(session) == {"compute2"}  # abort pushes nothing more
    with pytest.raises(InvalidInput, match="rollout 1 is aborted"):
        coordinator.rollouts.resume(1)
    assert coordinator.rollouts.of_node("compute2") == "rollout 1 (aborted): waiting, batch 2"
