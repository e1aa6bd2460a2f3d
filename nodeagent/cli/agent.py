"""``nodeagent``: the node side. Local mode (plan, apply) needs no broker and no coordinator.

Each command imports what it uses when it runs: ``nodeagent --help`` loads none of the engine, and no local
command loads oslo.messaging (tests/functional/test_lean_imports.py holds both).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any, Sequence

from nodeagent.cli import lint
from nodeagent.cli.base import (RESULT_COLUMNS, Command, Lister, NodeAgentApp, check_columns, main_for,
                                result_rows)
from nodeagent.kit.errors import Unavailable

if TYPE_CHECKING:
    from nodeagent.kit.result import ReconcileResult

EXIT_OK, EXIT_INVALID, EXIT_PENDING, EXIT_FAILED = 0, 1, 2, 4


class _LocalCommand(Lister):
    """Shared by plan and apply: read the document, validate it, reconcile it in a context."""

    dry_run = True

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("state_file", metavar="STATE_FILE", help="desired-state document (YAML or JSON)")
        parser.add_argument("--root", default="/", metavar="DIR",
                            help="act on files under DIR instead of / (a scratch root for a lab or a test)")
        parser.add_argument("--netns", metavar="NAME",
                            help="act on the network namespace NAME (sysctls, links) instead of the agent's own")
        parser.add_argument("--ovsdb", metavar="CONNECTION",
                            help="Open vSwitch database to use, e.g. unix:/run/openvswitch/db.sock "
                                 "(default: ovsdb_connection from the configuration)")
        parser.add_argument("--release", metavar="SERIES", help=lint.RELEASE_HELP)
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[Any, Any]:
        from nodeagent.document.model import load_document
        from nodeagent.document.registry import DriverRegistry
        from nodeagent.node.engine import Engine
        from nodeagent.node.options import make_context

        check_columns(parsed_args, RESULT_COLUMNS)
        conf = self.app.conf()
        registry = DriverRegistry.from_entry_points()
        document = load_document(parsed_args.state_file, registry)
        lint.gate(self.app, document, parsed_args.release)  # wrong OpenStack options: refused before any change
        engine = Engine(registry, make_context(conf, parsed_args.root, parsed_args.netns, parsed_args.ovsdb))
        engine.preflight(document)
        self.result = engine.reconcile(document, dry_run=self.dry_run)
        self.app.stderr.write(self.result.summary() + "\n")
        self.app.stderr.flush()
        return result_rows(self.result, parsed_args.formatter in ("json", "yaml"))

    def run(self, parsed_args: argparse.Namespace) -> int:
        super().run(parsed_args)
        return self.exit_code(self.result)

    def exit_code(self, result: ReconcileResult) -> int:
        raise NotImplementedError


class Plan(_LocalCommand):
    """Show what apply would change, resource by resource; change nothing.

    Exit status: 0 in sync, 2 changes pending, 1 invalid document, 4 some resource
    could not even be observed.
    """

    def exit_code(self, result: ReconcileResult) -> int:
        return EXIT_FAILED if result.failed else EXIT_PENDING if result.pending else EXIT_OK


class Apply(_LocalCommand):
    """Apply a desired-state document to this node and print what changed.

    Resources are applied in dependency order; one that fails stops only those
    that depend on it. Exit status: 0 all succeeded, 1 invalid document (nothing
    applied), 4 some resources failed.
    """

    dry_run = False

    def exit_code(self, result: ReconcileResult) -> int:
        return EXIT_FAILED if result.failed else EXIT_OK


class Run(Command):
    """Run the agent daemon: enforce the cached document, then follow the coordinator.

    Reads transport_url, host, state_dir, coordinator_public_key and the intervals
    from the configuration. SIGTERM (or SIGINT) stops it cleanly, SIGHUP reloads the configuration.
    """

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("--debug-log", action="store_true", help="log at debug level")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> int:
        import logging
        import signal
        import threading

        from nodeagent.process.daemon import without_eventlet

        without_eventlet()  # before the agent's modules import oslo.messaging
        from nodeagent.process import metrics
        from nodeagent.process.daemon import Signals, before_exit, setup_logging
        from nodeagent.node.agent import Agent
        from nodeagent.wire import rpc

        conf = self.app.conf()
        setup_logging("nodeagent", parsed_args.debug_log, host=conf.host)
        # The process owns what is the process's: signals, the broker connections, the metrics port.
        rpc.register_opts(conf)
        transport, notifications = rpc.rpc_transport(conf), rpc.notification_transport(conf)
        agent = Agent(conf, transport=transport, notification_transport=notifications)
        signals = Signals(signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
        try:
            metrics.serve(agent.metrics.registry, conf.metrics_address)
            agent.start()
            # Asleep until a signal comes, or the agent stops by itself (only when its loop failed).
            threading.Thread(target=lambda: (agent.stopped.wait(), signals.wake()), name="stopped", daemon=True).start()
            while not agent.stopped.is_set():
                signum = signals.wait()
                if signum == signal.SIGHUP:
                    agent.reload()
                elif signum is not None:
                    logging.getLogger(__name__).info("%s: stopping", signal.Signals(signum).name)
                    break
        finally:
            agent.stop()
            rpc.within(rpc.STOP_WAIT, lambda: rpc.close_transport(transport), notifications.cleanup)
            signals.close()
            before_exit()
        return 1 if agent.failed else 0


class Keygen(Command):
    """Print this node's public keys (signing, encryption), making them on first use.

    --rotate makes new ones (agent re-key): stop the agent, rotate, start it. Its next report is
    signed with the new key and carries the old key's endorsement, so the coordinator moves to
    it without the operator; the old encryption key still opens the cached document until the
    coordinator sends one for the new key.
    """

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("--rotate", action="store_true", help="make new key pairs (see above)")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> int:
        from pathlib import Path

        from nodeagent.wire.protocol import NodeChannel

        conf = self.app.conf()
        state_dir = Path(conf.state_dir)
        channel = NodeChannel(conf.host, state_dir, Path(conf.node_key or state_dir / "node.key"),
                              conf.coordinator_public_key)
        signing, encryption = channel.make_keys(rotate=parsed_args.rotate)
        self.app.stdout.write(f"signing {signing}\nencryption {encryption}\n")
        return 0


class Status(Lister):
    """Show this node's local view: generation, mode, each resource's state, the last drift events.

    Read from the agent's state directory, so it works with no broker and no coordinator.
    """

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[Any, Any]:
        import json
        import os

        from nodeagent.wire.messages import LocalView, Malformed

        conf = self.app.conf()
        path = os.path.join(conf.state_dir, "status.json")
        try:
            with open(path, encoding="utf-8") as stream:
                view = LocalView.from_dict(json.load(stream))
        except FileNotFoundError:
            raise Unavailable(f"no status in {conf.state_dir}: is 'nodeagent run' running here?") from None
        except (ValueError, Malformed) as exc:
            raise Unavailable(f"{path}: {exc}") from None
        self.app.stderr.write(f"{view.node}: generation {view.generation}, mode {view.mode}, {view.counted()}\n")
        if view.rolled_back is not None:
            self.app.stderr.write(f"{view.rolled_back.describe()} (restored: "
                                  f"{'yes' if view.rolled_back.restored else 'no, the probes still fail'})\n")
        for source, how in view.attribution.items():  # whether a drift can name who made it
            self.app.stderr.write(f"{source} changes heard by {how}\n")
        last = view.last_drift()
        structured = parsed_args.formatter in ("json", "yaml")
        rows = []
        for resource in view.resources:
            drift = last.get(resource.id)
            shown = (drift.to_dict() if structured else drift.outcome()) if drift else ""
            rows.append((resource.id, resource.driver, resource.mode, resource.status,
                         "yes" if resource.backed_off else "", shown))
        return ("Resource", "Driver", "Mode", "Status", "Backed off", "Last drift"), rows


def make_app() -> NodeAgentApp:
    return NodeAgentApp("nodeagent: keep this node true to its desired state.\n\n"
                        "Local mode: 'nodeagent plan STATE_FILE' shows what differs, "
                        "'nodeagent apply STATE_FILE' makes it so, "
                        "'nodeagent lint STATE_FILE' checks its OpenStack options.\n"
                        "Fleet mode: 'nodeagent run' follows the coordinator.",
                        {"plan": Plan, "apply": Apply, "run": Run, "status": Status, "lint": lint.Lint,
                         "keygen": Keygen})


def main(argv: Sequence[str] | None = None) -> int:
    return main_for(make_app(), argv)


if __name__ == "__main__":
    sys.exit(main())
