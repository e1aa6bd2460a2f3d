"""The ``package`` driver: distribution packages installed, absent, or held at one version.

Example (what the L3 and DHCP agents run besides Neutron: radvd for IPv6 routers, dhcp_release)::

    - id: agent-packages
      driver: package
      manager: apt                      # apt (Debian, Ubuntu) or dnf (RHEL, CentOS, RDO)
      packages:
        radvd: installed                # any version
        dnsmasq-utils: installed
        telnet: absent
        openvswitch-switch: "3.1.0-2"   # exactly this version, held there (apt-mark hold / dnf versionlock)

``installed`` releases a hold the package has: the document says any version goes. The state is read from
the package database under the context's root (``dpkg-query --admindir``; ``rpm --root``) and changed by
``apt-get`` or ``dnf`` on that root, so a test (or a chroot) never touches the host's packages. A name the
node's repositories do not have, or a version they do not carry, is an error naming the package; apt and
dnf both resolve the whole request before changing anything, so nothing is changed then.

Under the shipped agent unit apt and dnf cannot work from inside the sandbox (``ProtectSystem=strict``: /usr and
the package database are read-only; no ``CAP_SETUID`` for apt's ``_apt`` user), so under systemd they run in a
transient unit of their own (``ctx.package_prefix``: ``systemd-run --wait --pipe``, the agent's
``package_command_prefix``); reading the database needs no such help.

Why the tools' machine-readable output, not a library: python-apt binds libapt for the system Python only
(it is not installable from PyPI, so not into the agent's virtualenv), and dnf's Python API is likewise the
system's; ``dpkg-query -f`` and ``rpm --qf`` print exactly the fields asked for, in a format both keep stable.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Iterator

from nodeagent.kit import fields
from nodeagent.kit.context import Context
from nodeagent.kit.driver import Driver
from nodeagent.kit.errors import InvalidResource, PermanentError, TemporaryError, preview
from nodeagent.kit.result import Change
from nodeagent.kit.watches import File, Poll, Watch

INSTALLED, ABSENT = "installed", "absent"
TIMEOUT = 1800  # a large first install downloads for minutes
POLL_INTERVAL = 60.0
# Debian policy: lower case, digits, + - . and at least two characters; RPM allows more. Never a leading '-'
# (it would read as an option).
_NAMES = {"apt": re.compile(r"[a-z0-9][a-z0-9+.-]+"), "dnf": re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")}
# A Debian version: [epoch:]upstream[-revision]; an RPM one must name the release too ([epoch:]version-release),
# so that a hold means one build.
_VERSIONS = {"apt": (re.compile(r"([0-9]+:)?[0-9][A-Za-z0-9.+~-]*"), "e.g. 2.19-1 or 1:2.19-1+b1"),
             "dnf": (re.compile(r"([0-9]+:)?[0-9][A-Za-z0-9._+~^]*-[A-Za-z0-9._+~^]+"), "e.g. 2.19-5.el9")}
_NAME_MAX = 200


class PackageDriver(Driver):
    """Packages by name, through the node's package manager."""

    phase = 5  # before the files (a package's own conffiles come first) and the services it ships

    def validate(self, spec: dict[str, Any]) -> dict[str, Any]:
        fields.check_fields(spec, "package", ["manager", "packages"], [])
        manager = spec["manager"]
        if manager not in _NAMES:
            raise InvalidResource("manager", f"must be one of {', '.join(_NAMES)}, got {preview(manager)}")
        packages = spec["packages"]
        if not isinstance(packages, dict) or not packages:
            raise InvalidResource("packages", f"must be a mapping of package name to installed, absent or a "
                                  f"version, got {preview(packages)}")
        pattern, example = _VERSIONS[manager]
        for name, state in packages.items():
            if not isinstance(name, str) or len(name) > _NAME_MAX or not _NAMES[manager].fullmatch(name):
                raise InvalidResource("packages", f"has an invalid {manager} package name {preview(name)}")
            if state in (INSTALLED, ABSENT):
                continue
            if isinstance(state, (int, float)) and not isinstance(state, bool):
                state = str(state)  # YAML reads 2.0 as a number; the version is the text
            if not isinstance(state, str) or not pattern.fullmatch(state):
                raise InvalidResource(f"packages.{name}", f"must be installed, absent or a version ({example}), "
                                      f"got {preview(packages[name])}")
        return {"manager": manager, "packages": {name: str(state) for name, state in packages.items()}}

    def watches(self, spec: dict[str, Any], ctx: Context) -> list[Watch]:
        """dpkg replaces its status file on every change; the rpm database is polled."""
        if spec["manager"] == "apt":
            return [File(ctx.root / "var/lib/dpkg/status"), Poll(POLL_INTERVAL)]
        return [Poll(POLL_INTERVAL)]

    def observe(self, spec: dict[str, Any], ctx: Context) -> dict[str, dict[str, Any]]:
        """Each package's installed version (None: not installed) and whether it is held."""
        return _MANAGERS[spec["manager"]].observe(list(spec["packages"]), ctx)

    def diff(self, spec: dict[str, Any], observed: dict[str, dict[str, Any]]) -> list[Change]:
        changes = []
        for name, wanted in spec["packages"].items():
            seen = observed[name]
            if _satisfied(wanted, seen):
                continue
            changes.append(Change(name, _shown(seen), wanted if wanted in (INSTALLED, ABSENT) else f"{wanted} (held)"))
        return changes

    def apply(self, spec: dict[str, Any], changes: list[Change], ctx: Context) -> None:
        wanted = {c.field: spec["packages"][c.field] for c in changes}
        # Installed but held, and wanted at any version: only the hold goes (an install would upgrade it).
        present = {c.field for c in changes if c.old != ABSENT}
        _MANAGERS[spec["manager"]].apply(wanted, present, ctx)


