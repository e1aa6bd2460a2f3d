"""The ``ini`` driver: options in oslo.config files, every other line left as it was.

Example::

    - id: neutron-conf
      driver: ini
      path: /etc/neutron/neutron.conf
      permissions: "0640"
      settings:
        DEFAULT: {core_plugin: ml2, service_plugins: router}
        keystone_authtoken: {password: s3cret}
      absent:
        DEFAULT: [verbose]
      sensitive: [keystone_authtoken.password]
      unchecked: [ml2_acme]           # a vendor's section the option checks do not know: a warning, not an error

A list value writes the key once per value, as oslo.config reads multi-valued options. ``unchecked`` names
sections (SECTION) or keys (SECTION.KEY) of ``settings`` that ``nodeagent lint`` and the gates before a push or
an apply leave unchecked; the driver writes them like any other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from nodeagent.kit import files, fields
from nodeagent.kit.context import Context
from nodeagent.kit.driver import Driver
from nodeagent.kit.result import Change
from nodeagent.kit.errors import InvalidResource, preview

_SECTION = re.compile(r"^\[([^\]\n]+)\]\s*$")
_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")
# Lines as oslo.config reads them (a text-mode file: universal newlines), not as str.splitlines() cuts
# them: a form feed or U+2028 inside a value does not end the line.
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")
_COMMENTED = re.compile(r"^#\s*([A-Za-z0-9_][A-Za-z0-9_.\-]*)\s*[=:]")  # a sample's default: "#debug = false"


@dataclass
class _Entry:
    """One logical line of the file: an option (with its continuation lines) or anything else."""

    lines: list[str]
    section: str | None = None
    key: str | None = None
    value: str | None = None


@dataclass
class IniFile:
    """An ini file as a list of entries, so that rendering it back gives the same bytes.

    Written by hand: configparser drops comments and refuses repeated keys, and
    configupdater refuses repeated keys too; oslo.config files need both kept.
    """

    entries: list[_Entry] = field(default_factory=list)
    _values: dict[tuple[str | None, str], list[str]] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def parse(cls, text: str) -> "IniFile":
        entries: list[_Entry] = []
        section: str | None = None
        for line in _LINE.findall(text):
            stripped = line.strip()
            previous = entries[-1] if entries else None
            if line[:1] in (" ", "\t") and stripped and previous is not None and previous.key is not None:
                previous.lines.append(line)  # continuation of a multi-line value, as oslo.config reads it
                previous.value = f"{previous.value}\n{stripped}"
                continue
            header = _SECTION.match(stripped)
            if header:
                section = header.group(1).strip()
                entries.append(_Entry([line], section))
                continue
            if stripped and stripped[0] not in "#;" and section is not None:
                key, value = _split_option(stripped)
                if key is not None:
                    entries.append(_Entry([line], section, key, value))
                    continue
            entries.append(_Entry([line], section))
        return cls(entries)

    def render(self) -> str:
        return "".join(line for entry in self.entries for line in entry.lines)

    def values(self, section: str, key: str) -> list[str]:
        return self._index().get((section, key), [])

    def _index(self) -> dict[tuple[str | None, str], list[str]]:
        """Each option's values, read once per version of the file: looking up a key costs nothing more."""
        if self._values is None:
            self._values = {}
            for entry in self.entries:
                if entry.key is not None:
                    self._values.setdefault((entry.section, entry.key), []).append(entry.value or "")
        return self._values

    def set(self, section: str, key: str, values: list[str]) -> None:
        """Make ``key`` appear exactly once per value, where it stood before or where a reader expects it."""
        self.update({section: {key: values}}, {})

    def remove(self, section: str, key: str) -> None:
        self.update({}, {section: [key]})

    def update(self, settings: dict[str, dict[str, list[str]]], absent: dict[str, list[str]]) -> None:
        """Set each key of ``settings`` whose values differ and remove each key of ``absent``, in one pass over
        the file (a key set or removed one at a time cost a pass each: 10,000 keys took seconds).

        A key that is there is replaced where its first line stood; a new one goes beside the sample's
        commented default (``#core_plugin = <None>``) if there is one, else after its section's last option,
        else right under the section's header; a new section is added at the end ([DEFAULT] first).
        """
        changed = {(section, key): [_Entry([f"{key} = {_quoted(value)}\n"], section, key, value) for value in wanted]
                   for section, options in settings.items() for key, wanted in options.items()
                   if self.values(section, key) != wanted}
        removed = {(section, key) for section, keys in absent.items() for key in keys}
        if not changed and not removed.intersection(self._index()):
            return
        present = set(self._index())
        anchors = self._anchors([key for key in changed if key not in present])
        entries: list[_Entry] = []
        placed: set[tuple[str | None, str]] = set()
        for index, entry in enumerate(self.entries):
            option = (entry.section, entry.key)
            if option in changed:
                if option not in placed:
                    entries += changed[option]
                    placed.add(option)
            elif option not in removed:
                entries.append(entry)
            new = [line for key in anchors.pop(index, []) for line in changed[key]]
            if new:
                self._ensure_newline(entry)
                following = self.entries[index + 1] if index + 1 < len(self.entries) else None
                if following is not None and following.lines[0][:1] in (" ", "\t") and following.lines[0].strip():
                    # An indented line after the new option would read as its continuation: a blank line ends it.
                    new.append(_Entry(["\n"], entry.section))
                entries += new
        self.entries = entries
        for section, keys in anchors.pop(None, {}).items():
            self._add_section(section, [line for key in keys for line in changed[key]])
        self._values = None

    def _anchors(self, missing: list[tuple[str, str]]) -> dict[Any, Any]:
        """Where each new key goes: the index of the entry it follows, in one look at the file; under None, the
        sections to add with their keys."""
        wanted = set(missing)
        sections: dict[str | None, dict[str, int]] = {}  # header, last option, and each commented default
        for index, entry in enumerate(self.entries):
            if entry.section is None:
                continue
            found = sections.setdefault(entry.section, {})
            found.setdefault("", index)  # the section's first entry: its header
            if entry.key is not None:
                found[" last"] = index
            commented = _COMMENTED.match(entry.lines[0])
            if commented and (entry.section, commented.group(1)) in wanted:
                found.setdefault(commented.group(1), index)
        anchors: dict[Any, Any] = {}
        for section, key in missing:
            found = sections.get(section)
            if found is None:
                anchors.setdefault(None, {}).setdefault(section, []).append((section, key))
                continue
            at = found.get(key, found.get(" last", found[""]))
            anchors.setdefault(at, []).append((section, key))
        return anchors

    def _add_section(self, section: str, new: list[_Entry]) -> None:
        header = _Entry([f"[{section}]\n"], section)
        first_header = next((i for i, e in enumerate(self.entries) if e.key is None and e.section is not None
                             and _SECTION.match(e.lines[0].strip())), None)
        if section == "DEFAULT" and first_header is not None:
            # oslo.config's samples open with [DEFAULT]; keep it first.
            self.entries[first_header:first_header] = [header, *new, _Entry(["\n"], section)]
            return
        if self.entries:
            self._ensure_newline(self.entries[-1])
            if self.entries[-1].lines[-1].strip():
                self.entries.append(_Entry(["\n"], self.entries[-1].section))
        self.entries += [header, *new]

    @staticmethod
    def _ensure_newline(entry: _Entry) -> None:
        if not entry.lines[-1].endswith("\n"):
            entry.lines[-1] += "\n"


