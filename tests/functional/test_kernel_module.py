"""Kernel modules through the real modprobe, the running kernel's /sys/module and a module tree under the
test's scratch root (``modprobe --dirname``), so nothing is ever loaded into the host's kernel: the one module
the test asks modprobe to insert is not a module at all, and every kernel refuses it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from nodeagent.kit.context import Context
from nodeagent.kit.errors import InvalidDocument
from nodeagent.document.model import parse_document
from nodeagent.kit.result import Status
from nodeagent.node.engine import Engine
from tests.functional.helpers import EventSink, details, reconcile, watching

PERSIST = "/etc/modules-load.d/90-neutron.conf"
REFUSED = "nodeagent_refused"   # in the scratch tree as a .ko that is no ELF object
BUILTIN = "nodeagent_builtin"   # listed in the scratch tree's modules.builtin


def live_module() -> str:
    """A module the running kernel lists now: loaded ('live'), or built in with parameters."""
    for entry in sorted(Path("/sys/module").iterdir()):
        initstate = entry / "initstate"
        if (initstate.exists() and initstate.read_text().strip() == "live") or (entry / "parameters").is_dir():
            return entry.name
    raise AssertionError("the running kernel lists no module under /sys/module")


@pytest.fixture
def tree(root: Path) -> Path:
    """ROOT/lib/modules/$(uname -r): one module file (junk) indexed by the real depmod, one built-in module."""
    release = os.uname().release
    directory = root / "lib" / "modules" / release
    (directory / "kernel" / "misc").mkdir(parents=True)
    (directory / "kernel" / "misc" / f"{REFUSED}.ko").write_bytes(b"not an ELF object\n")
    (directory / "modules.builtin").write_text(f"kernel/net/{BUILTIN}.ko\n")
    subprocess.run(["depmod", "--basedir", str(root), release], capture_output=True, check=True)
    found = subprocess.run(["modprobe", "--dirname", str(root), "--dry-run", "--verbose", REFUSED],
                           capture_output=True, text=True)
    assert f"insmod {directory}/kernel/misc/{REFUSED}.ko" in found.stdout, found.stdout + found.stderr
    return directory


@pytest.fixture
def engine(registry, root: Path) -> Engine:
    return Engine(registry, Context(root=root, backup_dir=None))


def modules(*names: str, **more) -> dict:
    return {"id": "kernel-modules", "driver": "kernel_module", "modules": list(names), "persist": PERSIST, **more}


def test_a_loaded_module_is_persisted_and_then_in_sync(engine, root, tree):
    name = live_module()
    planned = reconcile(engine, modules(name), dry_run=True)["kernel-modules"]
    assert details(planned) == [f"{name} (persisted): not listed → listed"]
    assert reconcile(engine, modules(name))["kernel-modules"].status is Status.CHANGED
    assert (root / PERSIST.lstrip("/")).read_text() == f"{name}\n"
    assert reconcile(engine, modules(name))["kernel-modules"].status is Status.IN_SYNC


def test_a_built_in_module_counts_as_loaded(engine, root, tree):
    (root / "etc" / "modules-load.d").mkdir(parents=True)
    (root / PERSIST.lstrip("/")).write_text(f"# kept\n{BUILTIN}\n")
    assert reconcile(engine, modules(BUILTIN))["kernel-modules"].status is Status.IN_SYNC
    (tree / "modules.builtin").write_text("")
    assert details(reconcile(engine, modules(BUILTIN), dry_run=True)["kernel-modules"]) == [
        f"{BUILTIN}: not loaded → loaded"]


def test_a_missing_module_is_an_error_naming_it_and_nothing_is_written(engine, root, tree):
    failed = reconcile(engine, modules("nodeagent_no_such_module"))["kernel-modules"]
    assert failed.status is Status.FAILED
    assert failed.error == ("kernel module 'nodeagent_no_such_module' does not exist on this node: not loaded, "
                            f"not built in, not in {tree}")
    assert not (root / PERSIST.lstrip("/")).exists()


def test_without_a_module_tree_or_a_list_for_systemd_the_error_says_so(engine, root):
    """With a 'persist' list systemd is asked instead: test_kernel_module_under_systemd.py."""
    resource = {k: v for k, v in modules("nodeagent_no_such_module").items() if k != "persist"}
    failed = reconcile(engine, resource)["kernel-modules"]
    assert failed.error == ("cannot look for kernel module 'nodeagent_no_such_module': the module tree "
                            f"{root}/lib/modules/{os.uname().release} is missing or unreadable here (under systemd, "
                            "ProtectKernelModules=true hides it; with a 'persist' list systemd-modules-load is asked "
                            "instead)")
    assert not (root / PERSIST.lstrip("/")).exists()


def test_a_module_not_loaded_goes_through_modprobe_to_the_kernel(engine, root, tree):
    planned = reconcile(engine, modules(REFUSED), dry_run=True)["kernel-modules"]
    assert details(planned) == [f"{REFUSED}: not loaded → loaded", f"{REFUSED} (persisted): not listed → listed"]
    failed = reconcile(engine, modules(REFUSED))["kernel-modules"]
    assert failed.status is Status.FAILED
    # The kernel's own refusal, through modprobe: 'Exec format error' with module support, 'Function not
    # implemented' without.
    assert failed.error.startswith(f"the kernel did not load module '{REFUSED}': ERROR: could not insert '{REFUSED}'")
    assert not Path("/sys/module", REFUSED).exists()
    assert not (root / PERSIST.lstrip("/")).exists()  # not persisted when it could not be loaded


def test_the_persisted_list_keeps_other_lines_and_is_restored_after_drift(engine, root, tree, registry):
    name = live_module()
    path = root / PERSIST.lstrip("/")
    path.parent.mkdir(parents=True)
    path.write_text("# local\nloop\n")
    assert reconcile(engine, modules(name, BUILTIN))["kernel-modules"].status is Status.CHANGED
    assert path.read_text() == f"# local\nloop\n{name}\n{BUILTIN}\n"
    driver = registry.get("kernel_module")
    sink = EventSink()
    spec = driver.validate({"modules": [name, BUILTIN], "persist": PERSIST})
    with watching(driver, {"kernel-modules": spec}, engine.ctx, sink):
        path.write_text("# local\nloop\n")
        assert sink.wait_for("kernel-modules")
    fixed = reconcile(engine, modules(name, BUILTIN))["kernel-modules"]
    assert details(fixed) == [f"{name} (persisted): not listed → listed", f"{BUILTIN} (persisted): not listed → listed"]
    assert path.read_text() == f"# local\nloop\n{name}\n{BUILTIN}\n"


@pytest.mark.parametrize("change, message", [
    ({"modules": "br_netfilter"}, "field 'modules' must be a list of module names, got 'br_netfilter'"),
    ({"modules": ["../x"]}, "field 'modules' has an invalid module name '../x'"),
    ({"modules": []}, "field 'modules' must be a list of module names"),
    ({"persist": "etc/x.conf"}, "field 'persist' must be an absolute path"),
    ({"persist": "/etc/passwd"}, "field 'path' is refused"),
])
def test_bad_input_is_refused_naming_the_field(engine, root, change, message):
    with pytest.raises(InvalidDocument, match=message):  # parsed, then checked against the node, as agents do
        engine.preflight(parse_document({"node": "lab", "generation": 1,
                                         "resources": [{**modules("br_netfilter"), **change}]}, engine.registry))
    assert list(root.iterdir()) == []
