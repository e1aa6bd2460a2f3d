"""Fuzzing with hypothesis: the strategies and the properties, shared by the short CI run
(tests/unit/test_fuzz.py) and the long one (benchmarks/fuzz.py).

Properties:
* documents (decoded values, YAML text, nearly valid documents): parsing gives a Document or an
  InvalidDocument of one bounded line, never another exception; applying a document under a scratch
  root changes nothing when it is invalid, and never meets an unexpected driver error when it is valid;
* ini text: parse then render is the identity, and setting or removing a key leaves every other line;
* RPC payloads: whatever arrives (signed or not), the agent answers or refuses, never raises, and
  changes nothing for a refused document.
"""

from __future__ import annotations

import hashlib
import json
import os
import string
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from nodeagent.kit.context import Context
from nodeagent.drivers.ini import IniFile
from nodeagent.node.engine import Engine
from nodeagent.kit.errors import InvalidDocument
from nodeagent.document.loading import loads
from nodeagent.document.model import parse_document
from nodeagent.document.registry import DriverRegistry

FILE_DRIVERS = ("ini", "file", "symlink")  # the only ones a fuzzed document may apply (no kernel, no commands)

# -- strategies ---------------------------------------------------------------------------------

NASTY = st.sampled_from(["", " ", "\r", "\n", "\r\n", "\x00", "\x85", "\u2028", "\ud800", "[", "]", "=", ":", "#",
                         ";", "..", "/", "/etc/shadow", "../../etc/shadow", "*", "&a", "%", "\t", "\\", '"', "'",
                         "x" * 300, "-1", "0640", "true", "null", "9" * 5000])
TEXT = st.one_of(st.text(max_size=20), NASTY, st.text(alphabet=string.printable, max_size=40))
SCALAR = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70),
                   st.floats(allow_nan=True), TEXT)
VALUE = st.recursive(SCALAR, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                     st.dictionaries(TEXT, inner, max_size=4)), max_leaves=20)

PATHS = st.one_of(st.sampled_from(["/etc/neutron/neutron.conf", "/etc/neutron/plugin.ini", "/etc/nova/nova.conf",
                                   "/etc/neutron/plugins/ml2/ml2_conf.ini", "/etc/neutron/a b.conf"]),
                  st.builds(lambda s: "/etc/neutron/" + s, TEXT), TEXT)
KEY = st.one_of(st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,10}", fullmatch=True), TEXT)
SETTINGS = st.dictionaries(st.one_of(st.sampled_from(["DEFAULT", "database", "keystone_authtoken"]), TEXT),
                           st.one_of(st.dictionaries(KEY, st.one_of(SCALAR, st.lists(SCALAR, max_size=3)),
                                                     max_size=3), VALUE), max_size=3)


def _resource(index: int) -> st.SearchStrategy:
    common = {"id": st.one_of(st.just(f"r{index}"), TEXT)}
    ini = st.fixed_dictionaries({**common, "driver": st.just("ini"), "path": PATHS, "settings": SETTINGS},
                                optional={"absent": st.dictionaries(TEXT, st.lists(KEY, max_size=3), max_size=2),
                                          "permissions": st.one_of(st.sampled_from(["0640", "0600", "640"]), VALUE),
                                          "owner": st.one_of(st.integers(min_value=-5, max_value=2**40), TEXT),
                                          "sensitive": st.one_of(st.booleans(), st.lists(TEXT, max_size=2))})
    file = st.fixed_dictionaries({**common, "driver": st.just("file"), "path": PATHS},
                                 optional={"content": st.one_of(st.text(max_size=60), VALUE),
                                           "state": st.sampled_from(["present", "absent", "bogus"])})
    link = st.fixed_dictionaries({**common, "driver": st.just("symlink"), "path": PATHS,
                                  "target": st.one_of(PATHS, TEXT)},
                                 optional={"state": st.sampled_from(["present", "absent"])})
    other = st.fixed_dictionaries({**common, "driver": st.sampled_from(["sysctl", "service", "command",
                                                                        "ovs_bridge", "linux_bridge", "ethtool",
                                                                        "nosuch"])},
                                  optional={"name": TEXT, "settings": VALUE, "command": VALUE, "unless": VALUE,
                                            "interface": TEXT, "features": VALUE, "ports": VALUE, "mtu": SCALAR})
    return st.one_of(ini, file, link, other)