def _quoted(value: str) -> str:
    """A value oslo.config would change (spaces around it stripped, one pair of matching quotes removed),
    written inside double quotes, which it removes: what it reads is ``value`` again."""
    if value != value.strip() or (value[:1] in ("'", '"') and value[:1] == value[-1:]):
        return f'"{value}"'
    return value


def _split_option(line: str) -> tuple[str | None, str | None]:
    """Split at the first '=' or ':' and unquote, as oslo.config's parser does."""
    positions = [p for p in (line.find("="), line.find(":")) if p > 0]
    if not positions:
        return None, None
    cut = min(positions)
    key, value = line[:cut].strip(), line[cut + 1:].strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
    return key, value


def _unchecked(marks: Any, settings: dict[str, dict[str, list[str]]]) -> list[str]:
    """The sections and keys the option checks leave alone: each must name something ``settings`` writes."""
    if not isinstance(marks, list) or not all(isinstance(m, str) for m in marks):
        raise InvalidResource("unchecked", f"must be a list of SECTION or SECTION.KEY names, got {preview(marks)}")
    for mark in marks:
        section, dot, key = mark.partition(".")
        if section not in settings or (dot and key not in settings[section]):
            raise InvalidResource("unchecked", f"names '{mark}', which 'settings' does not write "
                                  "(write SECTION, or SECTION.KEY)")
    return list(marks)


