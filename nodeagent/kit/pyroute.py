"""pyroute2 by its submodules: ``import pyroute2.ethtool.ethtool`` without pyroute2's ``__init__``.

Python runs a package's ``__init__`` before any of its submodules, and pyroute2's imports every part of the
library (NDB, IPDB, nftables, wireguard, ...): about 80 modules and 0.05 s that reading a link or an offload
feature never uses. ``load()`` stands a bare package in its place, so a submodule brings only what it needs;
the first time anything asks the package itself for a name it lacks (``from pyroute2 import NDB``), the real
``__init__`` runs after all, so other code in the process sees the whole package as always.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
from types import ModuleType
from typing import Any

_lock = threading.Lock()


def load(submodule: str) -> ModuleType:
    """``pyroute2.<submodule>``, imported without the package's ``__init__`` when it has not run yet."""
    with _lock:
        if "pyroute2" not in sys.modules:
            spec = importlib.util.find_spec("pyroute2")
            package = importlib.util.module_from_spec(spec)
            package.__getattr__ = _whole(package)  # type: ignore[attr-defined]
            sys.modules["pyroute2"] = package
    return importlib.import_module(f"pyroute2.{submodule}")


def _whole(package: ModuleType):
    """The package's ``__getattr__``: a submodule by its name, else the real ``__init__`` run once."""
    done = []

    def attribute(name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return importlib.import_module(f"pyroute2.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"pyroute2.{name}":
                raise
        if not done:
            done.append(True)
            package.__spec__.loader.exec_module(package)
        try:
            return package.__dict__[name]
        except KeyError:
            raise AttributeError(f"module 'pyroute2' has no attribute '{name}'") from None

    return attribute
