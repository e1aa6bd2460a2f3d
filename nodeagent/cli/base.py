"""What both command-line programs share: the cliff application and result tables."""

from __future__ import annotations

import logging
import sys
import warnings
from typing import Any, Sequence

from cliff.app import App
from cliff.commandmanager import CommandManager

from nodeagent import __version__
from nodeagent.result import ReconcileResult


class NodeAgentApp(App):
    """A cliff application that prints help instead of starting an interactive shell."""

    def __init__(self, description: str, commands: dict[str, type]):
        manager = CommandManager("nodeagent.cli.unused")
        for name, command in commands.items():
            manager.add_command(name, command)
        super().__init__(description=description, version=__version__, command_manager=manager,
                         deferred_help=True)

    def build_option_parser(self, description: str, version: str, argparse_kwargs: Any = None) -> Any:
        parser = super().build_option_parser(description, version, argparse_kwargs)
        parser.add_argument("--config-file", action="append", metavar="PATH", dest="config_files",
                            help="oslo.config file to read (repeatable; default /etc/nodeagent/nodeagent.conf "
                                 "when it exists)")
        return parser

    def initialize_app(self, argv: Sequence[str]) -> None:
        # Failures are in the result table; the engine's own log lines are for -v.
        if self.options.verbose_level <= 1:
            for name in ("nodeagent.engine", "ovsdbapp"):
                logging.getLogger(name).setLevel(logging.CRITICAL)

    def run(self, argv: list[str]) -> int:
        return super().run(argv or ["--help"])


def result_rows(result: ReconcileResult, structured: bool) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
    """One row per resource; details as text for a table, as a list for json and yaml."""
    columns = ("Resource", "Driver", "Status", "Details", "Duration (ms)")
    rows = []
    for item in result.resources:
        details = item.details()
        rows.append((item.id, item.driver, item.status.value, details if structured else "\n".join(details),
                     round(item.duration * 1000, 1)))
    return columns, rows


def main_for(app: App, argv: Sequence[str] | None) -> int:
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    return app.run(list(sys.argv[1:] if argv is None else argv))