def _satisfied(wanted: str, seen: dict[str, Any]) -> bool:
    if wanted == ABSENT:
        return seen["version"] is None
    if wanted == INSTALLED:
        return seen["version"] is not None and not seen["held"]
    # rpm's epoch 0 is shown as none (dpkg never shows an epoch 0 either)
    installed = seen["version"]
    return installed is not None and installed.removeprefix("0:") == wanted.removeprefix("0:") and seen["held"]


def _shown(seen: dict[str, Any]) -> str:
    if seen["version"] is None:
        return ABSENT
    return f"{seen['version']} (held)" if seen["held"] else seen["version"]


def _run(command: list[str], env: dict[str, str] | None = None,
         prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """Run a package tool; with a prefix (a transient unit under the hardened agent unit) its environment
    travels on the command line, through env(1), since the prefix's process does not pass the agent's on."""
    env = {"LC_ALL": "C", **(env or {})}
    if prefix:
        command = [*prefix, "env", *[f"{key}={value}" for key, value in env.items()], *command]
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, env={**os.environ, **env})
    except FileNotFoundError:
        raise PermanentError(f"'{command[0]}' is not installed on this node") from None
    except subprocess.TimeoutExpired:
        raise TemporaryError(f"'{command[0]}' did not finish within {TIMEOUT} s") from None


def _failed(tool: str, done: subprocess.CompletedProcess, unknown: re.Pattern, wanted: dict[str, str]) -> None:
    """A refusal as an error; one naming the package when the tool says which it could not find.

    ``unknown`` finds the tool's "no such package/version" lines, the request it names in a group.
    """
    output = done.stderr + done.stdout
    for match in unknown.finditer(output):
        request = next(group for group in match.groups() if group)
        # apt names 'radvd' or 'radvd=1:2.19-1', dnf 'radvd-2.19-5.el9': the longest wanted name it starts with.
        name = max((n for n in wanted if request == n or request.startswith((n + "=", n + "-"))), key=len,
                   default=request)
        state = wanted.get(name, INSTALLED)
        what = f"package '{name}'" if state in (INSTALLED, ABSENT) else f"version {state} of package '{name}'"
        raise PermanentError(f"field 'packages.{name}': no repository of this node has {what} "
                             f"({tool}: {match.group(0).strip()}); nothing was changed")
    errors = [line.strip() for line in output.splitlines() if line.startswith(("E:", "Error:"))]
    shown = "; ".join(errors) or (output.strip().splitlines() or ["no output"])[-1]
    raise PermanentError(f"{tool} exited with {done.returncode}: {shown}")


