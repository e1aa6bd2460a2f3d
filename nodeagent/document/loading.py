"""Reading documents from untrusted text: YAML and JSON with limits on size, aliases and depth.

Every document the agent, the coordinator or the CLI reads goes through here, so a
460-byte alias bomb or a 100,000-level nesting is refused at once with a clear
message instead of eating gigabytes or raising a RecursionError.

PyYAML's SafeLoader refuses arbitrary objects but not expansion: ``&a [*a, *a]``
nine levels deep is a billion leaves once validated. The loader below counts
aliases and nesting while composing, then the expanded size of the result.

Role renders (``fast``: a thousand texts in a fleet-wide change) are scanned, parsed and composed by libyaml,
PyYAML's own C binding, about seven times faster, then checked for the same limits and constructed by the same
Python code; a text libyaml refuses, or over a limit, is read again by the pure loader, so every error is
worded as it always was, and so is a text with what libyaml reads otherwise (``_LIBYAML_TAKES_MORE``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

try:
    from yaml._yaml import CParser
except ImportError:  # PyYAML built without libyaml: the pure loader reads every text
    CParser = None

from nodeagent.kit.errors import InvalidDocument, preview

MAX_BYTES = 8 * 1024 * 1024  # a node's whole document; the biggest real one is about 40 KB
MAX_DEPTH = 32               # a document nests about 7 deep (resources, settings, section, key, values)
MAX_ALIASES = 100            # YAML anchors are a convenience; a bomb needs many
MAX_NODES = 200_000          # values once aliases are expanded
MAX_BITS = 4096              # a bigger integer cannot even be printed (Python's 4300-digit limit); fields check ranges


class _UniqueKeys:
    """What both loaders add to PyYAML's constructor: each key once in a mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        """A mapping whose keys are each written once: YAML says a key is unique, PyYAML keeps the last."""
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue  # a merge (<<) may be overridden by the mapping's own keys, as YAML means it
            key = self.construct_object(key_node)
            try:
                first = seen.get(key)
            except TypeError:  # unhashable: PyYAML refuses it below
                continue
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {preview(key)} (first on line {first + 1}, again on line "
                    f"{key_node.start_mark.line + 1}): which one should win?", key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep)


class _LimitedLoader(_UniqueKeys, yaml.SafeLoader):
    """SafeLoader that refuses deep nesting and many aliases while it composes."""

    aliases = depth = nodes = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise _Refused(f"more than {MAX_ALIASES} YAML aliases (an alias bomb?)", self.peek_event())
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _Refused(f"more than {MAX_NODES} values", self.peek_event())
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _Refused(f"nested deeper than {MAX_DEPTH} levels", self.peek_event())
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


# A document is JSON's types only: it is signed as JSON, cached as JSON and sent as JSON. An unquoted
# 2024-01-01 stays a string; explicit tags that make dates, bytes or sets are refused.
_LimitedLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}


def _refuse_tag(loader: _LimitedLoader, node: yaml.Node) -> None:
    raise yaml.constructor.ConstructorError(None, None, f"YAML tag {node.tag.replace('tag:yaml.org,2002:', '!!')} "
                                            "is not allowed (strings, numbers, booleans, null, lists and "
                                            "mappings only)", node.start_mark)


for _tag in ("timestamp", "binary", "set", "omap", "pairs"):
    _LimitedLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _refuse_tag)


if CParser is not None:
    class _FastLoader(_UniqueKeys, CParser, yaml.constructor.SafeConstructor, yaml.resolver.Resolver):
        """``_LimitedLoader`` with libyaml's scanner, parser and composer (PyYAML's CSafeLoader: libyaml nests
        at most 1,000 deep), then the same limits checked on what it composed, the same resolver and the same
        constructor. A text over a limit raises; the pure loader then says which limit, and where."""

        yaml_implicit_resolvers = _LimitedLoader.yaml_implicit_resolvers
        yaml_constructors = _LimitedLoader.yaml_constructors

        def __init__(self, stream: str):
            CParser.__init__(self, stream)
            yaml.constructor.SafeConstructor.__init__(self)
            yaml.resolver.Resolver.__init__(self)

        def get_single_data(self) -> Any:
            node = self.get_single_node()
            if node is None:
                return None
            if not _within_limits(node):
                raise _Refused("over a limit", None)
            return self.construct_document(node)


def _within_limits(root: yaml.Node) -> bool:
    """Whether composing ``root`` stayed within what ``_LimitedLoader.compose_node`` counts: the composer's
    visits in document order, where a node met again is an alias (only an alias gives a node twice)."""
    seen: set[int] = set()
    values = aliases = 0
    pending = [(root, 1)]
    while pending:
        node, depth = pending.pop()
        values += 1
        if values > MAX_NODES or depth > MAX_DEPTH:
            return False
        if id(node) in seen:
            aliases += 1
            if aliases > MAX_ALIASES:
                return False
            continue
        seen.add(id(node))
        if node.id == "sequence":
            pending += [(item, depth + 1) for item in reversed(node.value)]
        elif node.id == "mapping":
            pending += [(item, depth + 1) for pair in reversed(node.value) for item in reversed(pair)]
    return True


