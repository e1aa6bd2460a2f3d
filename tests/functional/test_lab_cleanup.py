"""The demo's lab folder goes away with the lab, and never while something is still mounted beneath it."""

from __future__ import annotations

import subprocess
import sys

from nodeagent.testing.labguide import remove_lab
from tests.conftest import REPO


def test_a_closed_lab_folder_is_removed_whole(tmp_path):
    lab = tmp_path / "nodeagent-demo.x"
    (lab / "cloud" / "mysql-data").mkdir(parents=True)
    (lab / "clouds.yaml").write_text("clouds: {lab: {auth: {password: secret}}}\n")
    remove_lab(lab)
    assert not lab.exists()


def test_a_folder_with_a_mount_beneath_is_refused_and_left(tmp_path):
    lab = tmp_path / "lab"
    (lab / "node" / "view").mkdir(parents=True)
    (lab / "node" / "view" / "keep").write_text("x")
    # a mount namespace of its own: the tmpfs never appears in the host's
    script = ("import sys, subprocess; from pathlib import Path; from nodeagent.testing.labguide import remove_lab\n"
              "view = Path(sys.argv[1]) / 'node' / 'view'\n"
              "subprocess.run(['mount', '-t', 'tmpfs', 'tmpfs', str(view)], check=True)\n"
              "try:\n    remove_lab(Path(sys.argv[1]))\nexcept RuntimeError as exc:\n    print(exc)\n")
    done = subprocess.run(["unshare", "--mount", "--propagation", "private", sys.executable, "-c", script, str(lab)],
                          capture_output=True, text=True, cwd=REPO, timeout=60)
    assert done.stdout.strip() == f"not removing {lab}: still mounted under it: {lab / 'node' / 'view'}", done.stderr
    assert (lab / "node" / "view" / "keep").read_text() == "x"


def test_the_sample_coordinator_conf_documents_the_neutron_section():
    from nodeagent.cli.config import list_opts

    sample = (REPO / "etc" / "nodeagent" / "coordinator.conf").read_text()
    assert "\n[neutron]\n" in sample
    section = sample.split("\n[neutron]\n", 1)[1]
    for opt in dict(list_opts())["neutron"]:
        assert f"#{opt.name} =" in section, opt.name


