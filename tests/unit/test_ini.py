"""The ini model: the real neutron.conf sample survives every edit except the managed lines."""

from __future__ import annotations

import difflib

import pytest

from nodeagent.drivers.ini import IniFile
from tests.conftest import DATA

SAMPLE = (DATA / "neutron.conf").read_text()


def changed_lines(before: str, after: str) -> list[str]:
    return [line for line in difflib.ndiff(before.splitlines(), after.splitlines()) if line[:1] in "+-"]


def test_round_trip_of_the_real_sample_is_byte_exact():
    assert IniFile.parse(SAMPLE).render() == SAMPLE


def test_sample_has_no_active_options_only_commented_defaults():
    ini = IniFile.parse(SAMPLE)
    assert ini.values("DEFAULT", "core_plugin") == []
    assert sum(1 for e in ini.entries if e.key) == 0


def test_new_key_goes_beside_its_commented_default_in_the_right_section():
    ini = IniFile.parse(SAMPLE)
    ini.set("DEFAULT", "core_plugin", ["ml2"])
    ini.set("oslo_concurrency", "lock_path", ["/var/lib/neutron/tmp"])
    after = ini.render()
    assert changed_lines(SAMPLE, after) == ["+ core_plugin = ml2", "+ lock_path = /var/lib/neutron/tmp"]
    lines = after.splitlines()
    assert lines[lines.index("core_plugin = ml2") - 1] == "#core_plugin = <None>"
    assert lines[lines.index("lock_path = /var/lib/neutron/tmp") - 1] == "#lock_path = <None>"
    assert IniFile.parse(after).values("oslo_concurrency", "lock_path") == ["/var/lib/neutron/tmp"]


def test_same_key_in_two_sections_is_kept_apart():
    ini = IniFile.parse(SAMPLE)
    ini.set("DEFAULT", "transport_url", ["rabbit://a@controller"])
    after = IniFile.parse(ini.render())
    assert after.values("DEFAULT", "transport_url") == ["rabbit://a@controller"]
    assert after.values("oslo_messaging_notifications", "transport_url") == []


def test_replace_and_remove_keep_every_other_line():
    text = "# head\n[DEFAULT]\n# about a\na = 1\n\nb = 2 ; not a comment\n[x]\nc=3\n"
    ini = IniFile.parse(text)
    assert ini.values("DEFAULT", "b") == ["2 ; not a comment"]
    ini.set("DEFAULT", "a", ["9"])
    ini.remove("x", "c")
    assert ini.render() == "# head\n[DEFAULT]\n# about a\na = 9\n\nb = 2 ; not a comment\n[x]\n"


def test_multi_valued_options_are_repeated_keys():
    ini = IniFile.parse("[DEFAULT]\nx = 0\n[ml2]\nmech = a\nother = 1\nmech = b\n")
    assert ini.values("ml2", "mech") == ["a", "b"]
    ini.set("ml2", "mech", ["c", "d", "e"])
    assert ini.render() == "[DEFAULT]\nx = 0\n[ml2]\nmech = c\nmech = d\nmech = e\nother = 1\n"


def test_default_section_is_added_first_and_others_at_the_end():
    ini = IniFile.parse("# top comment\n[ovs]\nlocal_ip = 198.18.0.2\n")
    ini.set("DEFAULT", "debug", ["true"])
    ini.set("agent", "tunnel_types", ["gre"])
    assert ini.render() == ("# top comment\n[DEFAULT]\ndebug = true\n\n[ovs]\nlocal_ip = 198.18.0.2\n\n"
                            "[agent]\ntunnel_types = gre\n")


def test_file_without_final_newline_and_empty_file():
    ini = IniFile.parse("[DEFAULT]\na = 1")
    ini.set("DEFAULT", "b", ["2"])
    assert ini.render() == "[DEFAULT]\na = 1\nb = 2\n"
    empty = IniFile.parse("")
    empty.set("ml2", "type_drivers", ["gre"])
    assert empty.render() == "[ml2]\ntype_drivers = gre\n"


def test_values_are_read_as_oslo_config_reads_them():
    ini = IniFile.parse("[DEFAULT]\nquoted = \"a b\"\ncolon: x\nurl = rabbit://u:p@h:5672/\nlong = one\n  two\n")
    assert ini.values("DEFAULT", "quoted") == ["a b"]
    assert ini.values("DEFAULT", "colon") == ["x"]
    assert ini.values("DEFAULT", "url") == ["rabbit://u:p@h:5672/"]
    assert ini.values("DEFAULT", "long") == ["one\ntwo"]
    ini.set("DEFAULT", "long", ["three"])
    assert ini.render().endswith("long = three\n")


@pytest.mark.parametrize("value", ["'quoted'", '"', "'", " spaced ", "tab\t", '"a" and "b"', "plain 'q' inside"])
def test_a_value_oslo_config_would_strip_or_unquote_is_written_quoted_and_reads_back_whole(tmp_path, value):
    from oslo_config import cfg

    ini = IniFile.parse("")
    ini.set("DEFAULT", "secret", [value])
    (tmp_path / "x.conf").write_text(ini.render())
    conf = cfg.ConfigOpts()
    conf.register_opt(cfg.StrOpt("secret"))
    conf(args=[], default_config_files=[str(tmp_path / "x.conf")], default_config_dirs=[])
    assert conf.secret == value
    assert IniFile.parse(ini.render()).values("DEFAULT", "secret") == [value]  # in sync: no drift after writing


def test_one_update_sets_and_removes_many_keys_where_one_at_a_time_would():
    text = "[DEFAULT]\n#debug = false\n#verbose = false\nx = 0\n[ml2]\n#type_drivers = vlan\n  indented\n[old]\ngone = 1\n"
    ini = IniFile.parse(text)
    ini.update({"DEFAULT": {"debug": ["true"], "new": ["1"], "x": ["5"], "also": ["2"]},
                "ml2": {"type_drivers": ["gre"]}, "fresh": {"a": ["b"]}}, {"old": ["gone"], "DEFAULT": ["nope"]})
    assert ini.render() == ("[DEFAULT]\n#debug = false\ndebug = true\n#verbose = false\nx = 5\nnew = 1\nalso = 2\n"
                            "[ml2]\n#type_drivers = vlan\ntype_drivers = gre\n\n  indented\n[old]\n\n"
                            "[fresh]\na = b\n")
    assert IniFile.parse(ini.render()).values("DEFAULT", "debug") == ["true"]
