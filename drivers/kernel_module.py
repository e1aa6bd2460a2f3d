"""The ``kernel_module`` driver: kernel modules loaded now and at every boot.

Example (what the L2 agents' iptables firewall needs before its bridge sysctls exist)::

    - id: kernel-modules
      driver: kernel_module
      modules: [br_netfilter]
      persist: /etc/modules-load.d/90-neutron.conf

A module counts as loaded when the running kernel lists it under /sys/module or when it is built
in (the ``modules.builtin`` of the module tree). A missing one is loaded with ``modprobe`` from the
module tree under the context's root (``ROOT/lib/modules/$(uname -r)``, so ``/lib/modules`` on a
node); one that tree does not have is an error naming it, before anything is written. The persisted
list is what systemd-modules-load reads at boot. Modules belong to the kernel, not to a network
namespace: the context's namespace does not matter here.

Under the shipped agent unit (``ProtectKernelModules=true``, no ``CAP_SYS_MODULE``) the module tree is hidden
and a load refused: there the driver writes the list and asks systemd to load it now
(``systemctl restart systemd-modules-load.service``, which runs outside the agent's sandbox); a module systemd
could not load is an error naming it, and the list is put back as it was.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

from nodeagent.kit import fields, files
from nodeagent.kit.context import Context
from nodeagent.kit.driver import Driver
from nodeagent.kit.errors import InvalidResource, PermanentError, TemporaryError, preview
from nodeagent.kit.result import Change
from nodeagent.kit.watches import Poll, Watch

SYS_MODULE = Path("/sys/module")
PERSISTED = " (persisted)"
POLL_INTERVAL = 30.0  # nothing announces a module unloaded by hand
TIMEOUT = 60
MODULES_LOAD = "systemd-modules-load.service"
_NAME = re.compile(r"[A-Za-z0-9_-]{1,55}")  # the kernel's MODULE_NAME_LEN is 56 with the NUL


class KernelModuleDriver(Driver):
    """Kernel modules by name, loaded and listed for the next boot."""

    phase = 15  # before the sysctls that exist only once a module is in (net.bridge.* needs br_netfilter)

    def validate(self, spec: dict[str, Any]) -> dict[str, Any]:
        fields.check_fields(spec, "kernel_module", ["modules"], ["persist"])
        modules = spec["modules"]
        if not isinstance(modules, list) or not modules:
            raise InvalidResource("modules", f"must be a list of module names, got {preview(modules)}")
        for name in modules:
            if not isinstance(name, str) or not _NAME.fullmatch(name):
                raise InvalidResource("modules", f"has an invalid module name {preview(name)} (e.g. br_netfilter)")
        # The kernel treats '-' and '_' in module names alike and shows '_'.
        normalised = list(dict.fromkeys(name.replace("-", "_") for name in modules))
        persist = fields.absolute_path(spec, "persist") if "persist" in spec else None
        return {"modules": normalised, "persist": persist}

    def paths(self, spec: dict[str, Any]) -> list[tuple[str, bool]]:
        return [(spec["persist"], True)] if spec["persist"] else []

    def watches(self, spec: dict[str, Any], ctx: Context) -> list[Watch]:
        """The persisted list by inotify; the loaded modules by polling."""
        return [*super().watches(spec, ctx), Poll(POLL_INTERVAL)]

    def observe(self, spec: dict[str, Any], ctx: Context) -> dict[str, Any]:
        builtin = _builtin(module_tree(ctx))
        loaded = {name: _loaded(name) or name in builtin for name in spec["modules"]}
        for name, is_loaded in loaded.items():
            if not is_loaded and not _by_systemd(spec, ctx):
                _require_available(name, ctx)
        persisted = None
        if spec["persist"]:
            persisted = set(_listed(files.read_file(ctx.host_path(spec["persist"])).text))
        return {"loaded": loaded, "persisted": persisted}

    def diff(self, spec: dict[str, Any], observed: dict[str, Any]) -> list[Change]:
        changes = [Change(name, "not loaded", "loaded") for name in spec["modules"] if not observed["loaded"][name]]
        if observed["persisted"] is not None:
            changes += [Change(name + PERSISTED, "not listed", "listed")
                        for name in spec["modules"] if name not in observed["persisted"]]
        return changes

    def apply(self, spec: dict[str, Any], changes: list[Change], ctx: Context) -> None:
        missing = [change.field for change in changes if not change.field.endswith(PERSISTED)]
        if missing and _by_systemd(spec, ctx):
            _load_by_systemd(spec, missing, ctx)
            return
        for name in missing:
            _load(name, ctx)
        if spec["persist"]:
            files.rewrite(ctx, spec["persist"], lambda text: _render_list(text, spec["modules"]))


def module_tree(ctx: Context) -> Path:
    """Where the running kernel's modules are, under the context's root."""
    return ctx.root / "lib" / "modules" / os.uname().release


def _loaded(name: str) -> bool:
    # A loaded module has /sys/module/NAME with initstate 'live'; a built-in one with parameters has the
    # directory and no initstate ('coming' and 'going' are neither loaded nor gone).
    directory = SYS_MODULE / name
    try:
        return (directory / "initstate").read_text().strip() == "live"
    except FileNotFoundError:
        return directory.is_dir()


def _builtin(tree: Path) -> set[str]:
    """Names of the modules built into the kernel, as its modules.builtin lists them (paths to .ko files)."""
    try:
        text = (tree / "modules.builtin").read_text()
    except FileNotFoundError:
        return set()
    except OSError as exc:
        raise files.os_error(exc, f"cannot read '{tree / 'modules.builtin'}'") from None
    return {Path(line.strip()).name.split(".ko")[0].replace("-", "_") for line in text.splitlines() if line.strip()}


def _modprobe(ctx: Context, *args: str) -> subprocess.CompletedProcess:
    command = ["modprobe", "--dirname", str(ctx.root), *args]
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT)
    except FileNotFoundError:
        raise PermanentError("modprobe is not installed on this node (Debian package 'kmod')") from None
    except subprocess.TimeoutExpired:
        raise TemporaryError(f"'{' '.join(command)}' did not finish within {TIMEOUT} s") from None


def _require_available(name: str, ctx: Context) -> None:
    """A module neither loaded, built in nor in the module tree is an error naming it."""
    tree = module_tree(ctx)
    if not os.access(tree, os.R_OK | os.X_OK):  # systemd's ProtectKernelModules=true makes it inaccessible
        raise PermanentError(f"cannot look for kernel module '{name}': the module tree {tree} is missing or "
                             "unreadable here (under systemd, ProtectKernelModules=true hides it; with a 'persist' "
                             "list systemd-modules-load is asked instead)")
    if _modprobe(ctx, "--dry-run", "--quiet", "--", name).returncode != 0:
        raise PermanentError(f"kernel module '{name}' does not exist on this node: not loaded, not built in, "
                             f"not in {module_tree(ctx)}")


def _by_systemd(spec: dict[str, Any], ctx: Context) -> bool:
    """Whether systemd loads the modules: the module tree is hidden here (ProtectKernelModules=true) and the
    resource keeps a list systemd-modules-load reads."""
    return bool(spec["persist"]) and not os.access(module_tree(ctx), os.R_OK | os.X_OK)


def _load_by_systemd(spec: dict[str, Any], missing: list[str], ctx: Context) -> None:
    """Write the list and have systemd-modules-load load it; put the list back when a module is still not in.

    systemd-modules-load only warns of a module it cannot find, so the driver looks at /sys/module itself.
    """
    host = ctx.host_path(spec["persist"])
    before = files.read_file(host)
    files.rewrite(ctx, spec["persist"], lambda text: _render_list(text, spec["modules"]))
    command = [*ctx.systemctl, "restart", MODULES_LOAD]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT)
        why = (done.stderr.strip().splitlines() or [f"systemctl exited with {done.returncode}"])[0]
    except FileNotFoundError:
        done, why = None, f"'{command[0]}' is not installed"
    except subprocess.TimeoutExpired:
        done, why = None, f"no answer within {TIMEOUT} s"
    still = [name for name in missing if not _loaded(name)]
    if done is not None and done.returncode == 0:
        if not still:
            return
        why = "it ran, and the module is not loaded: not in the node's module tree, or refused by the kernel"
    if before.content is None:
        files.remove(host, ctx.backup_path(spec["persist"]))
    else:
        files.rewrite(ctx, spec["persist"], lambda _: before.text)
    names = ", ".join(f"'{name}'" for name in still or missing)
    raise PermanentError(f"systemd did not load kernel module {names} ({MODULES_LOAD}: {why}); the module tree "
                         f"is hidden from the agent, so systemd was asked; {spec['persist']} is as it was")


def _load(name: str, ctx: Context) -> None:
    done = _modprobe(ctx, "--", name)
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or [f"modprobe exited with {done.returncode}"])[-1]
        raise PermanentError(f"the kernel did not load module '{name}': {why.removeprefix('modprobe: ')}")


def _listed(text: str) -> list[str]:
    """Module names of a modules-load.d file: one per line, '#' and ';' start comments."""
    return [line.strip().replace("-", "_") for line in text.splitlines()
            if line.strip() and line.strip()[0] not in "#;"]


def _render_list(text: str, modules: list[str]) -> str:
    """Append the missing names; leave every other line as it was."""
    lines = text.splitlines()
    present = set(_listed(text))
    lines += [name for name in modules if name not in present]
    return "\n".join(lines) + "\n"