GOOD_PATHS = st.sampled_from(["/etc/neutron/neutron.conf", "/etc/neutron/plugin.ini", "/etc/nova/nova.conf",
                               "/etc/neutron/plugins/ml2/ml2_conf.ini", "/etc/neutron/a b.conf", "/etc/shadow",
                               "/etc/neutron/../shadow", "/etc/neutron/plugins"])
GOOD_TEXT = st.text(alphabet=string.ascii_letters + string.digits + " :/@_.-,'\"#;=[]{}%*&!|>", max_size=20)


def _good_resource(index: int) -> st.SearchStrategy:
    """Resources that are valid, or nearly (the interesting ones: they reach the drivers)."""
    common = {"id": st.just(f"r{index}"), "path": GOOD_PATHS}
    key = st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True)
    ini = st.fixed_dictionaries({**common, "driver": st.just("ini"), "settings": st.dictionaries(
        st.sampled_from(["DEFAULT", "database", "keystone_authtoken", "x y"]),
        st.dictionaries(key, st.one_of(GOOD_TEXT, st.integers(), st.booleans(), st.lists(GOOD_TEXT, min_size=1,
                                                                                         max_size=2)),
                        min_size=1, max_size=3), min_size=1, max_size=2)},
        optional={"absent": st.dictionaries(st.sampled_from(["DEFAULT", "old"]), st.lists(key, max_size=2),
                                            max_size=1),
                  "permissions": st.sampled_from(["0640", "0600", "0644"]), "owner": st.sampled_from([0, "root"])})
    file = st.fixed_dictionaries({**common, "driver": st.just("file"), "content": st.text(max_size=80)},
                                 optional={"permissions": st.sampled_from(["0640", "0600"])})
    link = st.fixed_dictionaries({**common, "driver": st.just("symlink"), "target": st.one_of(
        GOOD_PATHS, st.sampled_from(["neutron.conf", "plugins/ml2/ml2_conf.ini", "../shadow", "../../etc/shadow",
                                     "/etc/neutron", ".", "..", "../nova/nova.conf"]))},
        optional={"state": st.sampled_from(["present", "absent"])})
    return st.one_of(ini, file, link)


@st.composite
def documents(draw) -> Any:
    """Half nearly valid documents (they reach the drivers), half wild ones, sometimes anything at all."""
    if draw(st.integers(0, 9)) == 0:
        return draw(VALUE)
    count = draw(st.integers(0, 4))
    if draw(st.booleans()):
        resources = [draw(_good_resource(i)) for i in range(count)]
        for resource in resources[1:]:
            if draw(st.integers(0, 3)) == 0:
                resource["after"] = [f"r{draw(st.integers(0, count - 1))}"]
        return {"node": "n1", "generation": draw(st.integers(0, 10)), "resources": resources}
    resources = [draw(_resource(i)) for i in range(count)]
    raw: dict[str, Any] = {"node": draw(st.one_of(st.just("n1"), TEXT)),
                           "generation": draw(st.one_of(st.integers(0, 10), SCALAR)),
                           "resources": resources}
    for resource in resources:
        if draw(st.booleans()):
            resource["after" if draw(st.booleans()) else "notify"] = draw(
                st.lists(st.sampled_from([f"r{i}" for i in range(count)] + ["nosuch"]), max_size=2))
    if draw(st.booleans()):
        raw[draw(st.sampled_from(["mode", "extra"]))] = draw(st.one_of(st.sampled_from(["enforce", "monitor"]), SCALAR))
    return raw


YAML_PIECES = st.sampled_from(["node: n1\n", "generation: 1\n", "resources:\n", "- id: a\n", "  driver: ini\n",
                               "  path: /etc/neutron/x.conf\n", "  settings: {DEFAULT: {a: 1}}\n", "&a ", "*a ",
                               "[", "]", "{", "}", ": ", "- ", "!!python/object:os.system ", "!!binary ", "? ",
                               "'", '"', "\t", "\n", "  ", "%YAML 1.1\n", "--- ", "...\n", "<<: *a\n", "\\u0000",
                               "\x00", "\ufeff", "#", "|\n", ">-\n", "!!set {a, b}\n", "!!timestamp 2001-12-14\n",
                               "9" * 5000, "1e999", "0x" + "f" * 5000])
