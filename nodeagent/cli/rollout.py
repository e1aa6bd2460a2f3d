"""``nodeagentctl rollout``: a change pushed to its nodes in batches, and what an operator does with it.

    nodeagentctl rollout start (--role ROLE | --nodes a,b) [--max-unavailable N|N%] [--canary N] [--soak S]
    nodeagentctl var set KEY VALUE --rollout [--role ROLE] [...]   the change itself goes out in batches
    nodeagentctl rollout list | show ID | status ID [--watch]
    nodeagentctl rollout pause|resume|abort ID
"""

from __future__ import annotations

import argparse
import time
from typing import Any, Callable

from nodeagent.cli.base import Command, Lister

from nodeagent.fleet.errors import InvalidInput
from nodeagent.cli.coordinated import _converge, _coordinator, _quiet_broker_retries, _when, host_name

FINISHED = ("completed", "failed", "aborted", "paused")  # where --watch stops


def add_policy_arguments(parser: argparse.ArgumentParser, selection: bool) -> None:
    """The rollout's options, shared by 'rollout start' and a change made '--rollout'."""
    group = parser.add_argument_group("rollout (batches, each healthy before the next)")
    if selection:
        which = group.add_mutually_exclusive_group()
        which.add_argument("--role", metavar="ROLE", help="only nodes with this role go through the rollout "
                           "(others get the change at once)")
        which.add_argument("--nodes", metavar="HOSTS", type=host_name,
                           help="only these nodes: names or shell patterns, comma-separated ('compute*,net1')")
    group.add_argument("--max-unavailable", metavar="N|N%", default="1",
                       help="nodes changing at once: a count or a percentage of the rollout's nodes (default 1)")
    group.add_argument("--canary", metavar="N", type=int, default=0,
                       help="this many nodes alone first, before any batch (default 0)")
    group.add_argument("--soak", metavar="SECONDS", type=float, default=0.0,
                       help="seconds each batch must stay healthy before the next is released (default 0)")


def _policy_and_selection(coordinator: Any, parsed_args: argparse.Namespace) -> tuple[Any, Any]:
    from nodeagent.fleet.rollouts import Policy, Selection

    policy = Policy(parsed_args.max_unavailable, parsed_args.canary, parsed_args.soak)
    nodes = tuple(coordinator.settings.matching(parsed_args.nodes)) if getattr(parsed_args, "nodes", None) else None
    return policy, Selection(role=getattr(parsed_args, "role", None), nodes=nodes)


Converge = Callable[[Any], list]  # DesiredState.converge's shape: a change in, the documents pushed out


def start(app: Any, parsed_args: argparse.Namespace, make: Callable[[Any, Converge], list] | None = None,
          describe: str = "") -> int:
    """Start a rollout and say what went out. ``make(coordinator, converge)`` makes an operator's change
    through ``converge`` (e.g. ``settings.set_variable(..., converge=converge)``): the change and the rollout
    are one transaction."""
    coordinator = _coordinator(app)
    policy, selection = _policy_and_selection(coordinator, parsed_args)
    _quiet_broker_retries(app)
    made: list[int | None] = []

    def through_rollout(change: Any) -> list:
        number, pushed = coordinator.rollouts.start(selection, policy, change, describe)
        made.append(number)
        return pushed

    def begin() -> list[tuple[str, int]]:
        return through_rollout(None) if make is None else make(coordinator, through_rollout)

    _converge(app, begin, coordinator.desired)
    if made and made[0] is not None:
        rollout, rows = coordinator.rollouts.show(made[0])
        batches = max(row.batch for row in rows)
        app.stdout.write(f"rollout {made[0]} started: {len(rows)} nodes of {rollout.selection} in {batches} "
                         f"batches; 'nodeagentctl rollout status {made[0]} --watch' follows it\n")
    return 0


class RolloutStart(Command):
    """Push what the selected nodes' roles render now in batches: a canary first, then at most
    --max-unavailable at a time, each batch healthy (its new generation applied, nothing failed or rolled
    back, its Neutron agents alive where the coordinator can ask) for --soak seconds before the next.

    The first failure stops the rollout: the nodes not reached keep what they run. Fix the cause and
    'rollout resume ID', or 'rollout abort ID'. A change made with '--rollout' (var set, node assign) goes
    out this way from the start.
    """

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        add_policy_arguments(parser, selection=True)
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> int:
        if not parsed_args.role and not parsed_args.nodes:
            raise InvalidInput("rollout start: say which nodes: --role ROLE or --nodes HOSTS")
        return start(self.app, parsed_args)


