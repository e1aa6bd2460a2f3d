"""Input gaps, through the real command line (issue #23, item 6): duplicate YAML keys were last-wins, ``local:
true`` became the address 0.0.0.1, a tunnel port's bad address was named without its port. Each is refused
with one clear line naming the field (and both lines), nothing applied."""

from __future__ import annotations

import pytest

from tests.conftest import run_cli

DUPLICATE = """\
node: n1
resources:
  - id: conf
    driver: ini
    path: /etc/neutron/neutron.conf
    settings:
      DEFAULT:
        debug: "false"
        core_plugin: ml2
        debug: "true"
"""


def plan(tmp_path, text: str):
    document = tmp_path / "doc.yaml"
    document.write_text(text)
    root = tmp_path / "root"
    root.mkdir(exist_ok=True)
    done = run_cli("plan", str(document), "--root", str(root))
    assert not list(root.rglob("*")), "nothing is touched"
    return done


def test_a_duplicate_yaml_key_is_refused_naming_both_lines(tmp_path):
    done = plan(tmp_path, DUPLICATE)
    assert done.returncode == 1, done.stdout
    assert "duplicate key 'debug' (first on line 8, again on line 10)" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("resource, field", [
    ({"driver": "linux_bridge", "kind": "vxlan", "name": "vx1", "vni": 5, "local": True}, "local"),
    ({"driver": "linux_bridge", "kind": "vxlan", "name": "vx1", "vni": 5, "local": 3325165569}, "local"),
    ({"driver": "ovs_bridge", "name": "br-tun", "ports": [{"name": "gre1", "type": "gre", "remote_ip": 42}]},
     "ports[0].remote_ip"),
], ids=["bool", "integer", "port option"])
def test_an_address_must_be_written_as_one(tmp_path, resource, field):
    import yaml

    done = plan(tmp_path, yaml.safe_dump({"node": "n1", "resources": [{"id": "it", **resource}]}))
    assert done.returncode == 1, done.stdout
    assert f"field '{field}'" in done.stderr and "must be an IPv4 address" in done.stderr, done.stderr


# -- item 7: absent keys that hold secrets --------------------------------------------------------------------
def nova_conf(tmp_path, sensitive: list[str] | None) -> str:
    import yaml

    resource = {"id": "nova-conf", "driver": "ini", "path": "/etc/nova/nova.conf",
                "absent": {"key_manager": ["fixed_key"], "DEFAULT": ["debug"]}}
    if sensitive is not None:
        resource["sensitive"] = sensitive
    document = tmp_path / "nova.yaml"
    document.write_text(yaml.safe_dump({"node": "n1", "openstack_release": "2025.2", "resources": [resource]}))
    return str(document)


def test_lint_warns_about_an_absent_key_the_registry_says_is_secret_unless_marked_sensitive(tmp_path):
    done = run_cli("lint", nova_conf(tmp_path, None), "-f", "value", "-c", "Severity", "-c", "Key", "-c", "Message")
    assert done.returncode == 0, done.stderr  # a warning, not an error
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning fixed_key ") and "sensitive" in lines[0], lines
    for marked in (["key_manager.fixed_key"], ["key_manager"]):
        done = run_cli("lint", nova_conf(tmp_path, marked), "-f", "value")
        assert done.returncode == 0 and not done.stdout.strip(), done.stdout


def test_every_secret_bearing_key_a_role_removes_is_marked_sensitive():
    from nodeagent.fleet.roles import Roles
    from nodeagent.node.redact import looks_secret
    from nodeagent.optionregistry import registry
    from tests.conftest import REPO
    from tests.unit.test_roles import FACTS, NODE_VARS, SECRETS
    from tests.unit.test_roles_lint import VARIANTS, supported

    roles, unmarked = Roles(REPO / "etc" / "roles"), set()
    for series in registry.available()["neutron"]:
        for variables in (v for v in VARIANTS if supported(v, series)):
            for role in roles.names():
                body = roles.render("n1", [role], {**variables, **NODE_VARS, "openstack_release": series},
                                    SECRETS, FACTS)
                for resource in body["resources"]:
                    file = resource.get("path", "").rsplit("/", 1)[-1]
                    release = registry.load(registry.service_of(file) or "neutron", series)
                    for section, keys in (resource.get("absent") or {}).items():
                        for key in keys:
                            option = release and (release.option(file, section, key)
                                                  or release.renamed(file, section, key))
                            marked = {*resource.get("sensitive", ())} & {section, f"{section}.{key}"}
                            if (looks_secret(key) or (option and option.secret)) and not marked:
                                unmarked.add(f"{role}: {resource['id']}: {section}.{key}")
    assert sorted(unmarked) == []