YAML_TEXT = st.one_of(st.lists(YAML_PIECES, max_size=30).map("".join), st.text(max_size=200),
                      st.binary(max_size=200))

INI_ALPHABET = "[]=:#; \t\r\n\x0b\x0c\x85\u2028abcxyz_.-0123\"'\\é"
INI_TEXT = st.one_of(st.text(alphabet=INI_ALPHABET, max_size=300),
                     st.lists(st.sampled_from(["[DEFAULT]\n", "[a]\n", "[ b ]\r\n", "k = v\n", "k=v\r", "k: v\n",
                                               "  continued\n", "\tcont\n", "#k = old\n", "; c\n", "\n", "x\n",
                                               "k = \"q\"\n", "[unclosed\n", "k = 1", "=v\n", "k\x0c= v\n"]),
                              max_size=25).map("".join))
SECTION = st.one_of(st.sampled_from(["DEFAULT", "a", "b", "new"]), st.from_regex(r"[a-z_]{1,8}", fullmatch=True))
INI_KEY = st.one_of(st.sampled_from(["k", "x", "core_plugin"]), st.from_regex(r"[a-z_][a-z0-9_.\-]{0,8}",
                                                                             fullmatch=True))
INI_VALUE = st.text(alphabet=string.ascii_letters + string.digits + " =:#;[]/'\"", max_size=12)

# -- properties ---------------------------------------------------------------------------------


def snapshot(root: Path) -> dict[str, str]:
    found = {}
    for directory, names, filenames in os.walk(root):
        for name in names + filenames:
            path = Path(directory, name)
            if path.is_symlink():
                found[str(path)] = "-> " + os.readlink(path)
            elif path.is_file():
                found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest() + oct(path.stat().st_mode)
            else:
                found[str(path)] = "dir"
    return found


def check_one_line(exc: Exception) -> None:
    message = str(exc)
    assert message and "\n" not in message and len(message) <= 700, message


def check_document(raw: Any, registry: DriverRegistry, root: Path) -> str:
    """Parse, preflight and apply ``raw`` under ``root`` as ``nodeagent apply`` does; return the outcome."""
    before = snapshot(root)
    engine = Engine(registry, Context(root=root))
    try:
        document = parse_document(raw, registry)
        engine.preflight(document)
    except InvalidDocument as exc:
        check_one_line(exc)
        assert snapshot(root) == before, "an invalid document changed files"
        return "invalid"
    if any(r.driver not in FILE_DRIVERS for r in document.resources):
        return "valid (not applied: touches the kernel or runs commands)"
    result = engine.reconcile(document)
    for item in result.resources:
        assert not (item.error or "").startswith("unexpected"), item.error
        if item.error:
            assert "\n" not in item.error
    return "applied"


def check_yaml_text(text: str | bytes) -> str:
    try:
        value = loads(text, "fuzz")
    except InvalidDocument as exc:
        check_one_line(exc)
        return "invalid"
    json.dumps(value)  # documents are signed, cached and sent as JSON
    return "loaded"


def _others(ini: IniFile, managed: tuple[str, str]) -> list[str]:
    return [line.rstrip("\r\n") for e in ini.entries if (e.section, e.key) != managed for line in e.lines]


def _is_subsequence(small: list[str], big: list[str]) -> bool:
    iterator = iter(big)
    return all(any(item == other for other in iterator) for item in small)


def check_ini_round_trip(text: str, section: str, key: str, values: list[str]) -> str:
    """Identity on unchanged files; after a set and a remove, only the managed lines (and a new header) differ."""
    parsed = IniFile.parse(text)
    assert parsed.render() == text
    before = _others(parsed, (section, key))
    if values:
        parsed.set(section, key, values)
    else:
        parsed.remove(section, key)
    after_text = parsed.render()
    again = IniFile.parse(after_text)
    # read back whole: a value oslo.config would strip or unquote is written inside quotes
    assert again.values(section, key) == values, (after_text, again.values(section, key))
    after = _others(again, (section, key))
    assert _is_subsequence(before, after), (before, after)
    extra = list(after)
    for line in before:
        extra.remove(line)
    assert set(extra) <= {"", f"[{section}]"}, extra
    return "set" if values else "removed"