class RolloutList(Lister):
    """List rollouts, newest first: state, nodes done of all, the batch released last, why it stopped."""

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[Any, Any]:
        rows = []
        for rollout, counts in _coordinator(self.app).rollouts.list():
            total = sum(n for state, n in counts.items() if state != "superseded")
            rows.append((rollout.id, rollout.state, rollout.selection, rollout.change, f"{counts.get('done', 0)}"
                         f"/{total}", rollout.batch, _when(rollout.created_at), rollout.reason or ""))
        return ("ID", "State", "Selection", "Change", "Done", "Batch", "Started", "Reason"), rows


class _OneRollout:
    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)  # type: ignore[misc]
        parser.add_argument("rollout", metavar="ID", type=int)
        return parser


class RolloutShow(_OneRollout, Lister):
    """Show a rollout's nodes: batch, state (waiting, rolling, soaking, done, failed), generation, why."""

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[Any, Any]:
        _, rows = _coordinator(self.app).rollouts.show(parsed_args.rollout)
        return ("Node", "Batch", "State", "Generation", "Since", "Reason"), [
            (row.node, row.batch, row.state, row.generation or "", _when(row.since), row.reason or "")
            for row in rows]


class RolloutStatus(_OneRollout, Command):
    """A rollout's progress: a bar (nodes done of all) and its nodes' states; --watch follows it live
    until it completes, fails, is paused or aborted (exit status 0 when it completed or runs, 1 when it
    failed or was aborted)."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("--watch", action="store_true", help="follow it, redrawn each --interval")
        parser.add_argument("--interval", type=float, default=1.0, metavar="SECONDS")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> int:
        from rich.console import Console
        from rich.live import Live

        rollouts = _coordinator(self.app).rollouts
        console = Console(file=self.app.stdout, force_terminal=None, width=max(100, Console().width))
        rollout, rows = rollouts.show(parsed_args.rollout)
        if not parsed_args.watch:
            console.print(_view(rollout, rows))
        else:
            with Live(_view(rollout, rows), console=console, auto_refresh=False) as live:
                while rollout.state not in FINISHED:
                    time.sleep(parsed_args.interval)
                    rollout, rows = rollouts.show(parsed_args.rollout)
                    live.update(_view(rollout, rows), refresh=True)
        return 1 if rollout.state in ("failed", "aborted") else 0


def _view(rollout: Any, rows: list[Any]) -> Any:
    """The bar and the per-node table, as rich renders them (plain text when not on a terminal)."""
    from rich.console import Group
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    counted = [row for row in rows if row.state != "superseded"]
    progress = Progress(TextColumn(f"rollout {rollout.id} [bold]{rollout.state}[/] batch {rollout.batch}"),
                        BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    progress.add_task("nodes", total=len(counted) or 1, completed=sum(row.state == "done" for row in counted))
    table = Table("Node", "Batch", "State", "Generation", "Reason", box=None)
    style = {"done": "green", "failed": "red", "rolling": "yellow", "soaking": "cyan"}
    for row in counted:
        table.add_row(row.node, str(row.batch), f"[{style.get(row.state, 'dim')}]{row.state}[/]",
                      str(row.generation or ""), row.reason or "")
    parts = [progress, table] + ([f"reason: {rollout.reason}"] if rollout.reason else [])
    return Group(*parts)


class RolloutPause(_OneRollout, Command):
    """Pause a running rollout: nothing more is released; nodes already changing finish."""

    def take_action(self, parsed_args: argparse.Namespace) -> int:
        _coordinator(self.app).rollouts.pause(parsed_args.rollout)
        self.app.stdout.write(f"rollout {parsed_args.rollout} paused\n")
        return 0


class RolloutResume(_OneRollout, Command):
    """Resume a paused or failed rollout (after a fix: its failed nodes are judged again from now)."""

    def take_action(self, parsed_args: argparse.Namespace) -> int:
        _quiet_broker_retries(self.app)
        _coordinator(self.app).rollouts.resume(parsed_args.rollout)
        self.app.stdout.write(f"rollout {parsed_args.rollout} running\n")
        return 0


class RolloutAbort(_OneRollout, Command):
    """Abort a rollout: nothing more is released; the nodes not reached keep what they run (a later
    rollout over them, or undoing the change, lets their new documents go)."""

    def take_action(self, parsed_args: argparse.Namespace) -> int:
        _coordinator(self.app).rollouts.abort(parsed_args.rollout)
        self.app.stdout.write(f"rollout {parsed_args.rollout} aborted\n")
        return 0


COMMANDS = {"rollout start": RolloutStart, "rollout list": RolloutList, "rollout show": RolloutShow,
            "rollout status": RolloutStatus, "rollout pause": RolloutPause, "rollout resume": RolloutResume,
            "rollout abort": RolloutAbort}
