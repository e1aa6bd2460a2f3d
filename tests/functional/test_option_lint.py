"""Wrong OpenStack options stopped where they enter: local plan/apply, `nodeagent lint`, and the coordinator's push."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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


MANY_ERRORS = {"node": "n1", "openstack_release": "2025.2", "resources": [
    {"id": "neutron-conf", "driver": "ini", "path": "/etc/neutron/neutron.conf",
     "settings": {"DEFAULT": {"core_plugn": "ml2", "auth_uri": "x", "use_namespaces": True, "service_plugin": "router",
                              "rpc_backend": "rabbit", "nova_admin_username": "x", "verbose": True},
                  "vendor_ml2": {"some_key": 1}}}]}


def test_a_refused_apply_prints_every_error_on_its_own_line_as_lint_does(root, tmp_path):
    state = write(tmp_path / "many.yaml", MANY_ERRORS)
    listed = json.loads(run_cli("lint", state, "-f", "json").stdout)
    errors = [f"error: resource '{r['Resource']}' {r['File']} [{r['Section']}] {r['Key']}: {r['Message']}"
              for r in listed if r["Severity"] == "error"]
    assert len(errors) == 8 and sum(map(len, errors)) > 1000
    for command in ("plan", "apply"):
        done = run_cli(command, state, "--root", str(root))
        assert done.returncode == 1
        lines = done.stderr.splitlines()
        assert lines[0] == "8 option error(s) for OpenStack 2025.2, nothing was changed:"
        assert [line.strip() for line in lines[1:9]] == errors
        assert "\\n" not in done.stderr and "characters)" not in done.stderr
        assert list(root.iterdir()) == []


ACME_OPTS = '''
from oslo_config import cfg


def list_opts():
    return [("ml2_acme", [cfg.StrOpt("controller_url"), cfg.IntOpt("timeout", min=1, deprecated_name="wait"),
                          cfg.StrOpt("password", secret=True)])]
'''
ACME_ENTRY_POINTS = """[oslo.config.opts]
networking_acme = networking_acme.opts:list_opts

[neutron.ml2.mechanism_drivers]
acme = networking_acme.driver:AcmeMechanismDriver
"""


def acme_installed(site) -> dict[str, str]:
    """A vendor's ML2 plugin installed in ``site`` (a package and its dist-info, as pip leaves them); the
    environment that puts it on a command's path."""
    (site / "networking_acme").mkdir(parents=True)
    (site / "networking_acme/__init__.py").write_text("")
    (site / "networking_acme/opts.py").write_text(ACME_OPTS)
    info = site / "networking_acme-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: networking-acme\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(ACME_ENTRY_POINTS)
    return {**os.environ, "PYTHONPATH": str(site)}


def test_an_installed_plugins_options_are_learned_from_its_entry_points(root, tmp_path):
    document = {"node": "n1", "openstack_release": "2025.2", "resources": [
        {"id": "ml2", "driver": "ini", "path": "/etc/neutron/plugins/ml2/ml2_conf.ini",
         "settings": {"ml2": {"mechanism_drivers": "openvswitch,acme"},
                      "ml2_acme": {"controller_url": "https://acme.example", "password": "acme-s3cret"}},
         "sensitive": ["ml2_acme.password"]}]}
    state = write(tmp_path / "acme.yaml", document)
    nodeagent = str(Path(sys.executable).parent / "nodeagent")
    without = run_cli("lint", state, "-f", "json")
    assert without.returncode == 1 and {(r["Section"], r["Key"]) for r in json.loads(without.stdout)} == {
        ("ml2", "mechanism_drivers"), ("ml2_acme", "controller_url"), ("ml2_acme", "password")}
    env = acme_installed(tmp_path / "site")
    learned = subprocess.run([nodeagent, "lint", state, "-f", "json"], capture_output=True, text=True, env=env)
    assert learned.returncode == 0 and json.loads(learned.stdout) == [], learned.stdout + learned.stderr
    applied = subprocess.run([nodeagent, "apply", state, "--root", str(root)], capture_output=True, text=True,
                             env=env)
    assert applied.returncode == 0, applied.stderr
    assert "controller_url = https://acme.example" in (root / "etc/neutron/plugins/ml2/ml2_conf.ini").read_text()
    # The plugin's own types, bounds and deprecated names hold; its secrets stay hidden.
    document["resources"][0]["settings"]["ml2_acme"] |= {"wait": "0", "bogus": "1"}
    checked = subprocess.run([nodeagent, "lint", write(tmp_path / "acme2.yaml", document), "-f", "json"],
                             capture_output=True, text=True, env=env)
    found = {(r["Severity"], r["Key"]): r["Message"] for r in json.loads(checked.stdout)}
    assert set(found) == {("warning", "wait"), ("error", "wait"), ("error", "bogus")}, found
    assert "write [ml2_acme] timeout" in found[("warning", "wait")]
    assert "out of range: must be >= 1" in found[("error", "wait")]
    assert "acme-s3cret" not in checked.stdout + checked.stderr + applied.stdout + applied.stderr