class Apt:
    """dpkg's database read with dpkg-query; changes made by apt-get in one transaction, holds by apt-mark."""

    UNKNOWN = re.compile(r"E: Unable to locate package (\S+)|E: Version '[^']*' for '([^']+)' was not found")

    def observe(self, names: list[str], ctx: Context) -> dict[str, dict[str, Any]]:
        admindir = ctx.root / "var/lib/dpkg"
        if not (admindir / "status").is_file():
            raise PermanentError(f"no dpkg database at {admindir} (manager 'apt' on a node without dpkg?)")
        done = _run(["dpkg-query", f"--admindir={admindir}", "-W",
                     "-f=${Package}\t${db:Status-Abbrev}\t${Version}\n", "--", *names])
        if done.returncode not in (0, 1):  # 1: some name has never been installed here
            raise PermanentError(f"dpkg-query failed: {done.stderr.strip()}")
        observed: dict[str, dict[str, Any]] = {name: {"version": None, "held": False} for name in names}
        for line in done.stdout.splitlines():
            name, abbrev, version = (line.split("\t") + ["", ""])[:3]
            # db:Status-Abbrev: want (h = hold), status (i installed, W/t triggers pending), error flag.
            if name in observed and len(abbrev) >= 2 and abbrev[1] in "iWt":
                observed[name] = {"version": version, "held": abbrev[0] == "h"}
        return observed

    def apply(self, wanted: dict[str, str], present: set[str], ctx: Context) -> None:
        requests = [f"{n}-" if s == ABSENT else n if s == INSTALLED else f"{n}={s}" for n, s in wanted.items()
                    if not (s == INSTALLED and n in present)]
        with _apt_env(ctx) as env:
            if requests:  # one transaction: apt resolves all of it before dpkg changes anything
                done = _run(["apt-get", "install", "-y", "-q", "--allow-downgrades", "--allow-change-held-packages",
                             "-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold",
                             "--", *requests], env, ctx.package_prefix)
                if done.returncode != 0:
                    _failed("apt-get", done, self.UNKNOWN, wanted)
            for verb, names in (("hold", [n for n, s in wanted.items() if s not in (INSTALLED, ABSENT)]),
                                ("unhold", [n for n, s in wanted.items() if s == INSTALLED and n in present])):
                if names:
                    marked = _run(["apt-mark", verb, "--", *names], env, ctx.package_prefix)
                    if marked.returncode != 0:
                        _failed("apt-mark", marked, self.UNKNOWN, wanted)


@contextlib.contextmanager
def _apt_env(ctx: Context) -> Iterator[dict[str, str]]:
    """apt's environment for the context's root: on '/', the node's own configuration; elsewhere a
    configuration (APT_CONFIG) that puts every apt path and dpkg's --root under the root, read instead of
    the host's /etc/apt, so the root's sources and preferences are the only ones used."""
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    if ctx.root == Path("/"):
        yield env
        return
    with tempfile.NamedTemporaryFile("w", prefix="nodeagent-apt-", suffix=".conf", dir=_scratch(ctx)) as config:
        root = str(ctx.root)
        if '"' in root:
            raise PermanentError(f"apt cannot be pointed at root {root!r}: its configuration has no quoting for '\"'")
        config.write(f'Dir "{root}/";\nDPkg::Options:: "--root={root}";\n')
        config.flush()
        yield {**env, "APT_CONFIG": config.name}


def _scratch(ctx: Context) -> Path:
    """Where a root's temporary package configuration goes: the root's own tmp, which a transient unit sees
    as well (the agent's /tmp is private to its unit, or read-only under ProtectSystem=strict)."""
    place = ctx.root / "tmp"
    place.mkdir(mode=0o1777, exist_ok=True)
    return place


