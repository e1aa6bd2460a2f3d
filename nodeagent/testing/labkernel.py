"""The lab node's module tree: what the host's kernel has built in, and nothing it could load.

A lab node's root stands in for its ``/``, and the ``kernel_module`` driver reads the module tree under
it (``ROOT/lib/modules/$(uname -r)``). Kernel modules are the host's, shared by every namespace, so the
lab never loads one: the tree it gives a node lists the host's built-in modules only (the host's own
``modules.builtin``, or, on a kernel shipped without a module tree, the ``=y`` lines of its
``/proc/config.gz`` for the modules the roles ask for). A module the host has loaded already is seen in
``/sys/module`` as on any node; one it would have to load is "does not exist" in the lab, never loaded.
"""

from __future__ import annotations

import gzip
import os
import subprocess
from pathlib import Path

HOST_TREE = Path("/lib/modules")
KERNEL_CONFIG = Path("/proc/config.gz")
# What the roles load, by the kernel option that builds it in, and its place in modules.builtin.
ROLE_MODULES = {"CONFIG_BRIDGE_NETFILTER": "kernel/net/bridge/br_netfilter.ko",
                "CONFIG_OPENVSWITCH": "kernel/net/openvswitch/openvswitch.ko"}


def builtin_list() -> str:
    """The host kernel's modules.builtin, or what its configuration says of the roles' modules."""
    release = os.uname().release
    host = HOST_TREE / release / "modules.builtin"
    if host.exists():
        return host.read_text()
    try:
        config = gzip.decompress(KERNEL_CONFIG.read_bytes()).decode().splitlines()
    except FileNotFoundError:
        return ""
    return "".join(f"{path}\n" for option, path in ROLE_MODULES.items() if f"{option}=y" in config)


def make_module_tree(root: Path) -> Path:
    """ROOT/lib/modules/$(uname -r) with the host's built-in modules, indexed by depmod as modprobe needs."""
    release = os.uname().release
    tree = root / "lib" / "modules" / release
    tree.mkdir(parents=True, exist_ok=True)
    (tree / "modules.builtin").write_text(builtin_list())
    subprocess.run(["depmod", "--basedir", str(root), release], check=True, capture_output=True)
    return tree
