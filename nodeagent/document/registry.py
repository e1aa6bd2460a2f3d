"""Finding drivers: every driver is an entry point in the ``nodeagent.drivers`` group."""

from __future__ import annotations

from typing import Iterable

from stevedore import ExtensionManager

from nodeagent.kit.driver import Driver
from nodeagent.kit.errors import InvalidResource, PermanentError, preview

ENTRY_POINT_GROUP = "nodeagent.drivers"


class DriverRegistry:
    """The drivers available to a document, by name."""

    def __init__(self, drivers: Iterable[Driver]):
        self._drivers = {driver.name: driver for driver in drivers}

    @classmethod
    def from_entry_points(cls) -> "DriverRegistry":
        def failed(_manager, entry_point, exc):
            raise PermanentError(f"driver '{entry_point.name}' could not be loaded: {exc}") from exc

        manager = ExtensionManager(ENTRY_POINT_GROUP, invoke_on_load=True, on_load_failure_callback=failed)
        drivers = []
        for extension in manager:
            driver = extension.obj
            driver.name = extension.name
            drivers.append(driver)
        return cls(drivers)

    @property
    def names(self) -> list[str]:
        return sorted(self._drivers)

    def get(self, name: object) -> Driver:
        if not isinstance(name, str) or name not in self._drivers:
            raise InvalidResource("driver", f"names unknown driver {preview(name)} (known drivers: {', '.join(self.names)})")
        return self._drivers[name]
