"""The driver SDK: everything a driver may use, and nothing else of nodeagent.

A driver (``drivers/``, or a third party's package in the ``nodeagent.drivers`` entry-point group) imports
from here only; the import contract (``.importlinter``) keeps the kit below every other part of nodeagent:

* ``driver``  — the contract: ``Driver`` (``observe``, ``diff``, ``apply`` abstract) and its ``Spec``;
* ``context`` — where to act: the filesystem root and allowed roots, the namespace, OVSDB, systemctl;
* ``errors``  — ``InvalidResource`` (bad input, naming the field), ``TemporaryError``, ``PermanentError``,
  ``Conflict``, ``PathRefused``;
* ``fields``  — checks of a spec's fields that raise ``InvalidResource`` naming the field;
* ``result``  — ``Change`` (what differs) and the results of a reconcile;
* ``watches`` — ``File``, ``Link``, ``Netconf``, ``Sysctl``, ``Row``, ``Poll``: what a driver asks the node to watch;
* ``files``   — the one atomic write (temporary file, fsync, rename; mode, owner and a backup kept);
* ``netlink``, ``ovsdb`` — pyroute2 in the node's namespace, ovsdbapp on the node's OVSDB (imported on use:
  they are the heavy ones);
* ``passcache`` — reads the resources of one reconcile pass share (``netlink.links`` reads each link once).

The names a driver needs most are here directly (as kopf declares its API in its package).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Each name and the module it comes from, imported when first asked for (PEP 562): the CLI's ``--help`` needs
# only the errors, and importing every module of the kit (dataclasses made at import) cost it 0.01 s.
_FROM = {
    "Context": "context", "Driver": "driver", "Spec": "driver", "Change": "result",
    **{name: "watches" for name in ("Watch", "File", "Link", "Netconf", "Sysctl", "Row", "Poll")},
    **{name: "errors" for name in ("InvalidResource", "DriverError", "TemporaryError", "PermanentError",
                                   "Conflict", "PathRefused")},
}

__all__ = [
    # the contract and its values
    "Driver", "Spec", "Context", "Change", "Watch", "File", "Link", "Netconf", "Sysctl", "Row", "Poll",
    "InvalidResource", "DriverError", "TemporaryError", "PermanentError", "Conflict", "PathRefused",
    # the modules of the SDK
    "context", "driver", "errors", "fields", "files", "netlink", "ovsdb", "passcache", "result", "watches",
]


def __getattr__(name: str) -> Any:
    if name in _FROM:
        value = getattr(importlib.import_module(f"nodeagent.kit.{_FROM[name]}"), name)
    elif name in __all__:
        value = importlib.import_module(f"nodeagent.kit.{name}")
    else:
        raise AttributeError(f"module 'nodeagent.kit' has no attribute '{name}'")
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from nodeagent.kit.context import Context
    from nodeagent.kit.driver import Driver, Spec
    from nodeagent.kit.errors import (Conflict, DriverError, InvalidResource, PathRefused, PermanentError,
                                      TemporaryError)
    from nodeagent.kit.result import Change
    from nodeagent.kit.watches import File, Link, Netconf, Poll, Row, Sysctl, Watch
