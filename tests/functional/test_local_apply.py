"""Local mode end to end: the example applied under a scratch root and in a test namespace."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import DATA, EXAMPLES, netns_sysctl, run_cli

EXAMPLE = str(EXAMPLES / "network-node.yaml")
SECRETS = ("rabbit-s3cret", "neutron-s3cret", "metadata-s3cret")


def node_args(lab) -> list[str]:
    return ["--netns", lab.name, "--ovsdb", lab.ovsdb]


def snapshot(root: Path) -> dict[str, str]:
    """Every path under root with its content hash or link target."""
    found = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if path.is_symlink():
            found[key] = "-> " + str(path.readlink())
        elif path.is_file():
            found[key] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            found[key] = "dir"
    return found


def host_state() -> tuple[str, str]:
    return (Path("/proc/sys/net/ipv4/ip_forward").read_text(), Path("/proc/sys/net/ipv4/conf/all/rp_filter").read_text())


def apply_json(*args: str) -> tuple[int, list[dict]]:
    done = run_cli("apply", *args, "-f", "json")
    return done.returncode, json.loads(done.stdout or "[]")


def test_apply_writes_everything_then_second_apply_changes_nothing(root, lab):
    before_host = host_state()
    lab.exec("ethtool", "-K", "eth2", "gro", "on")  # veth starts with GRO off on this kernel
    code, rows = apply_json(EXAMPLE, "--root", str(root), *node_args(lab))
    assert code == 0, rows
    assert {row["Status"] for row in rows} == {"changed"}
    neutron = (root / "etc/neutron/neutron.conf").read_text()
    assert "core_plugin = ml2\n" in neutron and "transport_url = rabbit://openstack:rabbit-s3cret@controller" in neutron
    assert (root / "etc/neutron/neutron.conf").stat().st_mode & 0o777 == 0o640
    assert (root / "etc/neutron/dnsmasq-neutron.conf").read_text().endswith("dhcp-option-force=26,1454\n")
    assert str((root / "etc/neutron/plugin.ini").readlink()) == "plugins/ml2/ml2_conf.ini"
    assert (root / "etc/neutron/plugin.ini").read_text().startswith("[ml2]")
    assert (root / "etc/sysctl.d/90-neutron.conf").read_text() == (
        "net.ipv4.ip_forward = 1\nnet.ipv4.conf.all.rp_filter = 0\nnet.ipv4.conf.default.rp_filter = 0\n")
    assert netns_sysctl(lab.name, "net.ipv4.ip_forward") == "1"
    assert netns_sysctl(lab.name, "net.ipv4.conf.all.rp_filter") == "0"
    assert lab.vsctl("list-ports", "br-ex").stdout.split() == ["eth2"]
    assert lab.vsctl("br-exists", "br-int", check=False).returncode == 0
    assert "generic-receive-offload: off" in lab.exec("ethtool", "-k", "eth2").stdout
    assert host_state() == before_host

    files_after_first = snapshot(root / "etc")
    code, rows = apply_json(EXAMPLE, "--root", str(root), *node_args(lab))
    assert code == 0
    assert {row["Status"] for row in rows} == {"in_sync"}
    assert snapshot(root / "etc") == files_after_first


def test_output_never_shows_secrets(root, lab):
    for command in ("plan", "apply"):
        for fmt in ("table", "json", "yaml"):
            done = run_cli(command, EXAMPLE, "--root", str(root), *node_args(lab), "-f", fmt, "-v")
            for secret in SECRETS:
                assert secret not in done.stdout and secret not in done.stderr
    assert "***" in run_cli("plan", EXAMPLE, "--root", str(root / "other"), *node_args(lab)).stdout


def test_plan_after_hand_edit_shows_exactly_that_key(root, lab):
    assert run_cli("apply", EXAMPLE, "--root", str(root), *node_args(lab)).returncode == 0
    assert run_cli("plan", EXAMPLE, "--root", str(root), *node_args(lab)).returncode == 0
    ml2 = root / "etc/neutron/plugins/ml2/ml2_conf.ini"
    ml2.write_text(ml2.read_text().replace("tenant_network_types = gre", "tenant_network_types = vxlan"))
    before = snapshot(root)
    done = run_cli("plan", EXAMPLE, "--root", str(root), *node_args(lab), "-f", "json")
    assert done.returncode == 2
    pending = [row for row in json.loads(done.stdout) if row["Status"] != "in_sync"]
    assert pending == [{"Resource": "ml2-conf", "Driver": "ini", "Status": "pending",
                        "Details": ["ml2.tenant_network_types: vxlan → gre"], "Duration (ms)": pending[0]["Duration (ms)"]}]
    assert snapshot(root) == before


def test_plan_of_a_file_shows_a_unified_diff(root, lab):
    run_cli("apply", EXAMPLE, "--root", str(root), *node_args(lab))
    (root / "etc/neutron/dnsmasq-neutron.conf").write_text("dhcp-option-force=26,1400\n")
    done = run_cli("plan", EXAMPLE, "--root", str(root), *node_args(lab))
    assert done.returncode == 2
    assert "-dhcp-option-force=26,1400" in done.stdout and "+dhcp-option-force=26,1454" in done.stdout


def test_sysctl_drift_in_the_namespace_is_seen_and_fixed(root, lab):
    run_cli("apply", EXAMPLE, "--root", str(root), *node_args(lab))
    subprocess.run(["ip", "netns", "exec", lab.name, "sysctl", "-qw", "net.ipv4.ip_forward=0"], check=True)
    done = run_cli("plan", EXAMPLE, "--root", str(root), *node_args(lab), "-f", "json")
    rows = {row["Resource"]: row for row in json.loads(done.stdout)}
    assert rows["routing-sysctls"]["Details"] == ["net.ipv4.ip_forward: 0 → 1"]
    code, _ = apply_json(EXAMPLE, "--root", str(root), *node_args(lab))
    assert code == 0 and netns_sysctl(lab.name, "net.ipv4.ip_forward") == "1"


def test_invalid_document_is_refused_and_nothing_changes(root, lab, tmp_path):
    document = yaml.safe_load(Path(EXAMPLE).read_text())
    next(r for r in document["resources"] if r["id"] == "l3-agent-ini")["settings"] = "ovs.local_ip=1"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(document))
    done = run_cli("apply", str(bad), "--root", str(root), *node_args(lab))
    assert done.returncode == 1
    assert done.stderr.strip() == ("resource 'l3-agent-ini': field 'settings' must be a mapping of section to "
                                   "options, got 'ovs.local_ip=1'")
    assert done.stdout == ""
    assert snapshot(root) == {}
    assert netns_sysctl(lab.name, "net.ipv4.ip_forward") == "0"


def test_missing_namespace_is_refused(root):
    done = run_cli("apply", EXAMPLE, "--root", str(root), "--netns", "na-does-not-exist")
    assert done.returncode == 1
    assert "network namespace 'na-does-not-exist' does not exist" in done.stderr
    assert not Path("/run/netns/na-does-not-exist").exists()
    assert snapshot(root) == {}


@pytest.mark.parametrize("path, shown", [
    ("/etc/passwd", "path '/etc/passwd' is outside the allowed roots"),
    ("/var/lib/neutron/x.conf", "is outside the allowed roots: /etc/neutron, /etc/nova"),
    ("/etc/neutron/escape/shadow", "resolves to '/etc/shadow'"),
])
def test_paths_outside_the_allowed_roots_are_refused_before_anything_is_written(root, tmp_path, path, shown):
    (root / "etc/neutron").mkdir(parents=True)
    (root / "etc/neutron/escape").symlink_to("/etc")  # absolute: means <root>/etc, and /etc is not allowed
    (root / "etc/shadow").write_text("untouched\n")
    document = {"node": "n", "generation": 1, "resources": [
        {"id": "first", "driver": "file", "path": "/etc/neutron/first.conf", "content": "x\n"},
        {"id": "evil", "driver": "file", "path": path, "content": "owned\n"}]}
    state = tmp_path / "state.json"
    state.write_text(json.dumps(document))
    before = snapshot(root)
    done = run_cli("apply", str(state), "--root", str(root))
    assert done.returncode == 1
    assert done.stderr.startswith("resource 'evil': field 'path' is refused: ") and shown in done.stderr
    assert snapshot(root) == before


def test_failure_half_way_leaves_the_old_file_whole_and_others_applied(root, tmp_path):
    """A real ENOSPC: the target directory is a tiny tmpfs too small for the new content."""
    small = root / "etc/neutron/small"
    small.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(small)], check=True)
    try:
        (small / "big.conf").write_text("old content\n")
        document = {"node": "n", "generation": 1, "resources": [
            {"id": "big", "driver": "file", "path": "/etc/neutron/small/big.conf", "content": "y" * 200_000},
            {"id": "after-big", "driver": "file", "path": "/etc/neutron/a.conf", "content": "a\n", "after": ["big"]},
            {"id": "other", "driver": "file", "path": "/etc/neutron/b.conf", "content": "b\n"}]}
        state = tmp_path / "state.json"
        state.write_text(json.dumps(document))
        code, rows = apply_json(str(state), "--root", str(root))
        rows = {row["Resource"]: row for row in rows}
        assert code == 4
        assert rows["big"]["Status"] == "failed"
        assert any("No space left on device" in line and "temporary" in line for line in rows["big"]["Details"])
        assert rows["after-big"]["Status"] == "skipped"
        assert rows["other"]["Status"] == "changed"
        assert (small / "big.conf").read_text() == "old content\n"
        assert sorted(p.name for p in small.iterdir()) == ["big.conf"]  # no temporary file left behind
        assert not (root / "etc/neutron/a.conf").exists()
    finally:
        subprocess.run(["umount", str(small)], check=True)


def test_replacing_keeps_mode_owner_and_the_previous_version(root, tmp_path):
    conf = root / "etc/neutron/neutron.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text((DATA / "neutron.conf").read_text())
    conf.chmod(0o640)
    import os
    os.chown(conf, 0, 65534)
    document = {"node": "n", "generation": 1, "resources": [
        {"id": "conf", "driver": "ini", "path": "/etc/neutron/neutron.conf",
         "settings": {"DEFAULT": {"core_plugin": "ml2"}}}]}
    state = tmp_path / "state.json"
    state.write_text(json.dumps(document))
    assert run_cli("apply", str(state), "--root", str(root)).returncode == 0
    info = conf.stat()
    assert (info.st_mode & 0o777, info.st_uid, info.st_gid) == (0o640, 0, 65534)
    backup = root / "var/lib/nodeagent/backups/etc/neutron/neutron.conf"
    assert backup.read_text() == (DATA / "neutron.conf").read_text()
    new_lines = conf.read_text().splitlines()
    assert len(new_lines) == len(backup.read_text().splitlines()) + 1


def test_ini_permissions_drift_is_fixed_without_rewriting(root, lab):
    run_cli("apply", EXAMPLE, "--root", str(root), *node_args(lab))
    conf = root / "etc/neutron/neutron.conf"
    inode = conf.stat().st_ino
    conf.chmod(0o666)
    done = run_cli("plan", EXAMPLE, "--root", str(root), *node_args(lab))
    assert "permissions: 0666 → 0640" in done.stdout
    assert run_cli("apply", EXAMPLE, "--root", str(root), *node_args(lab)).returncode == 0
    assert conf.stat().st_mode & 0o777 == 0o640 and conf.stat().st_ino == inode
