"""Role renders are read by libyaml (``loading.loads(..., fast=True)``): the same values and the same errors,
word for word, as the pure loader every other document goes through."""

from __future__ import annotations

import random

import pytest

from nodeagent.document import loading
from nodeagent.fleet.roles import Roles, role_values
from nodeagent.kit.errors import InvalidDocument
from tests.conftest import REPO
from tests.unit.test_bad_input import ALIAS_BOMB
from tests.unit.test_roles import FACTS, HOSTILE, NODE_VARS, SECRETS

VARIABLES = [{}, {"overlay": "gre"}, {"mechanism": "linuxbridge", "openstack_release": "2024.2"},
             {"network_option": "provider", "mechanism": "linuxbridge", "openstack_release": "2024.2"},
             {"distribution": "rdo", "openstack_release": "2025.2", "datapath_type": "netdev", "manage_nova": "true",
              "provider_network_cidr": "198.19.67.0/24", "provider_network_gateway": "198.19.67.1",
              "probes": "gw=ping:198.18.0.1,api=tcp:controller:9696", "rollback_timeout": "30"}]


def test_libyaml_is_there():
    assert loading.CParser is not None  # else every render takes the pure loader, five times slower


@pytest.mark.parametrize("variables", VARIABLES)
@pytest.mark.parametrize("hostile", ["", *HOSTILE])
def test_every_role_reads_the_same_with_libyaml(variables, hostile):
    roles = Roles(REPO / "etc" / "roles")
    secrets = {**SECRETS, "RABBIT_PASS": hostile or SECRETS["RABBIT_PASS"]}
    for role in roles.names():
        text = roles.text("n1", role, role_values({**variables, **NODE_VARS}), secrets, FACTS)
        fast = loading.loads(text, "role", fast=True)
        assert fast == loading.loads(text, "role") and fast["resources"]


@pytest.mark.parametrize("text", [
    "a: 1\na: 2\n", "{a: 1, a: 2}", "a: [1, 2\n", "a: 'open\n", "a:\tb\n\tc: d\n", "- a\nb: c\n", "a: &x 1\nb: *y\n",
    "a: &a [*a]\n", "x: !!binary aGk=\n", "x: !!timestamp 2024-01-01\n", "a: &a x\nb: [" + ",".join(["*a"] * 101) + "]\n",
    "[" * 100 + "]" * 100, "a:\n" + "".join(" " * i + "b:\n" for i in range(1, 60)), ALIAS_BOMB, "--- 1\n--- 2\n",
    "a: \x07\n", "key: 1" + "0" * 5000 + "\n", "? [a]\n: b\n", "%YAML 2.0\n--- a\n", "a: b: c\n",
    # what libyaml alone takes: read by the pure loader, refused as before
    "a:\tb\n", "a: 1\t\n", "- x\t\n- y\n", "a: |#\n  x\n", "a: >-#c\n  x\n", "[null? bb ]\n",
    "{1~%YAML 1.1\n-\\n%YAML 1.1\n...#&x ? }", "#null~- \n- null'it''s'\n\ufeff\n\n  "])
def test_a_text_refused_is_refused_in_the_same_words(text):
    assert_refused_alike(text, "role 'x' for node 'n'")


def assert_refused_alike(text: str, where: str) -> None:
    """Both loaders refuse ``text``, in the same words."""
    with pytest.raises(InvalidDocument) as pure:
        loading.loads(text, where)
    with pytest.raises(InvalidDocument) as fast:
        loading.loads(text, where, fast=True)
    assert str(fast.value) == str(pure.value)


@pytest.mark.parametrize("text", [
    "2024-01-01", "a: 2024-01-01\nb: [yes, no, ~, 0x1f, 1e3, .inf, '1']\n", "a: &a {x: 1}\nb:\n  <<: *a\n  y: 2\n",
    "a: |\n  two\n  lines\n", "a: >-\n  folded\n  text\n", "a: \"esc \\x41 \\u00e9 \\t\"\n", "{}", "", "# only a comment\n",
    "\x85\ufeff",  # a byte order mark inside a text: libyaml skips it, PyYAML keeps it
    "a: what? yes\n", "a: !\n", "- ! \n- !!str\n"])  # an empty tagged node: '' to libyaml, None to PyYAML
def test_values_are_the_same(text):
    assert loading.loads(text, "x", fast=True) == loading.loads(text, "x")


@pytest.mark.parametrize("text", ["a: &a x\nb: [" + ",".join(["*a"] * 100) + "]\n", "[" * 32 + "]" * 32,
                                  "a: &a [1]\nb: &b [*a, *a]\nc: [*b, *b, *a]\n"])
def test_a_text_at_the_limits_is_read_by_both(text):
    assert loading.loads(text, "x", fast=True) == loading.loads(text, "x")


@pytest.mark.parametrize("text", ["a: &a x\nb: [" + ",".join(["*a"] * 101) + "]\n", "[" * 33 + "]" * 33])
def test_a_text_one_over_the_limits_is_refused_by_both(text):
    assert_refused_alike(text, "x")


PIECES = ["a", "b", "1", "0x1f", "1.5", "true", "~", "null", ":", ": ", "- ", "-", "\n", "\n  ", "\n    ", " ", "  ", "'",
          '"', "[", "]", "{", "}", ",", ", ", "#", " #c", "&x ", "*x", "!!str ", "!t ", "|", ">", "|-", ">+", "? ", "---",
          "...", "%YAML 1.1\n", "\\", "\\n", "\\x41", "\\u00e9", "\u00e9", "\u2028", "\x85", "@", "`", "%", "<<: ", "=",
          "2024-01-01", "\r\n", "\t", "\n- ", "\n  - ", "\n  a: ", "\n    b: ", '"x\\\n y"', "'it''s'", "\ufeff",
          "\xa0", "|2\n   x"]


SCALARS = ['"', "'", "\\", "\\x", "\\u", "\\U0001F511", "\\0", "\\e", "\\N", "\\_", "\\L", "\\ ", "\\/", "\\\n", "\n",
           "\n ", "\n  ", " ", "a", "b c", ":", ": ", "- ", "#", " #", "{", "}", "[", "]", ",", "&a ", "*a", "!", "!!int ",
           "!!float ", "!!null ", "!<tag:yaml.org,2002:str> ", "%TAG ! tag:x,2000:\n---\n", "---\n", "...\n", "0o17",
           "0b101", "+12", "-0", ".5", "1_000", "1:20", "190:20:30", "Yes", "ON", "NaN", "-.inf", "<<", "=", "~", "\u3000",
           "\x7f"]


@pytest.mark.parametrize("pieces", [PIECES, SCALARS])
def test_random_texts_read_the_same_or_are_refused_in_the_same_words(pieces):
    """Both loaders fed the same random texts (how the cases above were found): 400,000 of them agreed."""
    rng = random.Random(17)
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 14)))
        results = []
        for fast in (False, True):
            try:
                results.append(("read", loading.loads(text, "x", fast=fast)))
            except Exception as exc:  # noqa: BLE001 - whatever either raises, the other must raise it too
                results.append(("refused", type(exc).__name__, str(exc)))
        assert results[0] == results[1], text


@pytest.mark.parametrize("fast", [False, True])
def test_a_tag_its_value_cannot_take_is_a_clear_refusal(fast):
    with pytest.raises(InvalidDocument, match=r"^x: a value cannot be read"):
        loading.loads("a: !!float\n", "x", fast=fast)  # PyYAML's constructor raised IndexError through loads
