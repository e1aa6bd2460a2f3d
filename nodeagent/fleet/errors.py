"""What the coordinator's parts refuse to do, as exceptions the CLI turns into one-line errors."""

from __future__ import annotations


class NotFound(Exception):
    """No such node (or no document for it)."""


class FleetInconsistent(Exception):
    """The rendered documents disagree between nodes; nothing was pushed."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("the fleet's settings disagree, nothing was pushed:\n  " + "\n  ".join(problems))
