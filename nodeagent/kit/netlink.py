"""Netlink for drivers: an rtnetlink handle in the context's namespace; link events for the watch hub.

Shared by the drivers that act on kernel links (linux_bridge, ethtool) so none of
them opens sockets or runs watch threads of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from typing import Callable, Iterator

from nodeagent.kit import pyroute
from nodeagent.kit.context import NETNS_DIR, Context
from nodeagent.kit.errors import PermanentError, TemporaryError

_linux, _rtnl = pyroute.load("iproute.linux"), pyroute.load("netlink.rtnl")  # not the whole package: kit/pyroute.py
IPRoute, AsyncIPRoute = _linux.IPRoute, _linux.AsyncIPRoute
NetlinkError = pyroute.load("netlink.exceptions").NetlinkError
RTMGRP_IPV4_IFADDR, RTMGRP_LINK = _rtnl.RTMGRP_IPV4_IFADDR, _rtnl.RTMGRP_LINK
RTNLGRP_IPV4_NETCONF = _rtnl.RTNLGRP_IPV4_NETCONF

LOG = logging.getLogger(__name__)
IFF_UP = 0x1
RTMGRP_IPV4_NETCONF = 1 << (RTNLGRP_IPV4_NETCONF - 1)


# Opening a handle in a namespace costs more than the requests themselves, so one is
# kept per (thread, namespace): pyroute2 handles are not shared between threads.
_handles: dict[tuple[int, str | None], tuple[IPRoute, int]] = {}


@contextlib.contextmanager
def iproute(ctx: Context) -> Iterator[IPRoute]:
    """An rtnetlink handle in the context's namespace (never creating the namespace)."""
    ctx.check_netns()
    key = (threading.get_ident(), ctx.netns)
    identity = os.stat(NETNS_DIR / ctx.netns).st_ino if ctx.netns else 0
    handle, opened_for = _handles.get(key, (None, None))
    if handle is None or opened_for != identity:  # a namespace deleted and made again is a new one
        if handle is not None:
            handle.close()
        handle = IPRoute(netns=ctx.netns, flags=0) if ctx.netns else IPRoute()
        _handles[key] = (handle, identity)
    try:
        yield handle
    except NetlinkError as exc:
        raise netlink_error(exc, "netlink request failed") from None
    except OSError:
        _handles.pop(key, None)
        handle.close()
        raise


def netlink_error(exc: NetlinkError, what: str) -> Exception:
    text = f"{what}: {exc.args[1] if len(exc.args) > 1 else exc}"
    return TemporaryError(text) if exc.code in (11, 16) else PermanentError(text)  # EAGAIN, EBUSY


def find_link(ipr: IPRoute, name: str):
    """The link message for ``name``, or None."""
    found = ipr.link("get", ifname=name) if ipr.link_lookup(ifname=name) else []
    return found[0] if found else None


def require_index(ipr: IPRoute, name: str, ctx: Context) -> int:
    """The index of an interface that must already exist, with the message an operator understands."""
    indexes = ipr.link_lookup(ifname=name)
    if not indexes:
        raise PermanentError(f"interface {name} not found {ctx.where()}")
    return indexes[0]


def link_name(ipr: IPRoute, index: int | None) -> str | None:
    if not index:
        return None
    found = ipr.link("get", index=index)
    return found[0].get_attr("IFLA_IFNAME") if found else None


class LinkListener:
    """One netlink socket per namespace: calls ``on_links(names)`` when links change (a link, its IPv4
    address, or a port of it: the names are the link's and its master's), ``on_netconf()`` when the kernel
    announces a forwarding or rp_filter change.

    The socket lives in the listener's thread: pyroute2 sockets must be read by the thread that made them.
    The thread sleeps until the kernel sends something or ``stop()`` wakes its loop: no timer.
    """

    def __init__(self, netns: str | None, on_links: Callable[[set[str]], None], on_netconf: Callable[[], None]):
        self.netns = netns
        self.on_links = on_links
        self.on_netconf = on_netconf
        self._stop = threading.Event()
        self._wake: Callable[[], None] | None = None  # ends the listener's wait, once its loop runs
        self._ready = threading.Event()
        self._indexes: dict[int, str] = {}
        self._thread = threading.Thread(target=self._run, name=f"netlink-{netns or 'host'}", daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def stop(self) -> None:
        self._stop.set()
        wake = self._wake
        if wake is not None:
            try:
                wake()
            except RuntimeError:  # its loop has ended already
                pass
        self._thread.join(5)

    def _run(self) -> None:
        try:
            asyncio.run(self._listen())
        except Exception:  # a dead listener must be visible, the periodic resync still covers it
            LOG.exception("netlink listener %s stopped", f"in network namespace '{self.netns}'" if self.netns
                          else "on this node")
        finally:
            self._ready.set()

    async def _listen(self) -> None:
        kwargs = {"netns": self.netns, "flags": 0} if self.netns else {}
        async with AsyncIPRoute(**kwargs) as ipr:
            await ipr.bind(groups=RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_NETCONF)
            for link in [m async for m in await ipr.get_links()]:
                self._remember(link)
            loop, stopping = asyncio.get_running_loop(), asyncio.Event()
            self._wake = lambda: loop.call_soon_threadsafe(stopping.set)
            self._ready.set()
            stopped = asyncio.ensure_future(stopping.wait())
            try:
                while not self._stop.is_set():  # stop() before _wake was set is seen here
                    received = asyncio.ensure_future(_collect(ipr.get()))
                    await asyncio.wait({received, stopped}, return_when=asyncio.FIRST_COMPLETED)
                    if not received.done():
                        received.cancel()
                        break
                    for message in received.result():
                        try:
                            self._dispatch(message)
                        except Exception:  # one odd message must not end the listener
                            LOG.exception("netlink listener: cannot handle %r", message.get("event"))
            finally:
                stopped.cancel()

    def _remember(self, message) -> str | None:
        name = message.get_attr("IFLA_IFNAME")
        index = message.get("index")
        if name and index and message.get("event") != "RTM_DELLINK":
            self._indexes[index] = name
        return name or self._indexes.get(index)

    def _dispatch(self, message) -> None:
        event = str(message.get("event"))
        if event.endswith("NETCONF"):
            self.on_netconf()
            return
        name = self._remember(message)
        if event.endswith("ADDR"):
            name = message.get_attr("IFA_LABEL") or self._indexes.get(message.get("index"))
        names = {name, self._indexes.get(message.get_attr("IFLA_MASTER") or 0)} - {None}
        if names:
            self.on_links(names)


async def _collect(generator) -> list:
    return [message async for message in generator]
