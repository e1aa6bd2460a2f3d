"""Drift that names who did it, end to end: a running agent (its own process, as on a node) hears an edit
through fanotify, corrects it, and the drift list, the events, a webhook and the metrics name the writer.

Writers: an operator's shell, a named long-running process, a short-lived one (gone before the agent
reads its event, as often as not), a package-manager-like rename into place, and a process of a
systemd unit of the lab node's own systemd. Each writer's argv carries a marker of its own.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
import uuid

import pytest
import yaml

from nodeagent.testing.webhook import Webhook
from nodeagent.testing.lab import Fleet
from nodeagent.testing.labcloud import free_port
from nodeagent.testing.waiting import wait_until

pytestmark = pytest.mark.timeout(600)

DOCUMENT = {"resources": [
    {"id": "neutron-conf", "driver": "ini", "path": "/etc/neutron/neutron.conf",
     "settings": {"DEFAULT": {"core_plugin": "ml2", "transport_url": "rabbit://openstack:s3cret@controller"}},
     "sensitive": ["DEFAULT.transport_url"]},
    {"id": "forwarding", "driver": "sysctl", "settings": {"net.ipv4.ip_forward": 1}},
    {"id": "provider", "driver": "linux_bridge", "name": "brq-prov", "ports": ["eth1"]}]}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    hook = Webhook()
    port = free_port()
    fleet = Fleet(tmp_path_factory.mktemp("attribution"), report_interval=1, auto_accept=True,
                  coordinator_options={"webhooks": hook.url},
                  agent_options={"metrics_address": f"127.0.0.1:{port}", "drift_contested_count": 50,
                                 "name_short_lived_writers": True})
    fleet.port, fleet.webhook = port, hook
    try:
        fleet.add_node("attr1", ["eth1"], services=["neutron-l3-agent"])
        fleet.start("coordinator")
        fleet.start("attr1")
        (fleet.directory / "state.yaml").write_text(yaml.safe_dump(DOCUMENT))
        wait_until(lambda: "attr1" in fleet.ctl("node", "list", "-f", "value", "-c", "Host").stdout, timeout=60)
        fleet.ctl("node", "set-state", "attr1", str(fleet.directory / "state.yaml"))
        wait_until(lambda: "converged 1/1" in " ".join(
            fleet.ctl("node", "list", "-f", "value", "-c", "Generation", "-c", "State").stdout.split()), timeout=60)
        yield fleet
    finally:
        fleet.close()
        hook.close()


def conf(fleet):
    return fleet.directory / "attr1/root/etc/neutron/neutron.conf"


def python(code: str, mark: str) -> list[str]:
    return [sys.executable, "-c", code, mark]


def edit(fleet) -> str:
    """Python that changes a managed setting in place."""
    path = str(conf(fleet))
    return f"text = open({path!r}).read().replace('core_plugin = ml2', 'core_plugin = other'); " \
           f"open({path!r}, 'w').write(text)"


def shell(fleet, mark):
    """An operator's shell: ``printf > file`` is written by the shell itself (``sed -i`` would be a process)."""
    process = subprocess.Popen(["bash", "-s", "--", mark], stdin=subprocess.PIPE, text=True)
    process.communicate(f"printf '[DEFAULT]\\ncore_plugin = other\\n' > {conf(fleet)}\nsleep 2\n")


def named(fleet, mark):
    return subprocess.Popen(python(f"import time; {edit(fleet)}; time.sleep(3)", mark))


def short_lived(fleet, mark):
    subprocess.run(python(edit(fleet), mark), check=True)


def renamed_into_place(fleet, mark):
    path = conf(fleet)
    new = path.parent / "neutron.conf.dpkg-new"
    subprocess.run(python(f"import os; open({str(new)!r}, 'w').write('[DEFAULT]\\ncore_plugin = other\\n'); "
                          f"os.rename({str(new)!r}, {str(path)!r})", mark), check=True)


WRITERS = {"shell": shell, "named process": named, "short-lived process": short_lived,
           "rename into place": renamed_into_place}


def drift(fleet) -> list[dict]:
    return json.loads(fleet.ctl("drift", "list", "-f", "json", "--node", "attr1").stdout)


def in_sync(fleet) -> bool:
    text = conf(fleet).read_text()
    return "core_plugin = ml2" in text and "core_plugin = other" not in text


