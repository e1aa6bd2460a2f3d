"""The checks: every key an ``ini`` resource writes into a service's file, against the target release.

What oslo-config-validator does (unknown keys and sections, deprecated names) and what
it does not: types, ranges and choices; the replacement of a renamed or legacy key;
the release a key left or arrives in; the file that does read a misplaced key; plugin
names the release lacks; ``[keystone_authtoken]``, whose plugin keys it skips. A value
is shown only for a known, non-secret option that the resource does not mark sensitive.

A key the release does not read may belong to a plugin installed here (``installed``: checked against the
plugin's own options), and a resource may list sections or keys as ``unchecked``: written as they are, with a
warning that says so.
"""

from __future__ import annotations

import difflib
import posixpath
from typing import Any, Iterable

from nodeagent.kit import fields
from nodeagent.optionregistry import installed, legacy, registry, values
from nodeagent.optionregistry.finding import ERROR, WARNING, Finding
from nodeagent.optionregistry.registry import Option

# Values that name plugins: free strings to oslo.config, entry-point names to the service.
PLUGIN_OPTIONS = {
    ("neutron", "DEFAULT", "core_plugin"): "neutron.core_plugins",
    ("neutron", "DEFAULT", "service_plugins"): "neutron.service_plugins",
    ("neutron", "ml2", "mechanism_drivers"): "neutron.ml2.mechanism_drivers",
    ("neutron", "ml2", "type_drivers"): "neutron.ml2.type_drivers",
    ("neutron", "ml2", "tenant_network_types"): "neutron.ml2.type_drivers",
    ("neutron", "ml2", "project_network_types"): "neutron.ml2.type_drivers",
    ("neutron", "ml2", "extension_drivers"): "neutron.ml2.extension_drivers",
    ("neutron", "DEFAULT", "interface_driver"): "neutron.interface_drivers",
    ("neutron", "securitygroup", "firewall_driver"): "neutron.agent.firewall_drivers",
    ("keystone", "token", "provider"): "keystone.token.provider",
}


def lint_document(document: Any, release: str | None = None) -> list[Finding]:
    """Findings for a document (a dict, or a parsed model.Document); ``release`` overrides its own."""
    if isinstance(document, dict):
        resources = document.get("resources") or []
        release = release or document.get("openstack_release")
    else:
        resources = [r.to_dict() for r in document.resources]
        release = release or getattr(document, "openstack_release", None)
    return lint_resources(resources, release)


def lint_resources(resources: Iterable[dict[str, Any]], release: str | None) -> list[Finding]:
    """Findings for the ini resources among ``resources``; others are not a service's files."""
    target = str(release) if release else default_release()
    found: list[Finding] = []
    checks = []
    for resource in resources:
        if not isinstance(resource, dict) or resource.get("driver") != "ini" or not isinstance(
                resource.get("path"), str) or not isinstance(resource.get("settings", {}), dict):
            continue
        file = posixpath.basename(resource["path"])
        service = registry.service_of(file)
        if service is not None:
            checks.append(_FileCheck(resource, file, service, target))
            found += checks[-1].run()
    return found + _experimental(checks)


def _experimental(checks: list["_FileCheck"]) -> list[Finding]:
    """A mechanism driver the release marks experimental ([experimental] NAME in neutron.conf) must be enabled
    there: neutron-server exits at start otherwise (neutron.common.experimental.validate_experimental_enabled,
    called by the linuxbridge mechanism driver in 2024.1 and 2024.2)."""
    enabled = {str(k) for c in checks if c.file == "neutron.conf"
               for k, v in ((c.resource.get("settings") or {}).get("experimental") or {}).items()
               if fields.scalar_text(v).lower() in ("true", "1", "yes", "on")}
    found = []
    for check in checks:
        value = ((check.resource.get("settings") or {}).get("ml2") or {}).get("mechanism_drivers")
        if check.service != "neutron" or check.release is None or value is None:
            continue
        names = {n.strip() for v in (value if isinstance(value, list) else [value])
                 for n in fields.scalar_text(v).split(",")}
        for name in sorted(names - enabled):
            if check.release.option("neutron.conf", "experimental", name):
                found.append(check.finding(ERROR, "ml2", "mechanism_drivers", f"'{name}' is experimental in "
                                           f"neutron {check.target}: neutron-server exits at start unless "
                                           f"neutron.conf sets [experimental] {name} = true"))
    return found


def default_release() -> str:
    """The newest release the data covers: what a document that names none is checked against."""
    return max(s for series in registry.available().values() for s in series)


