"""nodeagentctl on a coordinator that is not set up yet: a one-line error naming the path and what to run,
and nothing made by asking; ``keygen`` sets it up."""

from __future__ import annotations

import json

import pytest

from tests.conftest import REPO, run_cli


@pytest.fixture
def conf(tmp_path):
    path = tmp_path / "coordinator.conf"
    path.write_text(f"[coordinator]\nstate_dir = {tmp_path / 'state'}\n")
    return path


@pytest.mark.parametrize("command", [["events"], ["node", "list"], ["drift", "list"], ["var", "list"],
                                     ["secret", "list"], ["node", "show", "n1"], ["node", "accept", "n1"],
                                     ["var", "set", "region", "RegionTwo"]])
def test_commands_before_keygen_say_what_to_run_and_make_nothing(tmp_path, conf, command):
    done = run_cli("--config-file", str(conf), *command, program="nodeagentctl")
    assert done.returncode == 1
    assert done.stderr.strip() == (f"no coordinator inventory at {tmp_path / 'state/coordinator.db'}: run "
                                   f"'nodeagentctl keygen' first (it sets up {tmp_path / 'state'}), or check "
                                   "--config-file")
    assert not (tmp_path / "state").exists()


def test_keygen_sets_the_coordinator_up_and_the_commands_answer(tmp_path, conf):
    done = run_cli("--config-file", str(conf), "keygen", program="nodeagentctl")
    assert done.returncode == 0, done.stderr
    public = done.stdout.strip()
    assert len(public) == 44 and (tmp_path / "state/coordinator.key").stat().st_mode & 0o777 == 0o600
    events = run_cli("--config-file", str(conf), "events", "-f", "json", program="nodeagentctl")
    assert events.returncode == 0 and json.loads(events.stdout) == []
    again = run_cli("--config-file", str(conf), "keygen", program="nodeagentctl")
    assert again.stdout.strip() == public  # the same key: keygen makes only what is missing


def test_the_roles_are_read_without_the_coordinator_set_up(tmp_path):
    conf = tmp_path / "coordinator.conf"
    conf.write_text(f"[coordinator]\nstate_dir = {tmp_path / 'state'}\nroles_dir = {REPO / 'etc/roles'}\n")
    done = run_cli("--config-file", str(conf), "role", "list", "-f", "json", program="nodeagentctl")
    assert done.returncode == 0, done.stderr
    assert [row["Role"] for row in json.loads(done.stdout)] == ["compute", "controller", "network"]
    assert not (tmp_path / "state").exists()
