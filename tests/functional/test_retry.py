"""A temporary failure is retried on the backoff schedule, long before the periodic resync.

The real thing: a file on a full filesystem (ENOSPC is temporary), an agent process whose
resync is an hour away, and no event for the file when space comes back.
"""

from __future__ import annotations

import errno
import json
import subprocess

import yaml

from nodeagent.testing.lab import Fleet
from nodeagent.testing.waiting import wait_until

DOCUMENT = {"resources": [{"id": "conf", "driver": "file", "path": "/etc/neutron/retry.conf",
                           "content": "written once there is room\n"}]}


def fill(directory) -> None:
    with open(directory / "filler", "wb", buffering=0) as stream:
        try:
            while True:
                stream.write(b"\0" * 1024)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC


def test_a_file_on_a_full_disk_is_written_by_a_retry_once_there_is_room(tmp_path):
    fleet = Fleet(tmp_path, report_interval=1, auto_accept=True, resync_interval=3600)
    etc = tmp_path / "r1/root/etc/neutron"
    etc.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(etc)], check=True)
    try:
        fleet.add_node("r1", [])
        fill(etc)
        fleet.start("coordinator")
        fleet.start("r1")
        wait_until(lambda: "r1" in fleet.ctl("node", "list", "-f", "value", "-c", "Host").stdout, timeout=30)
        (tmp_path / "state.yaml").write_text(yaml.safe_dump(DOCUMENT))
        fleet.ctl("node", "set-state", "r1", str(tmp_path / "state.yaml"))
        status = tmp_path / "r1/state/status.json"

        def failed():
            """the agent says the file failed"""
            return status.exists() and json.loads(status.read_text())["failed"] == ["conf"]
        wait_until(failed, timeout=30)
        (etc / "filler").unlink()  # room again; nothing the agent watches changed

        def written():
            """the file written"""
            return (etc / "retry.conf").exists() and (etc / "retry.conf").read_text() == DOCUMENT["resources"][0][
                "content"]
        wait_until(written, timeout=60)  # the backoff reaches it within seconds; the resync is an hour away
        wait_until(lambda: json.loads(status.read_text())["failed"] == [], timeout=10)
    finally:
        fleet.close()
        subprocess.run(["umount", "-l", str(etc)], check=False)