@pytest.mark.parametrize("writer", list(WRITERS))
def test_each_writer_is_named_in_drift_list_events_and_webhooks(fleet, writer):
    wait_until(lambda: in_sync(fleet), timeout=10)
    mark = f"drift-writer-{uuid.uuid4().hex[:12]}"
    before = len(drift(fleet))
    started = WRITERS[writer](fleet, mark)
    try:
        record = wait_until(lambda: next((d for d in drift(fleet)[before:] if mark in json.dumps(d["By"])), None),
                            timeout=30)
    finally:
        if started is not None:
            started.kill()
            started.wait()
    assert record["State"] == "corrected" and record["By"]["user"] == "root"
    assert mark in record["By"]["command"]
    wait_until(lambda: in_sync(fleet), timeout=10)
    events = json.loads(fleet.ctl("events", "-f", "json", "--node", "attr1", "--type", "drift.*").stdout)
    assert any(mark in e["Detail"] and " by " in e["Detail"] for e in events)
    hook = wait_until(lambda: next((a for a in fleet.webhook.received if mark in json.dumps(a.get("by"))), None))
    assert hook["type"] == "nodeagent.drift.corrected" and hook["by"]["pid"] == record["By"]["pid"]
    assert "s3cret" not in json.dumps(record) + json.dumps(hook)


def test_a_process_of_a_systemd_unit_is_named_with_its_unit_also_in_the_metrics(fleet):
    wait_until(lambda: in_sync(fleet), timeout=10)
    systemd = fleet.systemds["attr1"]
    mark = f"drift-writer-{uuid.uuid4().hex[:12]}"
    script = fleet.directory / "config_tool.py"
    script.write_text(edit(fleet) + "\n")
    systemd.add_unit("config-tool.service", "[Unit]\nDescription=another configuration tool\n[Service]\n"
                                            f"Type=oneshot\nExecStart={sys.executable} {script} {mark}\n")
    subprocess.run([*systemd.systemctl, "daemon-reload"], check=True, timeout=60)
    subprocess.run([*systemd.systemctl, "start", "config-tool.service"], check=True, timeout=60)
    record = wait_until(lambda: next((d for d in drift(fleet) if mark in json.dumps(d["By"])), None), timeout=30)
    assert record["By"]["unit"] == "config-tool.service"
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{fleet.port}/metrics", timeout=5).read().decode()
    assert 'nodeagent_drift_by_unit_total{unit="config-tool.service"} 1.0' in metrics
    assert mark not in metrics  # the unit only: no command line, no pid


def test_a_sysctl_written_through_proc_sys_is_named_and_a_link_change_says_unknown(fleet):
    node = fleet.nodes["attr1"]
    before = len(drift(fleet))
    writer = subprocess.Popen(["ip", "netns", "exec", node.name, "sysctl", "-qw", "net.ipv4.ip_forward=0"])
    writer.wait()
    record = wait_until(lambda: next((d for d in drift(fleet)[before:] if d["Resource"] == "forwarding"), None),
                        timeout=30)
    assert record["By"]["pid"] == writer.pid  # ip execs sysctl: one process
    # sysctl lives a millisecond: its command line when the agent read it in time, else its pid alone.
    assert record["By"]["exited"] or record["By"]["command"].split()[0] == "sysctl"
    wait_until(lambda: node.exec("sysctl", "-n", "net.ipv4.ip_forward").stdout.strip() == "1", timeout=10)
    before = len(drift(fleet))
    node.exec("ip", "link", "set", "eth1", "nomaster")
    record = wait_until(lambda: next((d for d in drift(fleet)[before:] if d["Resource"] == "provider"), None),
                        timeout=30)
    assert record["By"] == {"version": 1, "pid": None, "command": None, "executable": None, "unit": None,
                            "user": None, "parents": [], "exited": False,
                            "unknown": "netlink and OVSDB events name no process"}
    wait_until(lambda: "master brq-prov" in node.exec("ip", "link", "show", "eth1").stdout, timeout=10)


def test_the_agents_own_correction_is_no_drift_and_status_says_how_files_are_heard(fleet):
    from tests.conftest import run_cli

    wait_until(lambda: in_sync(fleet), timeout=10)
    before = len(drift(fleet))
    short_lived(fleet, "drift-writer-once")
    wait_until(lambda: len(drift(fleet)) > before, timeout=30)
    wait_until(lambda: in_sync(fleet), timeout=10)
    time.sleep(2)  # the agent's correction was heard too (its own write): it must make no record
    assert len(drift(fleet)) == before + 1
    done = run_cli("--config-file", str(fleet.agent_conf("attr1")), "status", "-f", "json")
    assert done.returncode == 0, done.stderr
    assert "file changes heard by fanotify (writers named)" in done.stderr
    assert "network changes heard by netlink and OVSDB events (writers not named" in done.stderr
    last = json.loads(done.stdout)[0]["Last drift"]
    assert "drift-writer-once" in last["by"]["command"]
