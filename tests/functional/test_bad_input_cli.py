"""Hostile input through the real command line and the real enforcer: refused early, secrets never shown."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

from nodeagent.kit.context import Context
from nodeagent.drivers.ini import IniDriver
from nodeagent.node.enforcer import Enforcer, Outlet, Pacing
from nodeagent.node.engine import Engine
from nodeagent.document.model import parse_document
from nodeagent.document.registry import DriverRegistry
from tests.conftest import run_cli
from tests.unit.test_bad_input import ALIAS_BOMB

OLD_FILE = ("[DEFAULT]\ntransport_url = rabbit://u:old-rabbit@h\n[database]\nconnection = mysql://n:old-db@h\n"
            "[keystone_authtoken]\npassword = old-ks\n")
SECRETS = ("old-rabbit", "old-db", "old-ks", "new-rabbit", "new-db")


def secret_document(path: Path) -> Path:
    path.write_text(yaml.safe_dump({"node": "n1", "generation": 1, "resources": [{
        "id": "conf", "driver": "ini", "path": "/etc/neutron/neutron.conf",
        "settings": {"DEFAULT": {"transport_url": "rabbit://u:new-rabbit@h"},
                     "database": {"connection": "mysql://n:new-db@h"}},
        "absent": {"keystone_authtoken": ["password"]}}]}))
    return path


def test_the_alias_bomb_is_refused_at_once_by_the_cli(tmp_path):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(ALIAS_BOMB)
    started = time.monotonic()
    done = run_cli("plan", str(bomb), "--root", str(tmp_path))
    assert time.monotonic() - started < 60  # it used to take minutes and 9 GB; a generous bound, not a benchmark
    assert done.returncode == 1
    assert "more than 200000 values once aliases are expanded" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_nodeagentctl_reads_documents_with_the_same_limits(tmp_path):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(ALIAS_BOMB)
    done = run_cli("--config-file", "/dev/null", "node", "set-state", "n1", str(bomb), "--no-push",
                   program="nodeagentctl")
    assert done.returncode == 1
    assert "more than 200000 values once aliases are expanded" in done.stderr


@pytest.mark.parametrize("options, code", [(["-c", "NoSuchColumn"], 1), (["-f", "bogus"], 2)])
def test_output_options_are_checked_before_anything_is_applied(root, tmp_path, options, code):
    document = secret_document(tmp_path / "doc.yaml")
    done = run_cli("apply", str(document), "--root", str(root), *options)
    assert done.returncode == code, done.stderr
    assert not (root / "etc").exists()
    if options[0] == "-c":
        assert "no column named 'NoSuchColumn'" in done.stderr and "nothing was done" in done.stderr


@pytest.mark.parametrize("command", ["plan", "apply"])
@pytest.mark.parametrize("formatter", ["table", "json", "yaml", "value", "csv"])
def test_old_secrets_never_appear_in_plan_or_apply_output(root, tmp_path, command, formatter):
    (root / "etc/neutron").mkdir(parents=True)
    (root / "etc/neutron/neutron.conf").write_text(OLD_FILE)
    done = run_cli(command, str(secret_document(tmp_path / "doc.yaml")), "--root", str(root), "-f", formatter)
    assert done.returncode == (2 if command == "plan" else 0), done.stderr
    assert "keystone_authtoken.password" in done.stdout
    for secret in SECRETS:
        assert secret not in done.stdout + done.stderr


class EditingIni(IniDriver):
    """The real ini driver, with a person editing the file right after the agent's first look, once armed."""

    def __init__(self, edit: Path):
        self.edit, self.looks = edit, None
        self.name = "ini"

    def observe(self, spec, ctx):
        if self.looks is not None:
            self.looks += 1
            if self.looks == 2:
                self.edit.write_text(self.edit.read_text().replace("debug = false", "debug = edited-meanwhile"))
        return super().observe(spec, ctx)


def _enforcer(registry, root: Path, state_dir: Path, events: list):
    return Enforcer(Engine(registry, Context(root=root)),
                    Outlet("n1", state_dir,
                           lambda kind, detail, drift=None: events.append((kind, detail, drift and drift.to_dict())),
                           lambda *_: None), Pacing(debounce=0.05))


def test_an_edit_made_while_the_agent_corrects_the_file_gets_a_drift_record(registry, root, tmp_path):
    target = root / "etc/neutron/neutron.conf"
    editing = EditingIni(target)
    drivers = DriverRegistry([editing, *(registry.get(n) for n in registry.names if n != "ini")])
    document = parse_document({"node": "n1", "generation": 1, "resources": [
        {"id": "conf", "driver": "ini", "path": "/etc/neutron/neutron.conf",
         "settings": {"DEFAULT": {"debug": "true"}}}]}, drivers)
    events: list = []
    enforcer = _enforcer(drivers, root, tmp_path, events)
    enforcer.apply_document(document, "generation 1")
    enforcer.stop_watches()
    target.write_text(target.read_text().replace("debug = true", "debug = false"))  # drift
    editing.looks = 0
    enforcer.reconcile("event", only=["conf"])  # the person edits while this corrects
    enforcer.reconcile("event", only=["conf"])  # the event of that edit
    found = [c["found"] for _, _, drift in events if drift for c in drift["changes"]]
    assert found == ["false", "edited-meanwhile"], events
    assert [drift["state"] for _, _, drift in events if drift] == ["failed", "corrected"]
    assert len(enforcer.guard.seen["conf"]) == 2  # the conflict counts as fighting, like the correction
    assert "debug = true\n" in target.read_text()


def test_status_never_shows_old_secrets(registry, root, tmp_path):
    target = root / "etc/neutron/neutron.conf"
    target.parent.mkdir(parents=True)
    target.write_text(OLD_FILE)
    document = parse_document(yaml.safe_load(secret_document(tmp_path / "doc.yaml").read_text()), registry)
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    events: list = []
    enforcer = _enforcer(registry, root, state_dir, events)
    enforcer.apply_document(document, "generation 1")
    enforcer.stop_watches()
    target.write_text(OLD_FILE)  # someone puts the old file back: drift of every key
    enforcer.reconcile("event", only=["conf"])
    assert any(kind == "drift.corrected" for kind, _, _ in events)
    conf = tmp_path / "agent.conf"
    conf.write_text(f"[DEFAULT]\nstate_dir = {state_dir}\n")
    outputs = [json.dumps(events), (state_dir / "status.json").read_text()]
    for formatter in ("table", "json"):
        done = run_cli("--config-file", str(conf), "status", "-f", formatter)
        assert done.returncode == 0, done.stderr
        assert "keystone_authtoken.password" in done.stdout
        outputs.append(done.stdout + done.stderr)
    for secret in SECRETS:
        assert all(secret not in text for text in outputs), secret


@pytest.mark.parametrize("args, message", [
    ((), "no node to probe: set probe_access on the nodes to probe"),
    (("--node", "compute9"), "node 'compute9' cannot be probed: it needs the role network or compute and the "
                             "variable probe_access"),
])
def test_verify_traffic_with_nothing_to_probe_says_what_to_set_and_makes_nothing(tmp_path, args, message):
    conf = tmp_path / "coordinator.conf"
    conf.write_text(f"[coordinator]\nstate_dir = {tmp_path / 'state'}\n[neutron]\ncloud = nowhere\n")
    assert run_cli("--config-file", str(conf), "keygen", program="nodeagentctl").returncode == 0
    done = run_cli("--config-file", str(conf), "verify", "--traffic", *args, program="nodeagentctl")
    assert done.returncode != 0 and message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
