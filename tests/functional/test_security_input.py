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
