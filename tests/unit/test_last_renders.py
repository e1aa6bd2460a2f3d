"""A converge renders again only the nodes whose inputs moved (nodeagent.fleet.renders): the documents are
the same as if every node rendered each time; an edited template, a new secret, a node's new facts or
variables render again."""

from __future__ import annotations

import os
import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from nodeagent.cli import config
from nodeagent.fleet.coordinator import Coordinator
from nodeagent.fleet.inventory import Node, Secret
from nodeagent.fleet.renders import LastOptionErrors, LastRenders
from nodeagent.wire import box, trust

ROLE = """resources:
  - id: tunnel
    driver: ini
    path: /etc/neutron/tunnel.ini
    settings:
      ovs:
        local_ip: "{{ ipv4_of('eth0') }}"
        tag: "{{ tag }}"
        password: "{{ secret('PASS') }}"
    sensitive: [ovs.password]
"""


def test_a_render_is_made_again_only_when_what_it_renders_from_moved():
    made = []

    def make(value):
        made.append(value)
        return {"resources": [{"id": "r", "value": value}]}

    last = LastRenders()
    inputs = (["tunnel"], {"tag": "red"}, {"interfaces": {"eth0": {}}})
    first = last.render("n1", inputs, {"PASS": "a"}, ("v1",), lambda: make(1))
    first["resources"][0]["value"] = "changed by a caller"  # its own copy: the next use does not see it
    assert last.render("n1", (["tunnel"], {"tag": "red"}, {"interfaces": {"eth0": {}}}), {"PASS": "a"}, ("v1",),
                       lambda: make(2)) == {"resources": [{"id": "r", "value": 1}]}
    inputs[1]["tag"] = "blue"  # the inputs kept are a copy: changing the caller's does not change them
    for moved in [(inputs, {"PASS": "a"}, ("v1",)), ((["tunnel"], {"tag": "red"}, {}), {"PASS": "a"}, ("v1",)),
                  ((["tunnel"], {"tag": "red"}, {"interfaces": {"eth0": {}}}), {"PASS": "b"}, ("v1",)),
                  ((["tunnel"], {"tag": "red"}, {"interfaces": {"eth0": {}}}), {"PASS": "b"}, ("v2",))]:
        last.render("n1", *moved, lambda: make(len(made) + 1))
    assert made == [1, 2, 3, 4, 5]
    assert last.render("n2", *moved, lambda: make(6)) == {"resources": [{"id": "r", "value": 6}]}  # per node
    last.keep_only(["n2"])
    assert last.render("n1", *moved, lambda: make(7)) == {"resources": [{"id": "r", "value": 7}]}


def test_an_error_is_not_kept():
    last = LastRenders()

    def fail():
        raise ValueError("no")

    with pytest.raises(ValueError):
        last.render("n1", ([], {}, {}), {}, (), fail)
    assert last.render("n1", ([], {}, {}), {}, (), lambda: {"ok": 1}) == {"ok": 1}


def test_option_errors_are_kept_by_release_and_resources_for_the_last_two_documents():
    linted = []

    def lint(errors):
        linted.append(errors)
        return errors

    last = LastOptionErrors()
    first, second = [{"id": "a", "settings": {"DEFAULT": {"x": 1}}}], [{"id": "a", "settings": {"DEFAULT": {"x": 2}}}]
    assert last.errors("n1", "2025.1", first, lambda: lint(["one"])) == ["one"]
    assert last.errors("n1", "2025.1", second, lambda: lint(["two"])) == ["two"]
    assert last.errors("n1", "2025.1", [{"id": "a", "settings": {"DEFAULT": {"x": 1}}}], lambda: lint(["x"])) == ["one"]
    assert last.errors("n1", "2024.2", first, lambda: lint(["older"])) == ["older"]  # another release
    assert last.errors("n1", "2025.1", [{"id": "a", "settings": {"DEFAULT": {"x": "1"}}}],
                       lambda: lint(["text"])) == ["text"]  # "1" is not 1
    assert last.errors("n2", "2025.1", first, lambda: lint(["n2"])) == ["n2"]  # per node
    assert last.errors("n1", "2025.1", second, lambda: lint(["again"])) == ["again"]  # two kept: forgotten
    assert linted == [["one"], ["two"], ["older"], ["text"], ["n2"], ["again"]]


