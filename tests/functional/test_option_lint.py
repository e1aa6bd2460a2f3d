"""Wrong OpenStack options stopped where they enter: local plan/apply, `nodeagent lint`, and the coordinator's push."""

from __future__ import annotations

import json

import yaml

from nodeagent.testing.lab import Fleet
from tests.conftest import DATA, EXAMPLES, run_cli
from nodeagent.testing.waiting import wait_until

DEAD = {"node": "n1", "generation": 1, "openstack_release": "2025.2", "resources": [
    {"id": "metadata-agent-ini", "driver": "ini", "path": "/etc/neutron/metadata_agent.ini",
     "settings": {"DEFAULT": {"nova_metadata_ip": "controller", "metadata_proxy_shared_secret": "meta-s3cret"}},
     "sensitive": ["DEFAULT.metadata_proxy_shared_secret"]},
    {"id": "marker", "driver": "file", "path": "/etc/neutron/marker", "content": "x\n"}]}
WARNED = {"node": "n1", "generation": 1, "resources": [
    {"id": "neutron-conf", "driver": "ini", "path": "/etc/neutron/neutron.conf",
     "settings": {"keystone_authtoken": {"auth_uri": "http://controller:5000"}}}]}


def write(path, document) -> str:
    path.write_text(yaml.safe_dump(document))
    return str(path)


def test_lint_lists_every_finding_as_json_and_fails_on_errors(tmp_path):
    done = run_cli("lint", str(DATA / "guide-settings.yaml"), "--release", "2025.2", "-f", "json")
    assert done.returncode == 1
    rows = json.loads(done.stdout)
    assert {"Severity", "Resource", "File", "Section", "Key", "Message"} == set(rows[0])
    metadata = next(r for r in rows if r["Key"] == "nova_metadata_ip" and r["Resource"].startswith("two-node"))
    assert metadata["File"] == "metadata_agent.ini" and "nova_metadata_host" in metadata["Message"]
    assert "METADATA_SECRET" not in done.stdout + done.stderr
    clean = run_cli("lint", str(EXAMPLES / "network-node.yaml"))
    assert clean.returncode == 0 and "0 errors" in clean.stderr


def test_apply_and_plan_refuse_a_dead_key_and_touch_nothing(root, tmp_path):
    state = write(tmp_path / "dead.yaml", DEAD)
    for command in ("plan", "apply"):
        done = run_cli(command, state, "--root", str(root))
        assert done.returncode == 1, done.stderr
        assert "resource 'metadata-agent-ini' metadata_agent.ini [DEFAULT] nova_metadata_ip" in done.stderr
        assert "use [DEFAULT] nova_metadata_host" in done.stderr and "meta-s3cret" not in done.stderr
        assert list(root.iterdir()) == []  # not even the unrelated file resource
    # The same document for a release given on the command line: still gone there.
    assert run_cli("apply", state, "--root", str(root), "--release", "2024.2").returncode == 1


def test_apply_shows_warnings_and_goes_on(root, tmp_path):
    done = run_cli("apply", write(tmp_path / "warned.yaml", WARNED), "--root", str(root))
    assert done.returncode == 0, done.stderr
    assert "warning: resource 'neutron-conf' neutron.conf [keystone_authtoken] auth_uri" in done.stderr
    assert "auth_uri = http://controller:5000" in (root / "etc/neutron/neutron.conf").read_text()


BASE_ROLE = """resources:
  - id: l3-agent-ini
    driver: ini
    path: /etc/neutron/l3_agent.ini
    settings:
      DEFAULT: {interface_driver: "{{ mechanism }}", ha_conntrackd_enabled: false}
"""
LEGACY_ROLE = """resources:
  - id: legacy-metadata
    driver: ini
    path: /etc/neutron/metadata_agent.ini
    settings:
      DEFAULT: {nova_metadata_ip: "{{ controller_host }}"}
"""


def test_a_role_change_adding_a_dead_key_is_blocked_before_the_push(tmp_path):
    roles = tmp_path / "roles"
    roles.mkdir()
    (roles / "base.yaml.j2").write_text(BASE_ROLE)
    (roles / "legacy.yaml.j2").write_text(LEGACY_ROLE)
    fleet = Fleet(tmp_path / "fleet", report_interval=1, auto_accept=True, coordinator_options={"roles_dir": roles})
    try:
        fleet.add_node("n1", ["eth2"])
        fleet.start("coordinator")
        fleet.start("n1")
        wait_until(lambda: "n1" in fleet.ctl("node", "list", "-f", "value").stdout, timeout=60)
        fleet.ctl("var", "set", "openstack_release", "2025.2")
        assert "n1: generation 1 pushed" in fleet.ctl("node", "assign", "n1", "base").stdout
        l3 = fleet.directory / "n1/root/etc/neutron/l3_agent.ini"
        wait_until(l3.exists, timeout=60)

        done = fleet.ctl("node", "assign", "n1", "legacy", check=False)
        assert done.returncode == 1
        assert "node n1 resource 'legacy-metadata' metadata_agent.ini [DEFAULT] nova_metadata_ip" in done.stderr
        assert "nova_metadata_host" in done.stderr and "nothing was pushed" in done.stderr
        blocked = json.loads(fleet.ctl("events", "--type", "push.blocked", "-f", "json").stdout)
        assert any("nova_metadata_ip" in e["Detail"] for e in blocked)
        shown = json.loads(fleet.ctl("node", "show", "n1", "-f", "json").stdout)
        assert shown["roles"] == ["base"] and shown["desired_generation"] == 1
        assert not (fleet.directory / "n1/root/etc/neutron/metadata_agent.ini").exists()

        # The operator's view: clean for the fleet's release, an error for an older one.
        assert json.loads(fleet.ctl("lint", "-f", "json").stdout) == []
        older = fleet.ctl("lint", "--node", "n1", "--release", "2024.2", "-f", "json", check=False)
        assert older.returncode == 1
        [row] = json.loads(older.stdout)
        assert (row["Node"], row["Key"]) == ("n1", "ha_conntrackd_enabled") and "only from 2025.1 on" in row["Message"]
        assert json.loads(fleet.ctl("lint", "--role", "legacy", "-f", "json").stdout) == []
    finally:
        fleet.close()
