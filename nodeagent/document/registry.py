"""Finding drivers: every driver is an entry point in the ``nodeagent.drivers`` group.

A driver is made on first use, not when the registry is: a document with six kinds of resource loads six
driver modules, and a document without OVS bridges never imports ovsdbapp.
"""

from __future__ import annotations

import threading
from typing import Iterable

from stevedore import NamedExtensionManager

from nodeagent.kit.driver import Driver
from nodeagent.kit.errors import InvalidResource, preview

ENTRY_POINT_GROUP = "nodeagent.drivers"


class DriverRegistry:
    """The drivers available to a document, by name; those from entry points made when first asked for."""

    def __init__(self, drivers: Iterable[Driver] = (), installed: Iterable[str] = ()):
        self._drivers = {driver.name: driver for driver in drivers}
        self._installed = {*installed} - {*self._drivers}  # entry points not made yet
        self._lock = threading.Lock()  # the agent's threads may ask for the same new driver at once

    @classmethod
    def from_entry_points(cls) -> "DriverRegistry":
        """Every driver installed in the group, none of them loaded yet (stevedore's cached entry points)."""
        return cls(installed=NamedExtensionManager(ENTRY_POINT_GROUP, names=[]).entry_points_names())

    @property
    def names(self) -> list[str]:
        return sorted({*self._drivers, *self._installed})

    @property
    def loaded(self) -> list[str]:
        """The drivers made so far (what a document used)."""
        return sorted(self._drivers)

    def get(self, name: object) -> Driver:
        if not isinstance(name, str) or name not in self._drivers and name not in self._installed:
            raise InvalidResource("driver", f"names unknown driver {preview(name)} (known drivers: {', '.join(self.names)})")
        driver = self._drivers.get(name)
        if driver is None:
            with self._lock:
                driver = self._drivers.get(name) or self._make(name)
        return driver

    def _make(self, name: str) -> Driver:
        def failed(_manager, entry_point, exc):
            # Made while a document is read: the document is refused, naming the driver, and nothing is changed.
            raise InvalidResource("driver", f"names driver '{entry_point.name}', which is installed but could not "
                                  f"be loaded: {exc}") from exc

        manager = NamedExtensionManager(ENTRY_POINT_GROUP, names=[name], invoke_on_load=True,
                                        on_load_failure_callback=failed)
        driver = manager[name].obj
        driver.name = name
        self._drivers[name] = driver
        return driver