@pytest.fixture
def coordinator(tmp_path):
    """Two pending nodes (nothing is pushed) with facts and the role, rendered once (generation 1)."""
    (tmp_path / "roles").mkdir()
    (tmp_path / "roles/tunnel.yaml.j2").write_text(ROLE)
    (tmp_path / "c.conf").write_text(f"[coordinator]\nstate_dir = {tmp_path / 'state'}\n"
                                     f"roles_dir = {tmp_path / 'roles'}\n")
    coordinator = Coordinator(config.make_conf([str(tmp_path / "c.conf")]))
    coordinator.set_up()
    for number in (1, 2):
        coordinator.reports.report_state(trust.seal({
            "node": f"n{number}", "seq": 1, "status": {"generation": 0}, "events": [],
            "box_key": box.public_text(box.X25519PrivateKey.generate().public_key())}, Ed25519PrivateKey.generate()))
    coordinator.settings.set_secret("PASS", "first-secret")  # no node has roles yet: nothing renders
    coordinator.settings.set_variable("tag", "red")
    with coordinator.inventory.session() as session:
        for node in session.query(Node):
            node.facts = {"interfaces": {"eth0": {"ipv4": [f"198.18.0.{node.name[1:]}/24"]}}}
            node.roles = ["tunnel"]
    assert coordinator.desired.converge() == [("n1", 1), ("n2", 1)]
    yield coordinator
    coordinator.close()


def ovs(coordinator: Coordinator) -> dict:
    return {node.name: (node.desired_generation,
                        coordinator.inventory.document(node.name).body["resources"][0]["settings"]["ovs"])
            for node in coordinator.inventory.nodes()}


def test_each_input_renders_again(coordinator, tmp_path):
    assert ovs(coordinator) == {"n1": (1, {"local_ip": "198.18.0.1", "tag": "red", "password": "first-secret"}),
                                "n2": (1, {"local_ip": "198.18.0.2", "tag": "red", "password": "first-secret"})}
    assert coordinator.desired.converge() == []  # nothing moved: nothing stored
    coordinator.settings.set_secret("PASS", "second-secret")
    coordinator.settings.set_variable("tag", "blue", host="n2")
    with coordinator.inventory.session() as session:
        session.get(Node, "n1").facts = {"interfaces": {"eth0": {"ipv4": ["198.18.0.11/24"]}}}
    assert coordinator.desired.converge() == [("n1", 3)]
    assert ovs(coordinator) == {"n1": (3, {"local_ip": "198.18.0.11", "tag": "red", "password": "second-secret"}),
                                "n2": (3, {"local_ip": "198.18.0.2", "tag": "blue", "password": "second-secret"})}


def test_an_edited_template_renders_again(coordinator, tmp_path):
    template = tmp_path / "roles/tunnel.yaml.j2"
    template.write_text(ROLE.replace('tag: "{{ tag }}"', 'tag: "{{ tag }}-edited"'))
    later = time.time() + 5  # a modification time of its own, whatever the file system's resolution
    os.utime(template, (later, later))
    assert coordinator.desired.converge() == [("n1", 2), ("n2", 2)]
    assert {host: settings["tag"] for host, (_, settings) in ovs(coordinator).items()} == {"n1": "red-edited",
                                                                                           "n2": "red-edited"}


def test_a_secret_removed_is_an_error_again(coordinator):
    with coordinator.inventory.session() as session:
        session.delete(session.get(Secret, "PASS"))
    from nodeagent.fleet.roles import RoleError
    with pytest.raises(RoleError, match="needs secret 'PASS'"):
        coordinator.settings.set_variable("tag", "blue")


def test_an_edited_include_behind_a_link_renders_again(coordinator, tmp_path):
    shared = tmp_path / "shared"  # templates shared between roles directories, linked in
    shared.mkdir()
    (shared / "tag.j2").write_text("{{ tag }}")
    (tmp_path / "roles/common").symlink_to(shared)
    template = tmp_path / "roles/tunnel.yaml.j2"
    template.write_text(ROLE.replace('tag: "{{ tag }}"', 'tag: "{% include \'common/tag.j2\' %}"'))
    assert coordinator.desired.converge() == []  # the same document: nothing stored
    (shared / "tag.j2").write_text("{{ tag }}-shared")
    later = time.time() + 5
    os.utime(shared / "tag.j2", (later, later))
    assert coordinator.desired.converge() == [("n1", 2), ("n2", 2)]
    assert {host: settings["tag"] for host, (_, settings) in ovs(coordinator).items()} == {"n1": "red-shared",
                                                                                           "n2": "red-shared"}
