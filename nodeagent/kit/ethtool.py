"""The ethtool ioctl for drivers, in the context's namespace (offload features: ``ethtool -k / -K``).

Apart from ``kit/netlink``: reading features needs none of pyroute2's rtnetlink (0.035 s to import).
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

from nodeagent.kit import pyroute
from nodeagent.kit.context import Context

_ioctl = pyroute.load("ethtool.ioctl")
NoSuchDevice = _ioctl.NoSuchDevice


@contextlib.contextmanager
def ethtool(ctx: Context) -> Iterator[Any]:
    """pyroute2's ethtool ioctl handle in the context's namespace (``change_ifname`` picks the interface).

    Its socket is made in the namespace once, by a thread moved there; the kernel finds interfaces in the
    socket's namespace, so this thread uses it without moving. The ioctl alone: pyroute2's ``Ethtool``
    would also open and probe a generic netlink socket on every use, which offload features never need.
    """
    with pyroute.handle("ethtool", ctx, lambda: ctx.in_netns(_ioctl.IoctlEthtool)) as tool:
        yield tool
