"""No escape through links, through the real CLI on a scratch root (issue #23, item 4): someone who can write
one managed directory or the state directory plants a symbolic link above ``backup_dir``, or a hard link to a
file outside the allowed roots at a managed name."""

from __future__ import annotations

import os

import yaml

from tests.conftest import run_cli


def apply(tmp_path, resources: list[dict]) -> str:
    state = tmp_path / "state.yaml"
    state.write_text(yaml.safe_dump({"node": "links1", "resources": resources}))
    done = run_cli("apply", str(state), "--root", str(tmp_path / "root"), "-f", "value", "-c", "Resource",
                   "-c", "Status", "-c", "Details")
    return done.stdout + done.stderr


def test_a_symbolic_link_above_backup_dir_keeps_backups_under_the_root(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "etc/neutron").mkdir(parents=True)
    (root / "var").mkdir()
    outside.mkdir()
    (root / "var/lib").symlink_to(outside)  # absolute: on the host it leads out of --root
    (root / "etc/neutron/x.conf").write_text("old secret\n")
    out = apply(tmp_path, [{"id": "x", "driver": "file", "path": "/etc/neutron/x.conf", "content": "new\n"}])
    assert (root / "etc/neutron/x.conf").read_text() == "new\n", out
    assert not list(outside.rglob("*")), "a backup left the root"
    kept = [p for p in root.rglob("x.conf") if "backups" in p.parts]
    assert [p.read_text() for p in kept] == ["old secret\n"]  # kept inside the root, where the link leads there


def test_mode_and_owner_are_not_changed_through_a_hard_link(tmp_path):
    root = tmp_path / "root"
    (root / "etc/neutron").mkdir(parents=True)
    shadow = root / "etc/shadow"  # outside the allowed roots
    shadow.write_text("same\n")
    shadow.chmod(0o600)
    os.link(shadow, root / "etc/neutron/linked.conf")
    out = apply(tmp_path, [{"id": "linked", "driver": "file", "path": "/etc/neutron/linked.conf",
                            "content": "same\n", "permissions": "0644"}])
    assert shadow.stat().st_mode & 0o777 == 0o600, out
    assert "linked failed" in " ".join(out.split()) and "2 hard links" in out
