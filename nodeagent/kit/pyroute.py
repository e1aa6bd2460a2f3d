"""pyroute2 by its submodules: ``import pyroute2.ethtool.ioctl`` without pyroute2's ``__init__``.

Python runs a package's ``__init__`` before any of its submodules, and pyroute2's imports every part of the
library (NDB, IPDB, nftables, wireguard, ...): about 80 modules and 0.05 s that reading a link or an offload
feature never uses. ``load()`` stands a bare package in its place, so a submodule brings only what it needs;
the first time anything asks the package itself for a name it lacks (``from pyroute2 import NDB``), the real
``__init__`` runs after all, so other code in the process sees the whole package as always.

Also the handles the kit keeps of pyroute2's sockets: one per kind, thread and namespace (``handle()``).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import sys
import threading
from types import ModuleType
from typing import Any, Callable, Iterator

from nodeagent.kit.context import NETNS_DIR, Context

_lock = threading.Lock()


def load(submodule: str) -> ModuleType:
    """``pyroute2.<submodule>``, imported without the ``__init__`` of pyroute2 or of the packages between
    (``pyroute2.ethtool``'s imports its generic netlink client: 0.02 s) when they have not run yet."""
    parts = f"pyroute2.{submodule}".split(".")
    with _lock:
        for depth in range(1, len(parts)):
            name = ".".join(parts[:depth])
            if name not in sys.modules:
                spec = importlib.util.find_spec(name)
                if spec is None or spec.submodule_search_locations is None:
                    break  # not a package: the import below says what is wrong
                package = importlib.util.module_from_spec(spec)
                package.__getattr__ = _whole(package)  # type: ignore[attr-defined]
                sys.modules[name] = package
    return importlib.import_module(f"pyroute2.{submodule}")


def _whole(package: ModuleType):
    """The package's ``__getattr__``: a submodule by its name, else the real ``__init__`` run once."""
    done = []

    def attribute(name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return importlib.import_module(f"{package.__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{package.__name__}.{name}":
                raise
        if not done:
            done.append(True)
            package.__spec__.loader.exec_module(package)
        try:
            return package.__dict__[name]
        except KeyError:
            raise AttributeError(f"module '{package.__name__}' has no attribute '{name}'") from None

    return attribute


# Opening a handle in a namespace costs more than the requests themselves, so one is
# kept per (kind, thread, namespace): pyroute2 handles are not shared between threads.
_handles: dict[tuple[str, int, str | None], tuple[Any, int]] = {}


@contextlib.contextmanager
def handle(kind: str, ctx: Context, make: Callable[[], Any]) -> Iterator[Any]:
    """This thread's handle of ``kind`` in the context's namespace, made by ``make()`` on first use (never
    creating the namespace), dropped when a request fails with an OSError (a socket gone bad)."""
    ctx.check_netns()
    key = (kind, threading.get_ident(), ctx.netns)
    identity = os.stat(NETNS_DIR / ctx.netns).st_ino if ctx.netns else 0
    made, opened_for = _handles.get(key, (None, None))
    if made is None or opened_for != identity:  # a namespace deleted and made again is a new one
        if made is not None:
            made.close()
        made = make()
        _handles[key] = (made, identity)
    try:
        yield made
    except OSError:
        _handles.pop(key, None)
        made.close()
        raise
