"""``nodeagentctl``: the operator's side, talking to the coordinator (its commands come with the fleet)."""

from __future__ import annotations

import sys
from typing import Sequence

from nodeagent.cli.base import NodeAgentApp, main_for


def make_app() -> NodeAgentApp:
    return NodeAgentApp("nodeagentctl: manage the nodeagent fleet through its coordinator.", {})


def main(argv: Sequence[str] | None = None) -> int:
    return main_for(make_app(), argv)


if __name__ == "__main__":
    sys.exit(main())
