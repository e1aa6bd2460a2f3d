"""Dump what one OpenStack service reads, per config file, as compact JSON on stdout.

Runs INSIDE the service's own virtualenv (scripts/build-registry starts it there): it
needs the service, oslo.config and keystoneauth1, and nothing of nodeagent. It calls
the oslo.config generator's option listing in-process (what `oslo-config-generator`
does, without one process per file) and reads the entry-point groups that name
plugins (mechanism drivers, interface drivers...) from the installed metadata.

Usage: python registry_dump.py SERVICE VERSION FILE=GENERATOR_CONF [FILE=GENERATOR_CONF...]
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import socket
import sys
from importlib import metadata

# Values a default may take from the machine it was dumped on. They are replaced by
# fixed stand-ins before any service module is imported, so a dump is the same on
# every machine; the stand-ins are turned into placeholders afterwards.
CPU_STANDIN = 977
HOST_STANDIN = "registry-host.invalid"
PROCESS_STANDIN = "registry-process"
os.cpu_count = lambda: CPU_STANDIN
multiprocessing.cpu_count = lambda: CPU_STANDIN
socket.gethostname = lambda: HOST_STANDIN
socket.getfqdn = lambda name="": HOST_STANDIN
sys.argv[0] = PROCESS_STANDIN
os.chdir("/")

from oslo_config import cfg, generator, types  # noqa: E402

# Entry-point groups whose names are what a config value may name.
PLUGIN_GROUPS = {
    "neutron": ["neutron.core_plugins", "neutron.service_plugins", "neutron.ml2.mechanism_drivers",
                "neutron.ml2.type_drivers", "neutron.ml2.extension_drivers", "neutron.interface_drivers",
                "neutron.agent.firewall_drivers", "neutron.agent.l2.extensions", "neutron.agent.l3.extensions"],
    "nova": ["nova.compute.monitors.cpu", "nova.scheduler.driver"],
    "keystone": ["keystone.token.provider", "keystone.identity", "keystone.assignment", "keystone.auth.password",
                 "keystone.auth.token"],
}
# (class, short name): subclasses before their bases.
TYPES = [(types.Port, "port"), (types.Integer, "int"), (types.Float, "float"), (types.Boolean, "bool"),
         (types.MultiString, "multi"), (types.String, "str"), (types.List, "list"), (types.Dict, "dict"),
         (types.IPAddress, "ip"), (types.HostDomain, "hostdomain"), (types.HostAddress, "host"),
         (types.Hostname, "hostname"), (types.URI, "uri"), (types.Range, "range")]
KEYSTONEAUTH_NAMESPACE = "keystoneauth1.password"


def namespaces_of(conf_path: str) -> list[str]:
    """The 'namespace = X' lines of a generator config file (repeated keys: configparser keeps only one)."""
    with open(conf_path, encoding="utf-8") as stream:
        return [m.group(1) for m in re.finditer(r"^\s*namespace\s*=\s*(\S+)\s*$", stream.read(), re.M)]


def type_name(opt_type: object) -> str:
    return next((name for cls, name in TYPES if isinstance(opt_type, cls)), "str")


def plain(value: object) -> object:
    """A default as JSON: lists and scalars as they are, anything else as its text."""
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in sorted(value.items())}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def entry(opt: cfg.Opt) -> dict[str, object]:
    """The compact record of one option; keys left out when empty."""
    kind = type_name(opt.type)
    record: dict[str, object] = {"t": kind}
    default = opt.sample_default if opt.sample_default is not None else opt.default
    if default is not None:
        record["d"] = plain(default)
    choices = getattr(opt.type, "choices", None)
    if choices:
        record["c"] = [plain(c) for c in choices]
    for bound in ("min", "max"):
        value = getattr(opt.type, bound, None)
        if value is not None:
            record[bound] = value
    if kind == "list" and not isinstance(getattr(opt.type, "item_type", None), types.String):
        record["it"] = type_name(opt.type.item_type)
    if kind == "ip" and getattr(opt.type, "version_checker", None) is not None:
        version = {4: "4", 6: "6"}.get(getattr(opt.type, "version", None))
        if version:
            record["v"] = version
    if kind == "uri" and getattr(opt.type, "schemes", None):
        record["sch"] = sorted(opt.type.schemes)
    aliases = sorted({(d.group or "", d.name or opt.dest) for d in opt.deprecated_opts if d.name or d.group})
    if aliases:
        record["dep"] = [list(a) for a in aliases]
    if opt.deprecated_for_removal:
        record["rm"] = 1
        if opt.deprecated_reason:
            record["why"] = " ".join(str(opt.deprecated_reason).split())
    if opt.deprecated_since:
        record["since"] = str(opt.deprecated_since)
    if opt.secret:
        record["sec"] = 1
    if opt.multi:
        record["multi"] = 1
    return record


def group_name(group: object) -> str:
    return getattr(group, "name", None) or (group if isinstance(group, str) else "DEFAULT") or "DEFAULT"


def dump(service: str, version: str, generator_confs: dict[str, str]) -> dict[str, object]:
    files: dict[str, list[str]] = {}
    for name, conf_path in sorted(generator_confs.items()):
        files[name] = sorted(set(namespaces_of(conf_path)))
    opts: dict[str, dict[str, dict[str, object]]] = {}
    for namespace, groups in generator._list_opts(sorted({n for ns in files.values() for n in ns})):
        for group, group_opts in groups:
            section = opts.setdefault(namespace, {}).setdefault(group_name(group), {})
            for opt in group_opts:
                section[opt.dest] = entry(opt)
    # keystonemiddleware loads the auth plugin's options at run time from auth_type, so no
    # generator lists them; the password plugin's are what every install guide writes.
    from keystoneauth1 import loading

    plugin = {opt.dest: entry(opt) for opt in loading.get_auth_plugin_conf_options("password")}
    opts[KEYSTONEAUTH_NAMESPACE] = {"keystone_authtoken": plugin}
    for name, namespaces in files.items():
        if "keystonemiddleware.auth_token" in namespaces:
            files[name] = sorted(namespaces + [KEYSTONEAUTH_NAMESPACE])
    plugins: dict[str, dict[str, str]] = {}
    for group in PLUGIN_GROUPS.get(service, []):
        found = metadata.entry_points(group=group)
        # The services register their unit tests' fakes in the same groups; no operator can use those.
        plugins[group] = {ep.name: ep.value for ep in sorted(found, key=lambda ep: ep.name)
                          if ".tests." not in f".{ep.value}"}
    return {"service": service, "version": version, "files": files, "opts": opts, "plugins": plugins}


def scrub(text: str) -> str:
    """Machine- and venv-dependent parts of the JSON replaced by placeholders."""
    text = text.replace(sys.prefix, "<prefix>").replace(HOST_STANDIN, "<hostname>")
    text = text.replace(PROCESS_STANDIN, "<process name>")
    return re.sub(rf"(?<![0-9.]){CPU_STANDIN}(?![0-9.])", '"<cpu count>"', text)


def main(argv: list[str]) -> int:
    service, version, *pairs = argv
    confs = dict(pair.split("=", 1) for pair in pairs)
    text = json.dumps(dump(service, version, confs), sort_keys=True, separators=(",", ":"))
    sys.stdout.write(scrub(text))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