# -- RPC payloads -------------------------------------------------------------------------------

@st.composite
def rpc_payloads(draw) -> tuple[str, Any, bool]:
    """(method, message, signed): junk, or a payload signed with the coordinator's key (made valid-looking
    often enough to reach the document checks). Only file resources are kept in signed documents."""
    method = draw(st.sampled_from(["apply_state", "plan_state"]))
    if draw(st.integers(0, 3)) == 0:
        return method, draw(st.one_of(VALUE, st.fixed_dictionaries({"payload": VALUE, "signature": VALUE,
                                                                      "key": VALUE}))), False
    document = draw(documents())
    if isinstance(document, dict) and isinstance(document.get("resources"), list):
        document["resources"] = [r for r in document["resources"]
                                 if isinstance(r, dict) and r.get("driver") in FILE_DRIVERS]
    payload = {"kind": draw(st.sampled_from(["document", "document", "bogus"])), "document": document,
               "issued_at": draw(st.one_of(st.just("now"), st.floats(allow_nan=True), TEXT, st.none()))}
    if draw(st.booleans()):
        payload[draw(TEXT)] = draw(VALUE)
    return method, payload, True


class RpcTarget:
    """An agent (not started: no broker) with a scratch root, and the key its coordinator signs with."""

    def __init__(self, directory: Path, state_dir: Path | None = None):
        import time

        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        from nodeagent.cli import config

        from nodeagent.wire import trust
        from nodeagent.node.agent import Agent
        from nodeagent.wire.rpc import AgentEndpoint

        self.key = Ed25519PrivateKey.generate()
        (directory / "coordinator.pub").write_text(trust.public_text(self.key.public_key()))
        self.root = directory / "root"
        self.root.mkdir()
        # oslo.messaging's in-process "fake" driver: notifications of refusals go nowhere near a broker.
        (directory / "agent.conf").write_text("[DEFAULT]\ntransport_url = fake:/\n")
        conf = config.make_conf([str(directory / "agent.conf")], with_messaging=True)
        for name, value in {"host": "n1", "state_dir": str(state_dir or directory / "state"), "root": str(self.root),
                            "coordinator_public_key": str(directory / "coordinator.pub"), "systemctl": "false"}.items():
            conf.set_override(name, value)
        self.agent = Agent(conf)
        self.agent.prepare()  # its keys and spool; not started: no thread, no broker
        self.endpoint = AgentEndpoint(self.agent)
        self.trust, self.time = trust, time
        self.generation = 0

    def sealed_document(self, generation: int, debug: str) -> dict[str, Any]:
        """A signed document of one ini resource (``conf``) setting ``[DEFAULT] debug``, encrypted for the node."""
        document = {"node": "n1", "generation": generation, "resources": [
            {"id": "conf", "driver": "ini", "path": "/etc/neutron/neutron.conf",
             "settings": {"DEFAULT": {"debug": debug}}}]}
        return self.trust.seal(self.encrypted({"kind": "document", "document": document,
                                               "issued_at": self.time.time()}), self.key)

    def encrypted(self, payload: dict[str, Any]) -> dict[str, Any]:
        """A document's payload as the coordinator sends it, encrypted for the node (one in clear is refused
        from the wire), so that the fuzzed document itself is what gets checked."""
        from nodeagent.wire import box

        document = payload.get("document")
        if payload.get("kind") != "document" or not isinstance(document, dict):
            return payload
        node, generation = document.get("node"), document.get("generation")
        node = node if isinstance(node, str) else "n1"
        encrypted = box.encrypt_for(self.agent.channel.box_keys[0].public_key(), document,
                                    f"{node}:{generation}".encode())
        return {**{k: v for k, v in payload.items() if k != "document"}, "node": node, "generation": generation,
                "encrypted": encrypted}

    def check(self, method: str, message: Any, signed: bool) -> str:
        if signed:
            document = message.get("document")
            if isinstance(document, dict) and type(document.get("generation")) is int:
                self.generation += 1  # newer than what the agent holds, so the document itself is checked
                document["generation"] = self.generation
            if message.get("issued_at") == "now":
                message["issued_at"] = self.time.time()
            try:
                message = self.trust.seal(self.encrypted(message), self.key)
            except ValueError:  # a lone surrogate cannot be signed (nor sent by a coordinator): junk then
                message = {"payload": message, "signature": "AAAA", "key": "AAAA"}
        before = snapshot(self.root)
        if method == "apply_state":
            taken = self.agent.worker.take(message, "a fuzzed push")
            if not taken:
                assert snapshot(self.root) == before, "a refused document changed files"
            return "taken" if taken else "refused"
        answer = getattr(self.endpoint, method)({}, message)
        assert snapshot(self.root) == before, f"{method} changed files"
        if isinstance(answer, dict) and ("refused" in answer or answer.get("kind") == "rejection"):
            return "refused"
        return "answered"


