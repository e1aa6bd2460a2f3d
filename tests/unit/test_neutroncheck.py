"""The guides' verification logic: which agents a node's roles run, and how Neutron's list compares."""

from __future__ import annotations

from nodeagent.fleet.neutroncheck import AgentWatch, compare, expected_agents


def test_expected_agents_follow_the_roles_and_the_options():
    assert expected_agents(["controller"], {}) == []
    assert expected_agents(["compute"], {"mechanism": "linuxbridge"}) == ["neutron-linuxbridge-agent"]
    assert expected_agents(["network"], {}) == ["neutron-openvswitch-agent", "neutron-dhcp-agent",
                                                "neutron-metadata-agent", "neutron-l3-agent"]
    # option 1 runs no L3 agent; a two-node controller runs the server and the agents
    assert expected_agents(["controller", "network"], {"network_option": "provider"}) == [
        "neutron-openvswitch-agent", "neutron-dhcp-agent", "neutron-metadata-agent"]


def test_compare_names_alive_dead_and_missing_with_a_hint():
    listed = [{"host": "network1", "binary": "neutron-dhcp-agent", "alive": True},
              {"host": "network1", "binary": "neutron-l3-agent", "alive": False},
              {"host": "other", "binary": "neutron-openvswitch-agent", "alive": True}]
    checks = compare({"network1": ["neutron-dhcp-agent", "neutron-l3-agent", "neutron-openvswitch-agent"]}, listed)
    assert [(c.binary, c.state) for c in checks] == [("neutron-dhcp-agent", "alive"), ("neutron-l3-agent", "dead"),
                                                     ("neutron-openvswitch-agent", "missing")]
    assert checks[1].hint.startswith("registered, but stopped reporting")
    assert "does not exist" in checks[2].hint and checks[2].hint.startswith("never registered")


def test_an_agent_is_an_alert_once_when_overdue_and_recovers_once():
    watch = AgentWatch(timeout=60)
    dead = compare({"n": ["neutron-l3-agent"]}, [])
    alive = compare({"n": ["neutron-l3-agent"]}, [{"host": "n", "binary": "neutron-l3-agent", "alive": True}])
    assert watch.update(dead, now=0) == ([], [])
    assert watch.update(dead, now=59) == ([], [])
    assert watch.update(dead, now=61)[0] == dead
    assert watch.update(dead, now=200) == ([], [])  # said once
    assert watch.update(alive, now=210) == ([], alive)
    assert watch.update(alive, now=220) == ([], [])
    assert watch.update(dead, now=230) == ([], [])  # a new absence starts a new wait


def test_an_agent_no_longer_expected_is_forgotten():
    watch = AgentWatch(timeout=10)
    watch.update(compare({"n": ["neutron-l3-agent"]}, []), now=0)
    watch.update(compare({"n": []}, []), now=5)
    assert watch.update(compare({"n": ["neutron-l3-agent"]}, []), now=12) == ([], [])
