"""What both command-line programs share: the cliff application, its command classes and result tables."""

from __future__ import annotations

import logging
import os
import sys
import warnings
from typing import TYPE_CHECKING, Any, Sequence

from cliff import command, lister, show
from cliff.app import App
from cliff.commandmanager import CommandManager
from cliff.help import HelpExit

from nodeagent import __version__
from nodeagent.kit.errors import InvalidInput, NodeagentError

if TYPE_CHECKING:
    from nodeagent.kit.result import ReconcileResult


class _OwnEpilog:
    """cliff's default epilog reads every installed distribution's metadata (0.1 s of a command's 0.3 s) to
    say which plugin provided a command; every command here is nodeagent's own."""

    _epilog: str | None

    def get_epilog(self) -> str:
        return self._epilog or ""


class Command(_OwnEpilog, command.Command):
    """A command that prints nothing of its own (cliff's ``Command``)."""


class Lister(_OwnEpilog, lister.Lister):
    """A command that prints a table (cliff's ``Lister``)."""


class ShowOne(_OwnEpilog, show.ShowOne):
    """A command that prints one record (cliff's ``ShowOne``)."""


class NodeAgentApp(App):
    """A cliff application that prints help instead of starting an interactive shell."""

    def __init__(self, description: str, commands: dict[str, type],
                 default_config_file: str = "/etc/nodeagent/nodeagent.conf"):
        self.default_config_file = default_config_file
        manager = CommandManager(None)  # the commands are given: no entry-point group to scan (3 ms)
        for name, made in commands.items():
            manager.add_command(name, made)
        super().__init__(description=description, version=__version__, command_manager=manager,
                         deferred_help=True)

    def build_option_parser(self, description: str, version: str, argparse_kwargs: Any = None) -> Any:
        parser = super().build_option_parser(description, version, argparse_kwargs)
        parser.add_argument("--config-file", action="append", metavar="PATH", dest="config_files",
                            help=f"oslo.config file to read (repeatable; default {self.default_config_file} "
                                 "when it exists)")
        return parser

    def print_help_if_requested(self) -> None:
        """``--help``: the options and one line per command, as cliff's help prints them (paged on a
        terminal) but without its look-up of the distribution that provided each command: that reads every
        installed distribution's metadata, 0.06 s of the 0.14 s ``nodeagent --help`` cost."""
        if not self.options.deferred_help:
            return
        import autopage.argparse  # cliff's own pager, imported by cliff already

        pager = autopage.argparse.help_pager(self.stdout)
        autopage.argparse.use_color_for_parser(self.parser, pager.to_terminal())
        with pager as out:
            self.parser.print_help(out)
            out.write("\nCommands:\n")
            for name, entry in sorted(self.command_manager):
                command_class = entry.load()
                one_liner = command_class(self, None).get_description().split("\n")[0].rstrip(".")
                origin = " (cliff)" if command_class.__module__.startswith("cliff.") else ""
                out.write(f"  {name:<13}  {one_liner}{origin}\n")
        raise HelpExit()

    def initialize_app(self, argv: Sequence[str]) -> None:
        # Failures are in the result table; the engine's own log lines are for -v.
        if self.options.verbose_level <= 1:
            for name in ("nodeagent.node.engine", "ovsdbapp"):
                logging.getLogger(name).setLevel(logging.CRITICAL)
            logging.getLogger("oslo_service").setLevel(logging.WARNING)

    def run(self, argv: list[str]) -> int:
        return super().run(argv or ["--help"])

    def clean_up(self, cmd: Any, result: int, err: BaseException | None) -> None:
        self.error = err  # cliff hands the command's error here, and only here: run_subcommand maps it

    def run_subcommand(self, argv: list[str]) -> int:
        self.error = None
        result = super().run_subcommand(argv)
        return exit_code(self.error) if self.error is not None else result

    def conf(self) -> Any:
        """The oslo.config options, from --config-file or the default file when it exists."""
        from nodeagent.cli import config

        if self.options.config_files:
            return config.make_conf(self.options.config_files)
        exists = os.path.exists(self.default_config_file)
        return config.make_conf([self.default_config_file] if exists else [])


def exit_code(error: BaseException) -> int:
    """The one place errors become exit codes: a ``NodeagentError`` (kit/errors.py) carries its own (1: the
    request failed, its message says why); anything else is a fault of nodeagent's, said as one (1 as well,
    and ``--debug`` shows the traceback). Usage errors exit 2 (argparse); plan and apply add theirs
    (2 changes pending, 4 some resources failed) as results, not errors."""
    return error.exit_code if isinstance(error, NodeagentError) else 1


RESULT_COLUMNS = ("Resource", "Driver", "Status", "Details", "Duration (ms)")


def check_columns(parsed_args: Any, columns: Sequence[str]) -> None:
    """Refuse ``-c NAME`` for a column the table will not have, before the command acts.

    cliff checks columns only when it prints, which for ``apply`` is after the node changed.
    """
    unknown = [c for c in getattr(parsed_args, "columns", None) or [] if c not in columns]
    if unknown:
        raise InvalidInput(f"no column named {', '.join(repr(c) for c in unknown)} "
                         f"(columns: {', '.join(columns)}); nothing was done")


def result_rows(result: ReconcileResult | dict[str, Any], structured: bool
                ) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
    """One row per resource; details as text for a table, as a list for json and yaml.

    Takes a result or its dict form (as an agent returns it over RPC).
    """
    from nodeagent.kit.result import ReconcileResult  # on use, as the next: --help needs neither

    data = result.to_dict() if isinstance(result, ReconcileResult) else result
    columns = RESULT_COLUMNS
    rows = []
    for item in data["resources"]:
        details = [_describe(change) for change in item["changes"]]
        if item.get("error"):
            kind = item.get("error_kind")
            details.append(f"error ({kind}): {item['error']}" if kind else item["error"])
        details += item.get("notified", [])
        rows.append((item["id"], item["driver"], item["status"], details if structured else "\n".join(details),
                     round(item["duration"] * 1000, 1)))
    return columns, rows


def _describe(change: dict[str, Any]) -> str:
    from nodeagent.kit.result import Change

    return Change(change["field"], change.get("old"), change.get("new"), change.get("diff")).describe()


def main_for(app: App, argv: Sequence[str] | None) -> int:
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")  # imported by ovs and oslo.service
    return app.run(list(sys.argv[1:] if argv is None else argv))