@st.composite
def reports(draw) -> tuple[str, Any, bool]:
    """(method, message, signed) for the coordinator: junk, or reports signed by an enrolled node's key
    whose fields (status, health, facts, events, drift records) are anything an agent could send."""
    method = draw(st.sampled_from(["report_state", "report_state", "fetch_state"]))
    if draw(st.integers(0, 3)) == 0:
        return method, draw(st.one_of(VALUE, st.fixed_dictionaries({"payload": VALUE, "signature": VALUE,
                                                                      "key": VALUE}))), False
    drift = st.fixed_dictionaries({}, optional={name: SCALAR for name in (
        "resource", "driver", "generation", "state", "error", "seen_at", "fixed_at")} | {"changes": VALUE})
    event = st.one_of(VALUE, st.fixed_dictionaries({}, optional={
        "id": TEXT, "type": TEXT, "detail": VALUE, "at": SCALAR, "drift": st.one_of(VALUE, drift)}))
    status = st.one_of(VALUE, st.fixed_dictionaries({}, optional={
        "generation": SCALAR, "counts": st.one_of(VALUE, st.dictionaries(TEXT, SCALAR, max_size=3)),
        "drifted": VALUE, "failed": VALUE, "contested": VALUE}))
    payload = draw(st.fixed_dictionaries({"node": st.one_of(st.just("fz1"), TEXT)}, optional={
        "sent_at": SCALAR, "status": status, "health": VALUE, "facts": VALUE, "events": st.one_of(
            VALUE, st.lists(event, max_size=3))}))
    return method, payload, True


class CoordinatorTarget:
    """A coordinator on a SQLite inventory in ``directory``, auto-accepting, with one node key."""

    def __init__(self, directory: Path):
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        from nodeagent.cli import config

        from nodeagent.wire import trust
        from nodeagent.fleet.coordinator import Coordinator
        from nodeagent.wire.rpc import CoordinatorEndpoint

        (directory / "coordinator.conf").write_text(
            f"[DEFAULT]\ntransport_url = fake:/\n[coordinator]\nstate_dir = {directory}\nauto_accept = true\n")
        conf = config.make_conf([str(directory / "coordinator.conf")], with_messaging=True)
        self.coordinator = Coordinator(conf)
        self.coordinator.set_up()
        self.endpoint = CoordinatorEndpoint(self.coordinator.reports, self.coordinator.channel)
        self.key = Ed25519PrivateKey.generate()
        self.trust = trust

    def check(self, method: str, message: Any, signed: bool) -> str:
        if signed:
            try:
                message = self.trust.seal(message, self.key)
            except ValueError:
                message = {"payload": message, "signature": "AAAA", "key": "AAAA"}
        reply = getattr(self.endpoint, method)({}, message)
        if isinstance(reply, dict) and reply.get("kind") == "rejection":  # not accepted: never signed
            assert "signature" not in reply and isinstance(reply.get("reason"), str), reply
            return "rejected"
        # every other answer is a reply signed by the coordinator, naming the request it answers
        assert isinstance(reply, dict) and self.trust.unseal(reply, self.coordinator.channel.key.public_key())
        answer = reply["payload"]["answer"]
        if method == "fetch_state":
            assert answer is None or isinstance(answer, dict)
            return "document" if answer else "nothing"
        assert isinstance(answer, dict) and answer.get("status"), answer
        return str(answer["status"])
