"""The lab node's package database: the host's, as it stands when the node is made, and no way to change it.

A lab node runs the host's programs (radvd, dhcp_release, haproxy, Open vSwitch), so what the host has installed
is what the node has: the roles' ``package`` resources read it from ``ROOT/var/lib/dpkg/status``, a copy of the
host's. A package the host lacks is missing on the node too, and the driver's apt-get then runs on the node's
root (``Dir``, ``dpkg --root``), where no repository is configured: the resource fails naming the package, and
the host's package set is never changed (``scripts/setup.sh`` installs what the roles ask for). The OpenStack
services themselves come from the lab's virtualenvs: the lab sets ``openstack_packages`` to false.
"""

from __future__ import annotations

import shutil
from pathlib import Path

HOST_STATUS = Path("/var/lib/dpkg/status")


def copy_package_database(root: Path) -> Path:
    """ROOT/var/lib/dpkg/status, a copy of the host's (an empty one where the host has no dpkg)."""
    admindir = root / "var" / "lib" / "dpkg"
    admindir.mkdir(parents=True, exist_ok=True)
    status = admindir / "status"
    if HOST_STATUS.is_file():
        shutil.copyfile(HOST_STATUS, status)
    else:
        status.touch()
    return status