class _Refused(Exception):
    def __init__(self, problem: str, event: Any):
        mark = getattr(event, "start_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        super().__init__(where + problem)


def loads(text: str | bytes, source: str, as_json: bool = False, fast: bool = False) -> Any:
    """Decode a YAML (or JSON) text; InvalidDocument naming ``source`` when it is malformed or too big.
    ``fast``: scanned by libyaml (the same values, the same errors)."""
    if len(text) > MAX_BYTES:
        raise InvalidDocument(f"{source}: {len(text)} bytes, more than the {MAX_BYTES} a document may have")
    if isinstance(text, bytes):
        text = _decode(text, source)
    try:
        value = json.loads(text) if as_json else _load_yaml(text, fast)
    except _Refused as exc:
        raise InvalidDocument(f"{source}: {exc}") from None
    except RecursionError:
        raise InvalidDocument(f"{source}: nested deeper than {MAX_DEPTH} levels") from None
    except json.JSONDecodeError as exc:
        raise InvalidDocument(f"{source}: line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except (ValueError, IndexError) as exc:  # a number of more than 4300 digits; "!!float" on nothing
        raise InvalidDocument(f"{source}: a value cannot be read ({str(exc).split(':')[0]})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise InvalidDocument(f"{source}: {where}{getattr(exc, 'problem', None) or exc}") from None
    check_shape(value, source)
    return value


def load_file(path: str | Path) -> Any:
    """A document file: JSON when it ends in .json, else YAML (of which JSON is nearly a subset)."""
    path = Path(path)
    try:
        with open(path, "rb") as stream:
            data = stream.read(MAX_BYTES + 1)
    except OSError as exc:
        raise InvalidDocument(f"{path}: {exc.strerror or exc}") from None
    if len(data) > MAX_BYTES:
        raise InvalidDocument(f"{path}: more than the {MAX_BYTES} bytes a document may have")
    return loads(data, str(path), as_json=path.suffix == ".json")


def check_shape(value: Any, source: str) -> None:
    """Refuse values nested too deep, too big once shared parts are counted each time, or recursive.

    Also used on documents that arrive already decoded (RPC payloads, the cache).
    """
    sizes: dict[int, tuple[int, int]] = {}  # id of a container -> (values, characters) it expands to
    visiting: set[int] = set()

    def size(item: Any, depth: int) -> tuple[int, int]:
        if not isinstance(item, (dict, list, tuple)):
            if isinstance(item, int) and item.bit_length() > MAX_BITS:  # 0xfff... of 5000 digits: too big to print
                raise InvalidDocument(f"{source}: a number larger than {MAX_BITS} bits ({item.bit_length()} bits)")
            return 1, len(item) if isinstance(item, str) else 0
        if depth > MAX_DEPTH:
            raise InvalidDocument(f"{source}: nested deeper than {MAX_DEPTH} levels")
        key = id(item)
        if key in sizes:
            return sizes[key]
        if key in visiting:
            raise InvalidDocument(f"{source}: a value contains itself (recursive YAML alias)")
        visiting.add(key)
        children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
        nodes, characters = 1, 0
        for child in children:
            child_nodes, child_characters = size(child, depth + 1)
            nodes, characters = nodes + child_nodes, characters + child_characters
            if nodes > MAX_NODES:
                raise InvalidDocument(f"{source}: more than {MAX_NODES} values once aliases are expanded")
            if characters > MAX_BYTES:
                raise InvalidDocument(f"{source}: more than {MAX_BYTES} characters of text once aliases "
                                      "are expanded")
        visiting.discard(key)
        sizes[key] = nodes, characters
        return nodes, characters

    size(value, 0)


# What libyaml reads and PyYAML refuses (found by feeding both random texts): a tab as a separator (``a:\tb``),
# a comment right after a block scalar's indicator (``|#``), a question mark before a space inside a flow
# collection (``[why? not]``); a byte order mark inside the text, which libyaml skips and PyYAML keeps; an
# empty node with a tag (``a: !``: '' to libyaml, None to PyYAML). A text with any of them (any "? " at all,
# any tag) is read by the pure loader.
_LIBYAML_TAKES_MORE = re.compile(r"\t|[|>][-+0-9]*#|\?(\s|$)|\ufeff|(^|[\s\[\]{},])!")


def _load_yaml(text: str, fast: bool = False) -> Any:
    if fast and CParser is not None and not _LIBYAML_TAKES_MORE.search(text):
        try:
            return _read(_FastLoader, text)
        except Exception:  # refused: the pure loader says why, in its own words and positions
            pass
    return _read(_LimitedLoader, text)


def _read(loader_class: type, text: str) -> Any:
    loader = loader_class(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def _decode(data: bytes, source: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidDocument(f"{source}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})"
                              ) from None
