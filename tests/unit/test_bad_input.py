"""Hostile input: each case is a finding of the hostile test (issue 10) that hurt before and is refused now.

Every refusal is one bounded line naming the resource and the field, and changes nothing.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import threading
from pathlib import Path

import pytest

from nodeagent.kit import files
from nodeagent.kit.context import Context
from nodeagent.node.engine import Engine
from nodeagent.kit.errors import Conflict, InvalidDocument
from nodeagent.document.loading import load_file
from nodeagent.document.model import parse_document
from nodeagent.kit.result import Status

# The classic "billion laughs": 460 bytes that expand to 10**9 strings.
ALIAS_BOMB = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def doc(*resources: dict) -> dict:
    return {"node": "n1", "generation": 1, "resources": list(resources)}


def ini(settings: dict | None = None, **extra) -> dict:
    return {"id": "conf", "driver": "ini", "path": "/etc/neutron/neutron.conf",
            "settings": settings if settings is not None else {"DEFAULT": {"debug": "true"}}, **extra}


def refusal(registry, raw) -> str:
    with pytest.raises(InvalidDocument) as caught:
        parse_document(raw, registry)
    message = str(caught.value)
    assert "\n" not in message and len(message) < 700, message
    return message


# -- loading ------------------------------------------------------------------------------------

def test_the_alias_bomb_is_refused_at_once(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(ALIAS_BOMB)
    assert len(ALIAS_BOMB) < 500
    with pytest.raises(InvalidDocument, match=r"more than 200000 values once aliases are expanded"):
        load_file(path)


def test_many_aliases_are_refused_while_composing(tmp_path):
    path = tmp_path / "aliases.yaml"
    path.write_text("a: &a x\nb: [" + ",".join(["*a"] * 101) + "]\n")
    with pytest.raises(InvalidDocument, match=r"line 2, column \d+: more than 100 YAML aliases"):
        load_file(path)


@pytest.mark.parametrize("suffix, text", [(".yaml", "[" * 100_000 + "]" * 100_000),
                                          (".json", "[" * 100_000 + "]" * 100_000),
                                          (".yaml", "a:\n" + "".join(" " * i + "b:\n" for i in range(1, 60)))])
def test_deep_nesting_gives_a_clear_message(tmp_path, suffix, text):
    path = tmp_path / f"deep{suffix}"
    path.write_text(text)
    with pytest.raises(InvalidDocument, match=r"nested deeper than 32 levels"):
        load_file(path)


def test_a_recursive_alias_is_refused(tmp_path):
    path = tmp_path / "loop.yaml"
    path.write_text("a: &a [*a]\n")
    with pytest.raises(InvalidDocument, match="contains itself"):
        load_file(path)


def test_non_utf8_document_is_named_with_the_offending_byte(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"node: caf\xe9\n")
    with pytest.raises(InvalidDocument, match=r"latin1.yaml: not UTF-8 text \(byte 0xe9 at offset 9\)"):
        load_file(path)


def test_an_oversized_document_is_refused_before_it_is_parsed(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_bytes(b"#" * (8 * 1024 * 1024 + 1))
    with pytest.raises(InvalidDocument, match="more than the 8388608 bytes"):
        load_file(path)


def test_decoded_payloads_get_the_same_limits(registry):
    deep: list = []
    for _ in range(100):
        deep = [deep]
    assert "nested deeper than 32 levels" in refusal(registry, {**doc(), "resources": deep})


# -- messages -----------------------------------------------------------------------------------

@pytest.mark.parametrize("raw, expected", [
    ({**doc(), "node": "x" * 39_000_000}, "document: more than 8388608 characters of text"),
    ({**doc(), "node": "x" * 3_000_000}, "field 'node' must be a host name, got 'xxxx"),
    (doc(ini({"DEFAULT": {"debug": ["x" * 3_000_000, {"a": "y" * 3_000_000}]}})),
     "resource 'conf': field 'settings.DEFAULT.debug' must be a single-line value or a list of them, got {'a': 'yyy"),
    (doc({"id": "f", "driver": "file", "path": "/etc/neutron/" + "y" * 300, "content": ""}),
     "resource 'f': field 'path' has a name longer than 255 bytes"),
    (doc({"id": "f", "driver": "file", "path": "/etc/neutron/" + "d/" * 3000 + "f", "content": ""}),
     "resource 'f': field 'path' is longer than 4095 bytes"),
])
def test_errors_show_a_short_preview_of_huge_values(registry, raw, expected):
    message = refusal(registry, raw)
    assert expected in message


# -- ini: control characters, numbers -----------------------------------------------------------

@pytest.mark.parametrize("settings, field", [
    ({"DEFAULT": {"debug": "true\r[evil]\r\nkey = 1"}}, "settings.DEFAULT.debug"),
    ({"DEFAULT": {"debug": "a\u2028b"}}, "settings.DEFAULT.debug"),
    ({"DEFAULT": {"debug": "a\x85b"}}, "settings.DEFAULT.debug"),
    ({"DEFAULT": {"debug": ["ok", "a\x00b"]}}, "settings.DEFAULT.debug"),
    ({"DEF\rAULT": {"debug": "1"}}, "settings"),
])
def test_control_characters_are_refused_in_ini_sections_and_values(registry, settings, field):
    message = refusal(registry, doc(ini(settings)))
    assert message.startswith(f"resource 'conf': field '{field}' must not contain control characters")


def test_a_carriage_return_no_longer_writes_a_section(registry, engine, root):
    with pytest.raises(InvalidDocument):
        parse_document(doc(ini({"DEFAULT": {"debug": "true\r[evil]"}})), registry)
    assert not (root / "etc/neutron/neutron.conf").exists()


@pytest.mark.parametrize("owner", [2**32 - 1, 2**64, 10**30, -1, "99999999999999999999"])
def test_huge_owner_ids_are_refused(registry, owner):
    message = refusal(registry, doc(ini(owner=owner)))
    assert "resource 'conf': field 'owner' must be a numeric id from 0 to 4294967294" in message


def test_huge_generation_is_refused(registry):
    assert "field 'generation' must be a non-negative integer" in refusal(registry, {**doc(), "generation": 2**64})


# -- files that are not regular -----------------------------------------------------------------

def _reconcile_within(engine, document, seconds=20):
    """Reconcile in a thread so a hang fails the test instead of blocking it."""
    outcome = {}
    worker = threading.Thread(target=lambda: outcome.update(result=engine.reconcile(document)), daemon=True)
    worker.start()
    worker.join(seconds)
    assert "result" in outcome, "the reconcile hung"
    return outcome["result"]


def _special(kind: str, path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "FIFO":
        os.mkfifo(path)
    elif kind == "character device":
        os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 3))  # /dev/null's numbers
    else:
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(path))
        return server
    return None


@pytest.mark.parametrize("kind, driver", [("FIFO", "ini"), ("FIFO", "file"), ("character device", "ini"),
                                          ("socket", "file")])
def test_non_regular_files_are_refused_before_they_are_opened(registry, engine, root, kind, driver):
    target = root / "etc/neutron/neutron.conf"
    keep = _special(kind, target)
    try:
        resource = ini() if driver == "ini" else {"id": "conf", "driver": "file", "path": "/etc/neutron/neutron.conf",
                                                  "content": "x\n"}
        result = _reconcile_within(engine, parse_document(doc(resource), registry))
        item = result.resources[0]
        assert item.status is Status.FAILED
        assert f"is a {kind}, not a regular file; refusing to open or replace it" in item.error
        assert stat.S_IFMT(os.lstat(target).st_mode) != stat.S_IFREG
    finally:
        if keep:
            keep.close()


def test_non_utf8_ini_file_is_refused_not_mangled(registry, engine, root):
    target = root / "etc/neutron/neutron.conf"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"[DEFAULT]\n# caf\xe9\n")
    result = engine.reconcile(parse_document(doc(ini()), registry))
    assert result.resources[0].status is Status.FAILED
    assert "is not UTF-8 text (byte 0xe9 at offset 15); refusing to edit it" in result.resources[0].error
    assert target.read_bytes() == b"[DEFAULT]\n# caf\xe9\n"


# -- links and backups stay inside the allowed roots --------------------------------------------

@pytest.mark.parametrize("target", ["/etc/shadow", "../../etc/shadow", "../../../../../../etc/shadow",
                                    "plugins/../../shadow"])
def test_a_symlink_to_outside_the_allowed_roots_is_refused(registry, engine, root, target):
    document = parse_document(doc({"id": "l", "driver": "symlink", "path": "/etc/neutron/plugin.ini",
                                   "target": target}), registry)
    with pytest.raises(InvalidDocument, match=r"resource 'l': field 'target' is refused: .* outside the allowed"):
        engine.preflight(document)
    result = engine.reconcile(document)  # the agent has no preflight: refused when observed
    assert result.resources[0].status is Status.FAILED and "outside the allowed roots" in result.resources[0].error
    assert not (root / "etc/neutron/plugin.ini").is_symlink()


def test_a_symlink_through_a_link_that_leaves_is_refused(registry, engine, root):
    (root / "etc/neutron").mkdir(parents=True)
    (root / "etc/neutron/up").symlink_to("/etc")
    document = parse_document(doc({"id": "l", "driver": "symlink", "path": "/etc/neutron/plugin.ini",
                                   "target": "up/shadow"}), registry)
    with pytest.raises(InvalidDocument, match="resolves to '/etc/shadow'"):
        engine.preflight(document)


def test_a_symlink_inside_the_allowed_roots_is_made(registry, engine, root):
    document = parse_document(doc({"id": "l", "driver": "symlink", "path": "/etc/neutron/plugin.ini",
                                   "target": "plugins/ml2/ml2_conf.ini"}), registry)
    engine.preflight(document)
    assert engine.reconcile(document).resources[0].status is Status.CHANGED
    assert os.readlink(root / "etc/neutron/plugin.ini") == "plugins/ml2/ml2_conf.ini"


def test_the_backup_directory_does_not_follow_links(registry, engine, root, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    target = root / "etc/neutron/neutron.conf"
    target.parent.mkdir(parents=True)
    target.write_text("[DEFAULT]\npassword = old-s3cret\n")
    backups = root / "var/lib/nodeagent/backups/etc"
    backups.mkdir(parents=True)
    (backups / "neutron").symlink_to(outside)
    result = engine.reconcile(parse_document(doc(ini()), registry))
    assert result.resources[0].status is Status.FAILED
    assert "is a symbolic link; backups never follow links" in result.resources[0].error
    assert list(outside.iterdir()) == []
    assert target.read_text() == "[DEFAULT]\npassword = old-s3cret\n"


def test_a_link_at_the_backup_name_is_replaced_not_followed(tmp_path):
    outside = tmp_path / "shadow-copy"
    outside.write_text("untouched")
    path, backup = tmp_path / "f.conf", tmp_path / "backups" / "f.conf"
    path.write_text("old")
    backup.parent.mkdir()
    backup.symlink_to(outside)
    files.write_atomic(path, b"new", backup=backup)
    assert outside.read_text() == "untouched"
    assert not backup.is_symlink() and backup.read_text() == "old"


def test_backups_are_never_more_readable_than_their_file(registry, engine, root):
    target = root / "etc/neutron/neutron.conf"
    target.parent.mkdir(parents=True)
    target.write_text("[DEFAULT]\npassword = old-s3cret\n")
    target.chmod(0o644)
    engine.reconcile(parse_document(doc(ini(permissions="0640")), registry))
    backup = root / "var/lib/nodeagent/backups/etc/neutron/neutron.conf"
    assert backup.read_text() == "[DEFAULT]\npassword = old-s3cret\n"
    assert stat.S_IMODE(backup.stat().st_mode) == 0o640
    assert stat.S_IMODE(backup.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(target.stat().st_mode) == 0o640


# -- leftovers ----------------------------------------------------------------------------------

def test_leftover_temporary_files_are_removed_at_start(registry, root):
    directory = root / "etc/neutron"
    directory.mkdir(parents=True)
    leftovers = [directory / ".neutron.conf.k3j4_x.nodeagent", directory / ".plugin.ini.nodeagent-link"]
    leftovers[0].write_text("half a file")
    leftovers[1].symlink_to("nowhere")
    unrelated = directory / ".neutron.conf.swp"
    unrelated.write_text("an editor's")
    document = parse_document(doc(ini(), {"id": "l", "driver": "symlink", "path": "/etc/neutron/plugin.ini",
                                          "target": "neutron.conf"}), registry)
    Engine(registry, Context(root=root)).reconcile(document, dry_run=True)
    assert all(p.is_symlink() or p.exists() for p in leftovers)  # a plan changes nothing
    Engine(registry, Context(root=root)).reconcile(document)
    assert not any(p.is_symlink() or p.exists() for p in leftovers)
    assert unrelated.read_text() == "an editor's"
    assert sorted(p.name for p in directory.iterdir()) == [".neutron.conf.swp", "neutron.conf", "plugin.ini"]


# -- secrets of keys being removed --------------------------------------------------------------

@pytest.mark.parametrize("sensitive", [[], ["keystone_authtoken.password"], ["keystone_authtoken"], True])
def test_old_values_of_absent_and_secret_looking_keys_are_never_shown(registry, engine, root, sensitive):
    target = root / "etc/neutron/neutron.conf"
    target.parent.mkdir(parents=True)
    target.write_text("[DEFAULT]\ntransport_url = rabbit://u:old-rabbit@h\n"
                      "[database]\nconnection = mysql://n:old-db@h\n"
                      "[keystone_authtoken]\npassword = old-ks\n")
    resource = {"id": "conf", "driver": "ini", "path": "/etc/neutron/neutron.conf",
                "settings": {"DEFAULT": {"transport_url": "rabbit://u:new-rabbit@h"},
                             "database": {"connection": "mysql://n:new-db@h"}},
                "absent": {"keystone_authtoken": ["password"]}, "sensitive": sensitive}
    document = parse_document(doc(resource), registry)
    for dry_run in (True, False):
        result = engine.reconcile(document, dry_run=dry_run)
        shown = json.dumps(result.to_dict())
        assert {c.field for c in result.resources[0].changes} == {
            "DEFAULT.transport_url", "database.connection", "keystone_authtoken.password"}
        for secret in ("old-rabbit", "new-rabbit", "old-db", "new-db", "old-ks"):
            assert secret not in shown


# -- an edit made while correcting --------------------------------------------------------------

def test_an_edit_between_read_and_rename_is_a_conflict_not_overwritten(tmp_path):
    path = tmp_path / "f.conf"
    path.write_text("as read")
    found = files.read_file(path)
    path.write_text("edited meanwhile")
    with pytest.raises(Conflict, match="was edited while being corrected"):
        files.write_atomic(path, b"wanted", expected=found)
    assert Conflict("x").kind == "conflict"
    assert path.read_text() == "edited meanwhile"
    assert [p.name for p in tmp_path.iterdir()] == ["f.conf"]


@pytest.mark.parametrize("resource, message", [
    ({"id": "c", "driver": "command", "command": ["echo", "a\0b"], "refresh_only": True},
     "resource 'c': field 'command' must not contain a NUL character (at offset 1)"),
    ({"id": "c", "driver": "command", "command": "true", "refresh_only": True, "environment": {"A=B": "x"}},
     "resource 'c': field 'environment' must be a mapping of names to strings"),
    ({"id": "c", "driver": "command", "command": "true", "refresh_only": True, "environment": {"P": "\ud800"}},
     "resource 'c': field 'environment.P' is not valid Unicode text"),
    ({"id": "s", "driver": "sysctl", "settings": {"net.ipv4.ip_forward": "1\rnet.ipv4.conf.all.rp_filter = 1"}},
     "resource 's': field 'settings.net.ipv4.ip_forward' must not contain control characters"),
])
def test_arguments_and_values_a_process_or_file_cannot_hold_are_refused(registry, resource, message):
    assert message in refusal(registry, doc(resource))


def test_file_content_that_utf8_cannot_hold_is_refused(registry):
    message = refusal(registry, doc({"id": "f", "driver": "file", "path": "/etc/neutron/f", "content": "a\ud800"}))
    assert message == "resource 'f': field 'content' is not valid Unicode text (a lone surrogate at offset 1)"


@pytest.mark.parametrize("suffix, text", [(".yaml", "generation: " + "9" * 5000),
                                          (".json", '{"g": ' + "9" * 5000 + "}")])
def test_numbers_too_long_for_python_are_refused_clearly(tmp_path, suffix, text):
    path = tmp_path / f"long{suffix}"
    path.write_text(text)
    with pytest.raises(InvalidDocument, match=r"a value cannot be read \(Exceeds the limit \(4300 digits\)"):
        load_file(path)


def test_an_owner_of_5000_digits_is_refused_clearly(registry):
    assert "field 'owner' must be a numeric id from 0 to 4294967294" in refusal(registry, doc(ini(owner="9" * 5000)))


def test_numbers_larger_than_64_bits_are_refused(tmp_path):
    path = tmp_path / "hex.yaml"
    path.write_text("generation: 0x" + "f" * 5000 + "\n")
    with pytest.raises(InvalidDocument, match=r"a number larger than 4096 bits \(20000 bits\)"):
        load_file(path)