class IniDriver(Driver):
    """Options of an oslo.config style ini file."""

    phase = 10

    def validate(self, spec: dict[str, Any]) -> dict[str, Any]:
        fields.check_fields(spec, "ini", ["path"], ["settings", "absent", "unchecked", *fields.FILE_FIELDS])
        settings = _mapping(spec, "settings")
        absent = _mapping(spec, "absent")
        if not settings and not absent:
            raise InvalidResource("settings", "is required (or 'absent'): an ini resource must manage some key")
        normalised: dict[str, dict[str, list[str]]] = {}
        for section, options in settings.items():
            _check_section(section, "settings")
            if not isinstance(options, dict):
                raise InvalidResource(f"settings.{section}",
                                      f"must be a mapping of option to value, got {preview(options)}")
            normalised[section] = {}
            for key, value in options.items():
                where = f"settings.{section}.{key}"
                _check_key(key, where)
                normalised[section][key] = _values(value, where)
        removed: dict[str, list[str]] = {}
        for section, keys in absent.items():
            _check_section(section, "absent")
            if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
                raise InvalidResource(f"absent.{section}", f"must be a list of option names, got {preview(keys)}")
            for key in keys:
                _check_key(key, f"absent.{section}")
                if key in normalised.get(section, {}):
                    raise InvalidResource(f"absent.{section}", f"names '{key}', which 'settings' also sets")
            removed[section] = list(keys)
        return {"path": fields.absolute_path(spec, "path"), "settings": normalised, "absent": removed,
                "unchecked": _unchecked(spec.get("unchecked", []), normalised), **fields.file_metadata(spec)}

    def paths(self, spec: dict[str, Any]) -> list[tuple[str, bool]]:
        return [(spec["path"], True)]

    def secret_values(self, spec: dict[str, Any], field: str) -> list[str]:
        section, _, key = field.partition(".")
        options = spec["settings"].get(section)
        removed = spec["absent"].get(section, [])
        if key in removed or (not key and options is None and removed):
            return []  # a key to remove: nothing to scrub, but its old value is masked in every change
        if options is None or (key and key not in options):
            raise InvalidResource("sensitive", f"names '{field}', which is neither a setting nor an absent key "
                                  "of this resource (write SECTION.KEY, or SECTION for a whole section)")
        chosen = [options[key]] if key else list(options.values())
        return [value for values in chosen for value in values]

    def observe(self, spec: dict[str, Any], ctx: Context) -> tuple[files.FileState, IniFile]:
        found, text = files.read_text(ctx.host_path(spec["path"]))
        return found, IniFile.parse(text)

    def diff(self, spec: dict[str, Any], observed: tuple[files.FileState, IniFile]) -> list[Change]:
        found, ini = observed
        changes = []
        for section, options in spec["settings"].items():
            for key, wanted in options.items():
                current = ini.values(section, key)
                if current != wanted:
                    changes.append(Change(f"{section}.{key}", _shown(current), _shown(wanted)))
        for section, keys in spec["absent"].items():
            for key in keys:
                current = ini.values(section, key)
                if current:
                    changes.append(Change(f"{section}.{key}", _shown(current), None))
        return changes + files.metadata_changes(spec, found)

    def apply(self, spec: dict[str, Any], changes: list[Change], ctx: Context) -> None:
        path = ctx.host_path(spec["path"])
        found, ini = self.observe(spec, ctx)
        ini.update(spec["settings"], spec["absent"])
        files.converge(path, found, ini.render().encode(), spec, ctx.backup_path(spec["path"]))


def _mapping(spec: dict[str, Any], name: str) -> dict[str, Any]:
    value = spec.get(name, {})
    if not isinstance(value, dict):
        raise InvalidResource(name, f"must be a mapping of section to options, got {preview(value)}")
    return value


def _check_section(section: Any, where: str) -> None:
    if not isinstance(section, str) or not section.strip() or any(c in section for c in "[]"):
        raise InvalidResource(where, f"has an invalid section name {preview(section)}")
    fields.single_line(section, where)


def _check_key(key: Any, where: str) -> None:
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise InvalidResource(where, f"has an invalid option name {preview(key)}")


def _values(value: Any, where: str) -> list[str]:
    items = value if isinstance(value, list) else [value]
    if not items:
        raise InvalidResource(where, "must not be an empty list (list the key under 'absent' to remove it)")
    for item in items:
        if not fields.is_scalar(item):
            raise InvalidResource(where, f"must be a single-line value or a list of them, got {preview(item)}")
    return [fields.single_line(fields.scalar_text(item), where) for item in items]


def _shown(values: list[str]) -> str | None:
    return None if not values else values[0] if len(values) == 1 else ", ".join(values)
