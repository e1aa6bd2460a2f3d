"""The ``by`` of a drift: the Writer message, the policy by writer (drift_ignore_from, drift_contest_from) in
the enforcer on real files, command lines without secrets, the unit read from /proc/PID/cgroup."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from nodeagent.document.model import parse_document
from nodeagent.document.registry import DriverRegistry
from nodeagent.drivers.file import FileDriver
from nodeagent.kit.context import Context
from nodeagent.kit.watches import Touch
from nodeagent.kit.watches import File, Link, Row
from nodeagent.node import attribution
from nodeagent.node.driftpolicy import CONTEST, IGNORE, WriterPolicy
from nodeagent.node.enforcer import Enforcer, Outlet, Pacing
from nodeagent.node.engine import Engine
from nodeagent.node.redact import scrub_command
from nodeagent.node.writers import unit_of
from nodeagent.wire.messages import DriftEvent, Malformed, Writer

DPKG = Writer(pid=40, command="dpkg --configure -a", executable="/usr/bin/dpkg", unit="apt-daily-upgrade.service",
              user="root", parents=("apt[39]",))
POSTINST = Writer(pid=41, command="sed -i s/a/b/ /etc/neutron/a.conf", executable="/usr/bin/sed", user="root",
                  parents=("sh[40]", "dpkg[39]"))
PUPPET = Writer(pid=50, command="/opt/puppetlabs/bin/puppet agent -t", executable="/opt/puppetlabs/puppet/bin/ruby",
                unit="puppet.service", user="root")
VI = Writer(pid=60, command="vi /etc/neutron/a.conf", executable="/usr/bin/vim.basic", user="alice",
            parents=("bash[59]", "sshd[58]"))


def test_a_writer_travels_and_reads_as_one_line():
    event = DriftEvent(node="n1", resource="a", driver="file", generation=1, state="corrected", changes=(),
                       seen_at=1.0, id="x" * 32, by=VI)
    assert DriftEvent.from_dict(event.to_dict()) == event
    assert event.describe() == ("a corrected: changed by vi /etc/neutron/a.conf[60] (user alice, "
                                "via bash[59] < sshd[58])")
    assert Writer(pid=7, exited=True).describe() == "a process[7] (exited before it could be read)"
    assert Writer(unknown="rtnetlink names no process").describe() == "unknown (rtnetlink names no process)"
    old = {k: v for k, v in event.to_dict().items() if k != "by"}  # an agent from before: no writer
    assert DriftEvent.from_dict(old).by is None
    with pytest.raises(Malformed, match=r"by\.pid is 'x', not an integer"):
        DriftEvent.from_dict({**event.to_dict(), "by": {"pid": "x"}})


def test_the_policy_names_units_executables_and_parents():
    policy = WriterPolicy(ignore_from=("dpkg", "apt-daily-upgrade.service"), contest_from=("puppet.service",))
    assert policy.verdict(DPKG) == IGNORE
    assert policy.verdict(POSTINST) == IGNORE  # run by dpkg: a parent's name
    assert policy.verdict(PUPPET) == CONTEST
    assert policy.verdict(VI) is None and policy.verdict(None) is None
    assert WriterPolicy(ignore_from=("/usr/bin/vim.basic",)).verdict(VI) == IGNORE
    with pytest.raises(ValueError, match="drift_contest_from: 'puppet agent' is not a unit"):
        WriterPolicy(contest_from=("puppet agent",))
    with pytest.raises(ValueError, match="both name dpkg"):
        WriterPolicy(ignore_from=("dpkg",), contest_from=("dpkg",))


def test_a_command_line_leaves_its_secrets_behind():
    assert scrub_command("crudini --set /etc/neutron/neutron.conf DEFAULT transport_url rabbit://o:new@c", ()) \
        == "crudini --set /etc/neutron/neutron.conf DEFAULT transport_url '***'"
    assert scrub_command("mysql --password=hunter2 -u root", ()) == "mysql '--password=***' -u root"
    assert scrub_command("curl https://admin:pw@keystone:5000/v3", ()) == "curl 'https://admin:***@keystone:5000/v3'"
    assert scrub_command("echo s3cret-value", ("s3cret-value",)) == "echo ***"
    assert scrub_command("vi /etc/neutron/neutron.conf", ()) == "vi /etc/neutron/neutron.conf"


def test_the_unit_comes_from_the_cgroup_path():
    assert unit_of("9:name=systemd:/system.slice/neutron-l3-agent.service\n0::/system.slice/x.service\n") \
        == "neutron-l3-agent.service"
    assert unit_of("0::/user.slice/user-1000.slice/session-3.scope\n") == "session-3.scope"
    assert unit_of("0::/nodeagent-lab-1/system.slice/config-tool.service\n") == "config-tool.service"
    assert unit_of("0::/\n") is None


@pytest.fixture
def enforcer(root: Path, tmp_path: Path):
    events: list = []
    driver = FileDriver()
    driver.name = "file"
    document = parse_document({"node": "n1", "generation": 1, "resources": [
        {"id": "a", "driver": "file", "path": "/etc/neutron/a.conf", "content": "a\n"}]}, DriverRegistry([driver]))
    pacing = Pacing(debounce=0, contested_backoff=60,
                    writers=WriterPolicy(ignore_from=("dpkg",), contest_from=("puppet.service",)))
    enforcer = Enforcer(Engine(DriverRegistry([driver]), Context(root=root)),
                        Outlet("n1", tmp_path, lambda kind, detail, drift=None: events.append(drift),
                               lambda *_: None), pacing)
    enforcer.apply_document(document, "generation 1")
    enforcer.stop_watches()  # the test hands the touches itself, with their writers
    enforcer.events = events
    yield enforcer


def drift_by(enforcer: Enforcer, root: Path, text: str, by: Writer | None) -> DriftEvent:
    (root / "etc/neutron/a.conf").write_text(text)
    enforcer.touched(Touch(("a",), time.time(), time.monotonic(), by))
    enforcer.run_due()
    return [e for e in enforcer.events if e is not None][-1]


def test_an_expected_writer_is_recorded_and_left_until_another_writes(enforcer, root):
    path = root / "etc/neutron/a.conf"
    event = drift_by(enforcer, root, "from the package\n", POSTINST)
    assert (event.state, event.by) == ("ignored", POSTINST)
    assert path.read_text() == "from the package\n"
    enforcer.reconcile("resync")  # the periodic resync leaves it too, and says it once
    assert path.read_text() == "from the package\n" and len([e for e in enforcer.events if e]) == 1
    assert enforcer.status()["drifted"] == ["a"]
    event = drift_by(enforcer, root, "by hand\n", VI)  # anyone else's change is corrected
    assert (event.state, event.by.user) == ("corrected", "alice") and path.read_text() == "a\n"


def test_another_manager_is_contested_at_its_first_change(enforcer, root):
    path = root / "etc/neutron/a.conf"
    event = drift_by(enforcer, root, "puppet's\n", PUPPET)
    assert (event.state, event.by.unit) == ("contested", "puppet.service")
    assert path.read_text() == "puppet's\n"  # not fought
    assert enforcer.status()["contested"] == ["a"]


def test_a_drift_no_event_named_a_writer_for_says_unknown_and_why(enforcer, root):
    event = drift_by(enforcer, root, "who knows\n", None)
    assert event.state == "corrected" and event.by == Writer(unknown=attribution.RESYNC)
    assert event.describe().endswith(" by unknown (found by a resync or a retry: no event named a writer)")
    assert attribution.unknown({Link, Row}, "fanotify (writers named)") == Writer(unknown=attribution.NETWORK)
    assert attribution.unknown({File}, "inotify (writers not named: file_watch = inotify)").unknown.startswith(
        "inotify")


def test_a_writers_secret_is_masked_before_it_leaves(enforcer, root):
    crudini = Writer(pid=70, command="crudini --set /etc/neutron/a.conf DEFAULT password hunter2")
    event = drift_by(enforcer, root, "x\n", crudini)
    assert "hunter2" not in event.to_dict()["by"]["command"]


def conf_with(tmp_path: Path, text: str):
    from oslo_config import cfg

    from nodeagent.node.options import agent_opts, daemon_opts

    path = tmp_path / "nodeagent.conf"
    path.write_text(f"[DEFAULT]\n{text}\n")
    conf = cfg.ConfigOpts()
    conf.register_opts(agent_opts + daemon_opts)
    conf(["--config-file", str(path)])
    return conf


def test_the_options_make_the_policy_and_a_bad_entry_is_named(tmp_path):
    from oslo_config import cfg

    conf = conf_with(tmp_path, "drift_ignore_from = dpkg, apt-daily-upgrade.service\n"
                               "drift_contest_from = puppet.service\nfile_watch = inotify")
    pacing = Pacing.from_conf(conf)
    assert pacing.writers == WriterPolicy(("dpkg", "apt-daily-upgrade.service"), ("puppet.service",))
    assert pacing.file_watch == "inotify" and pacing.short_lived
    assert not Pacing.from_conf(conf_with(tmp_path, "name_short_lived_writers = false")).short_lived
    assert Pacing.from_conf(conf_with(tmp_path, "")).writers == WriterPolicy()
    with pytest.raises(cfg.ConfigFileValueError, match="drift_contest_from .* 'puppet agent'"):
        conf_with(tmp_path, "drift_contest_from = puppet agent").drift_contest_from
    with pytest.raises(cfg.ConfigFileValueError, match="file_watch"):
        conf_with(tmp_path, "file_watch = dnotify").file_watch