class Dnf:
    """The rpm database read with rpm; changes made by dnf, holds by dnf's versionlock plugin."""

    UNKNOWN = re.compile(r"(?:No match for argument|Unable to find a match): (\S+)")
    LOCKLIST = "/etc/dnf/plugins/versionlock.list"

    def observe(self, names: list[str], ctx: Context) -> dict[str, dict[str, Any]]:
        held = self._locked(ctx)
        observed: dict[str, dict[str, Any]] = {}
        for name in names:
            # --whatprovides: a name another package provides (RHEL's 'openvswitch') counts as installed.
            done = _run(["rpm", "--root", str(ctx.root), "-q", "--whatprovides", "--qf",
                         "%{NAME}\t%{EPOCHNUM}:%{VERSION}-%{RELEASE}\n", "--", name])
            rows = [line.split("\t") for line in done.stdout.splitlines() if "\t" in line]
            if done.returncode != 0 and not rows and "no package provides" not in done.stdout + done.stderr:
                raise PermanentError(f"rpm failed: {(done.stderr or done.stdout).strip()}")
            version = rows[0][1].removeprefix("0:") if rows else None
            observed[name] = {"version": version, "held": version is not None and (name, version) in held}
        return observed

    def apply(self, wanted: dict[str, str], present: set[str], ctx: Context) -> None:
        install = [n if s == INSTALLED else f"{n}-{s.removeprefix('0:')}" for n, s in wanted.items()
                   if s != ABSENT and not (s == INSTALLED and n in present)]
        remove = [n for n, s in wanted.items() if s == ABSENT]
        locks = [f"{n}-{s.removeprefix('0:')}" for n, s in wanted.items() if s not in (INSTALLED, ABSENT)]
        if locks and not (ctx.root / self.LOCKLIST.lstrip("/")).is_file():
            raise PermanentError(f"a held version needs dnf's versionlock plugin, and this node has no "
                                 f"{self.LOCKLIST} (package python3-dnf-plugin-versionlock); nothing was changed")
        with self._command(ctx) as dnf:
            # A lock on another version would hide the one wanted: locks go first, the wanted ones come after.
            locked = [n for n in wanted if n in {name for name, _ in self._locked(ctx)}]
            if locked:
                self._run([*dnf, "versionlock", "delete", *locked], wanted, ctx)
            if install:
                self._run([*dnf, "install", *install], wanted, ctx)
            if remove:
                self._run([*dnf, "remove", *remove], wanted, ctx)
            if locks:
                self._run([*dnf, "versionlock", "add", *locks], wanted, ctx)

    def _run(self, command: list[str], wanted: dict[str, str], ctx: Context) -> None:
        done = _run(command, None, ctx.package_prefix)
        if done.returncode == 0:
            return
        if "No such command: versionlock" in done.stdout + done.stderr:
            raise PermanentError("a held version needs dnf's versionlock plugin on this node "
                                 "(package python3-dnf-plugin-versionlock)")
        _failed("dnf", done, self.UNKNOWN, wanted)

    @contextlib.contextmanager
    def _command(self, ctx: Context) -> Iterator[list[str]]:
        """dnf for the context's root: on '/', as the node has it; elsewhere with --installroot, the root's
        configuration and repositories, and only the versionlock plugin, its list under the root (dnf does
        not put plugin paths under --installroot: left alone it would write the host's list and cache)."""
        base = ["dnf", "-y", "-q"]
        if ctx.root == Path("/"):
            yield base
            return
        root = ctx.root
        command = [*base, f"--installroot={root}", f"--setopt=reposdir={root}/etc/yum.repos.d"]
        if (root / "etc/dnf/dnf.conf").is_file():
            command.append(f"--config={root}/etc/dnf/dnf.conf")
        release = root / "etc/dnf/vars/releasever"
        if release.is_file():  # a root without a release package names its release here
            command.append(f"--releasever={release.read_text().strip()}")
        if not (root / self.LOCKLIST.lstrip("/")).is_file():
            yield [*command, "--noplugins"]
            return
        with tempfile.TemporaryDirectory(prefix="nodeagent-dnf-", dir=_scratch(ctx)) as plugins:
            Path(plugins, "versionlock.conf").write_text(f"[main]\nenabled = 1\nlocklist = {root}{self.LOCKLIST}\n")
            yield [*command, f"--setopt=pluginconfpath={plugins}", "--disableplugin=*", "--enableplugin=versionlock"]

    def _locked(self, ctx: Context) -> set[tuple[str, str]]:
        """(name, version-release) pairs of the versionlock list: lines NAME-[EPOCH:]VERSION-RELEASE.ARCH."""
        try:
            text = (ctx.root / self.LOCKLIST.lstrip("/")).read_text()
        except FileNotFoundError:
            return set()
        locked = set()
        for line in text.splitlines():
            entry = line.strip()
            if not entry or entry.startswith(("#", "!")):
                continue
            name_version, _, release = entry.rpartition(".")[0].rpartition("-")
            name, _, version = name_version.rpartition("-")
            epoch, _, bare = version.rpartition(":")
            if name and release:
                locked.add((name, f"{'' if epoch in ('', '0') else epoch + ':'}{bare}-{release}"))
        return locked


_MANAGERS = {"apt": Apt(), "dnf": Dnf()}
