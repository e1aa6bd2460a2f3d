"""What the agent does with a drift, by who made it: ``drift_ignore_from`` and ``drift_contest_from``.

Some writers are expected: a package upgrade's postinst, a unit that owns a file alongside
the agent. Their changes are recorded and left (``ignore``). Others are another manager of
the same thing (a second configuration tool): fighting them is pointless, so their first
change makes the resource contested at once (``contest``), as repeated drift would.

An entry names a systemd unit (``puppet.service``), an executable's path (``/usr/bin/dpkg``)
or its name (``dpkg``); a name also matches the writer's parents (a postinst run by dpkg).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from nodeagent.wire.messages import Writer

IGNORE, CONTEST = "ignore", "contest"


@dataclass(frozen=True)
class WriterPolicy:
    ignore_from: tuple[str, ...] = ()
    contest_from: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for option, entries in (("drift_ignore_from", self.ignore_from), ("drift_contest_from", self.contest_from)):
            for entry in entries:
                if not entry.strip() or any(c.isspace() for c in entry):
                    raise ValueError(f"{option}: {entry!r} is not a unit, an executable path or an executable "
                                     f"name (no spaces)")
        both = sorted(set(self.ignore_from) & set(self.contest_from))
        if both:
            raise ValueError(f"drift_ignore_from and drift_contest_from both name {', '.join(both)}")

    def verdict(self, by: Writer | None) -> str | None:
        """``ignore``, ``contest``, or None (correct it, as any drift) for a change made by ``by``."""
        if by is None or by.unknown:
            return None
        names = _names(by)
        if names & set(self.contest_from):
            return CONTEST
        if names & set(self.ignore_from):
            return IGNORE
        return None


def _names(by: Writer) -> set[str]:
    """What an entry may match: the unit, the executable's path and name, its parents' names."""
    names = {parent.rsplit("[", 1)[0] for parent in by.parents}
    if by.unit:
        names.add(by.unit)
    if by.executable:
        names |= {by.executable, os.path.basename(by.executable)}
    elif by.command and by.exited:  # a zombie tells only its name
        names.add(by.command)
    return names
