"""Netlink for drivers: an rtnetlink handle in the context's namespace, the links of one pass; link events
for the watch hub.

Shared by the drivers that act on kernel links (linux_bridge, address) and the watch hub, so none
of them opens sockets or runs watch threads of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import threading
from typing import Any, Callable, Iterator

from nodeagent.kit import passcache, pyroute
from nodeagent.kit.context import Context
from nodeagent.kit.errors import PermanentError, TemporaryError

_linux, _rtnl = pyroute.load("iproute.linux"), pyroute.load("netlink.rtnl")  # not the whole package: kit/pyroute.py
IPRoute, AsyncIPRoute = _linux.IPRoute, _linux.AsyncIPRoute
NetlinkError = pyroute.load("netlink.exceptions").NetlinkError
RTMGRP_IPV4_IFADDR, RTMGRP_LINK = _rtnl.RTMGRP_IPV4_IFADDR, _rtnl.RTMGRP_LINK
RTNLGRP_IPV4_NETCONF = _rtnl.RTNLGRP_IPV4_NETCONF

LOG = logging.getLogger(__name__)
IFF_UP = 0x1
RTMGRP_IPV4_NETCONF = 1 << (RTNLGRP_IPV4_NETCONF - 1)


@contextlib.contextmanager
def iproute(ctx: Context) -> Iterator[IPRoute]:
    """An rtnetlink handle in the context's namespace (never creating the namespace)."""
    with pyroute.handle("rtnl", ctx, lambda: IPRoute(netns=ctx.netns, flags=0) if ctx.netns else IPRoute()) as ipr:
        try:
            yield ipr
        except NetlinkError as exc:
            raise netlink_error(exc, "netlink request failed") from None


class Links:
    """A namespace's links as one pass reads them, each at most once: one by one (a request each), or all
    by one dump once a bridge asks for its ports.

    One by one, because a node may hold hundreds of links (a VM's tap and veths) and pyroute2 decodes a
    dump in Python: 400 links cost 80 ms, one link 0.3 ms. The dump, because the kernel tells a bridge's
    ports only by listing every link with its master.
    """

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self._by_name: dict[str, Any] = {}  # None: not there
        self._names: dict[int, str] = {}
        self._dumped = False

    def get(self, name: str) -> Any:
        """The link message for ``name``, or None."""
        if name not in self._by_name and not self._dumped:
            self._read(ifname=name)
            self._by_name.setdefault(name, None)
        return self._by_name.get(name)

    def name_of(self, index: int | None) -> str | None:
        if not index:
            return None
        if index not in self._names and not self._dumped:
            self._read(index=index)
        return self._names.get(index)

    def dump(self) -> None:
        """Read every link at once (once per pass), when a bridge's ports will be wanted."""
        if not self._dumped:
            with iproute(self.ctx) as ipr:
                self._by_name, self._names = {}, {}
                for message in ipr.get_links():
                    self._keep(message)
            self._dumped = True

    def ports_of(self, index: int) -> list[str]:
        """The names of the links whose master is ``index``, sorted."""
        self.dump()
        return sorted(name for name, message in self._by_name.items()
                      if message is not None and message.get_attr("IFLA_MASTER") == index)

    def _read(self, **which: Any) -> None:
        with iproute(self.ctx) as ipr:
            try:
                found = ipr.link("get", **which)
            except NetlinkError as exc:
                if exc.code != errno.ENODEV:
                    raise
                found = ()
        for message in found:
            self._keep(message)

    def _keep(self, message: Any) -> None:
        name = message.get_attr("IFLA_IFNAME")
        self._by_name[name] = message
        self._names[message["index"]] = name


def links(ctx: Context) -> Links:
    """The links of the context's namespace, each read once per reconcile pass (``kit/passcache``) and
    shared by every resource that reads it; afresh outside a pass."""
    return passcache.once(("links", ctx.netns), lambda: Links(ctx))


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