class _FileCheck:
    """The checks of one resource's settings against one service release."""

    def __init__(self, resource: dict[str, Any], file: str, service: str, target: str):
        self.resource, self.file, self.service, self.target = resource, file, service, target
        self.id = str(resource.get("id", "?"))
        self.release = registry.load(service, target)
        self.series = registry.available()[service]
        sensitive = resource.get("sensitive", ())
        self.sensitive = sensitive if isinstance(sensitive, bool) else set(sensitive or ())
        unchecked = resource.get("unchecked")
        self.unchecked = {str(u) for u in unchecked} if isinstance(unchecked, list) else set()

    def finding(self, severity: str, section: str, key: str, message: str) -> Finding:
        return Finding(severity, self.id, self.file, section, key, message)

    def run(self) -> list[Finding]:
        if self.release is None:
            return [self.finding(WARNING, "", "", f"not checked: the option registry has no {self.service} "
                                 f"{self.target} (it covers {', '.join(self.series)})")]
        if self.file not in self.release.files:
            return [self.finding(ERROR, "", "", f"{self.service} {self.target} does not read {self.file} at all"
                                 f"{self._other_releases(lambda r: self.file in r.files)}")]
        found: list[Finding] = []
        skipped: dict[str, int] = {}  # an unchecked mark -> how many keys it let through
        for section, options in (self.resource.get("settings") or {}).items():
            if not isinstance(options, dict):
                continue
            for key, value in options.items():
                mark = next((m for m in (f"{section}.{key}", str(section)) if m in self.unchecked), None)
                if mark is not None:
                    skipped[mark] = skipped.get(mark, 0) + 1
                    continue
                items = value if isinstance(value, list) else [value]
                found += self.check(str(section), str(key), [fields.scalar_text(v) for v in items])
            found += self._auth_type(str(section), options)
        for mark, count in sorted(skipped.items()):
            section, _, key = mark.partition(".")
            found.append(self.finding(WARNING, section, key, f"not checked: the resource marks it unchecked "
                                      f"({count} key{'s' if count > 1 else ''} written as given)"))
        absent = self.resource.get("absent")
        for section, keys in (absent.items() if isinstance(absent, dict) else ()):
            for key in (keys if isinstance(keys, list) else ()):
                found += self._unmarked_secret(str(section), str(key))
        return found

    def _unmarked_secret(self, section: str, key: str) -> list[Finding]:
        """An absent key the release says holds a secret must be marked sensitive: the change that removes it
        shows the value it had, in plans, drift, events and webhooks, unless its name gives it away."""
        option = self.release.option(self.file, section, key) or self.release.renamed(self.file, section, key)
        marked = self.sensitive if isinstance(self.sensitive, bool) else bool(
            self.sensitive & {section, f"{section}.{key}"})
        if option is None or not option.secret or marked:
            return []
        return [self.finding(WARNING, section, key, f"a secret option removed without being marked sensitive: the "
                             f"value it had would show in plans, drift and events; add {section}.{key} to the "
                             "resource's sensitive list")]

    def check(self, section: str, key: str, written: list[str]) -> list[Finding]:
        release = self.release
        option = release.option(self.file, section, key)
        found = []
        reader = f"{self.service} {self.target}"
        if option is None:
            option, alias = release.renamed(self.file, section, key), True
            if option is None:  # perhaps a plugin's, installed here but not in the registry's data
                option, alias = installed.find(section, key) or (None, False)
                if option is None:
                    return [self.unknown(section, key)]
                reader = f"the installed namespace {option.namespace}"
            if alias:
                found.append(self.finding(WARNING, section, key, f"deprecated name: write [{option.section}] "
                                          f"{option.name} (the name {reader} reads)"))
        if option.for_removal:
            since = f" since {option.since}" if option.since else ""
            why = f": {option.reason}" if option.reason else ""
            found.append(self.finding(WARNING, section, key, f"deprecated for removal{since}{why}"))
        found += self._values(option, section, key, written)
        group = PLUGIN_OPTIONS.get((self.service, option.section, option.name))
        if group:
            found += [self.finding(severity, section, key, message)
                      for text in written for severity, message in self._plugins(group, option, text)]
        return found

    def _values(self, option: Option, section: str, key: str, written: list[str]) -> list[Finding]:
        """The values written against the option's type, bounds and choices."""
        found = []
        if len(written) > 1 and not option.multi:
            found.append(self.finding(ERROR, section, key, f"written {len(written)} times, but it takes one value "
                                      "(the service reads only the last; a list is one comma-separated value)"))
        for text in written:
            problem = values.problem(option, text)
            if problem:
                found.append(self.finding(ERROR, section, key, f"{self._shown(option, section, key, text)}{problem}"))
        return found

    def unknown(self, section: str, key: str) -> Finding:
        """Why the target release does not read ``[section] key`` from this file, and what to write instead."""
        release = self.release
        elsewhere = release.files_reading(section, key)
        if elsewhere:
            return self.finding(ERROR, section, key, f"{self.file} does not hold it: it is an option of "
                                f"{' and '.join(elsewhere)}, which {self.service} {self.target} reads it from")
        other = self._other_releases(
            lambda r: bool(r.files_reading(section, key) or r.renamed(self.file, section, key)))
        if other:
            return self.finding(ERROR, section, key, f"{self.service} {self.target} does not read it{other}")
        row = legacy.find(self.service, section, key)
        if row:
            return self.finding(ERROR, section, key, f"{self.service} {self.target} does not read it: {row.message()}")
        sections = release.sections(self.file)
        if section not in sections:
            owners = sorted(f for f in release.files if section in release.sections(f))
            hint = f"; it is a section of {', '.join(owners)}" if owners else _did_you_mean(section, sections, "[{}]")
            return self.finding(ERROR, section, key, f"unknown section [{section}] in {self.file}{hint}")
        names = {name for s, name in release.options(self.file) if s == section}
        hint = _did_you_mean(key, names, "{}")
        moved = sorted(s for s, name in release.options(self.file) if name == key)
        if moved:
            hint += f"; {self.file} reads {key} in " + ", ".join(f"[{s}]" for s in moved)
        return self.finding(ERROR, section, key, f"unknown option: {self.service} {self.target} does not read "
                            f"[{section}] {key} from {self.file}{hint}")

    def _other_releases(self, has: Any) -> str:
        """'removed in X (last in Y)' / 'only from X on': the releases where ``has`` holds, told from the target."""
        present = [s for s in self.series if s != self.target and has(registry.load(self.service, s))]
        if not present:
            return ""
        older = [s for s in present if s < self.target]
        newer = [s for s in present if s > self.target]
        parts = []
        if older:
            gone = next(s for s in self.series if s > older[-1])
            parts.append(f"removed in {gone} (last in {older[-1]})")
        if newer:
            parts.append(f"only from {newer[0]} on (the target is {self.target})")
        return ": " + "; ".join(parts)

    def _plugins(self, group: str, option: Option, text: str) -> list[tuple[str, str]]:
        names = [n.strip() for n in text.split(",")] if option.type == "list" else [text.strip()]
        offered = self.release.plugin_names(group)
        classes = {value.replace(":", ".") for value in offered.values()}
        problems = []
        for name in filter(None, names):
            if name in offered or name in classes or name in installed.plugin_names(group):
                continue
            gone = self._other_releases(lambda r: name in r.plugin_names(group) or name in {
                v.replace(":", ".") for v in r.plugin_names(group).values()})
            what = f"'{name}' is not a plugin {self.service} {self.target} offers for [{option.section}] {option.name}"
            if gone:
                problems.append((ERROR, f"{what}{gone} (it offers: {', '.join(sorted(offered))})"))
            elif "." in name:
                problems.append((WARNING, f"class path '{name}' is none of {self.service} {self.target}'s plugins "
                                 f"({', '.join(sorted(offered))}); check it is installed"))
            else:
                problems.append((ERROR, f"{what}{_did_you_mean(name, set(offered), '{}')} "
                                 f"(it offers: {', '.join(sorted(offered))})"))
        return problems

    def _auth_type(self, section: str, options: dict[str, Any]) -> list[Finding]:
        """keystonemiddleware loads the plugin's keys only when auth_type names the plugin."""
        if "auth_type" in options:
            return []
        plugin = sorted(k for k in options if (o := self.release.option(self.file, section, str(k))) and o.auth_plugin)
        if not plugin:
            return []
        return [self.finding(WARNING, section, "auth_type", f"{', '.join(plugin)} are read only when "
                             "auth_type = password is set in this section, and it is not")]

    def _shown(self, option: Option, section: str, key: str, text: str) -> str:
        hidden = option.secret or self.sensitive is True or section in self.sensitive or \
            f"{section}.{key}" in self.sensitive
        return "value hidden: " if hidden else f"'{text}': "


def _did_you_mean(word: str, candidates: set[str], form: str) -> str:
    close = difflib.get_close_matches(word, sorted(candidates), n=3, cutoff=0.6)
    return f"; did you mean {' or '.join(form.format(c) for c in close)}?" if close else ""
