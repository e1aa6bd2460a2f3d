"""``nodeagentctl``: the operator's side. Runs on the coordinator's host (its database and key).

    nodeagentctl serve                       run the coordinator
    nodeagentctl node list                   the fleet at a glance
    nodeagentctl node accept HOST            trust a node's key
    nodeagentctl node revoke|forget HOST     take that trust back (forget: it may enrol again)
    nodeagentctl node set-state HOST FILE    give a node a document (next generation, pushed)
    nodeagentctl node plan HOST              what the node would change
    nodeagentctl events [--node H] [--type T]
    nodeagentctl verify [--node H]           the real Neutron's agent list against the roles
    nodeagentctl verify --traffic [--node H] stand-in instances: DHCP, router, other nodes (probe_access)
    nodeagentctl lint [--role R] [--node H] [--release X]   the rendered options, checked per release
    nodeagentctl db upgrade | db version     the inventory's schema (Alembic)
    nodeagentctl rollout start|list|show|status|pause|resume|abort   changes in batches (cli/rollout.py)
    nodeagentctl serve --web 127.0.0.1:PORT  the coordinator with its read-only web view
    nodeagentctl web-password USER [--role reader|admin]   a user of the web view's password file
"""

from __future__ import annotations

import argparse
import datetime
import signal
import sys
import time
from typing import Any, Sequence


from nodeagent.cli import lint, rollout
from nodeagent.cli.base import Command, Lister, NodeAgentApp, ShowOne, main_for, result_rows
from nodeagent.cli.coordinated import _converge, _coordinator, _print_stored, _quiet_broker_retries, _when, host_name
from nodeagent.cli.web import WebPassword
from nodeagent.fleet import enrolment, nodequery, rotation
from nodeagent.fleet.errors import NotFound, PushFailed
from nodeagent.kit.errors import Unavailable
from nodeagent.wire.trust import Refused


class Serve(Command):
    """Run the coordinator: answer agents' reports and pulls, mark silent nodes down; with --web (or [web]
    address), serve the read-only web view too."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("--web", metavar="HOST:PORT", help="serve the read-only web view there ([web] address)")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> int:
        from nodeagent.process.daemon import Signals, before_exit, setup_logging

        coordinator = _coordinator(self.app)
        if parsed_args.web:
            coordinator.conf.set_override("address", parsed_args.web, group="web")
        setup_logging("nodeagent-coordinator", host=coordinator.conf.host)
        signals = Signals(signal.SIGTERM, signal.SIGINT)  # the process's, not the coordinator object's
        try:
            coordinator.serve(stopped=lambda seconds: signals.wait(seconds) is not None)
        finally:
            signals.close()
        before_exit()
        return 0


class Keygen(Command):
    """Set up the coordinator (its state directory, signing key (0600), at-rest key and inventory, each
    unless there) and print the public key agents need. Run it first: the other commands use what it makes.

    --rotate makes a new signing key and a new key for the secrets at rest (every secret and
    stored document is re-encrypted). Agents move to the new signing key by themselves: until
    --retire-previous, the old key endorses the new one in every message. Stop 'serve' first.
    """

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--rotate", action="store_true", help="new signing and at-rest keys (see above)")
        group.add_argument("--retire-previous", action="store_true",
                           help="forget the old signing key once every node has reported since --rotate")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> int:
        coordinator = _coordinator(self.app)
        coordinator.set_up()
        if parsed_args.rotate:
            count = rotation.rotate(coordinator.channel, coordinator.vault, coordinator.inventory)
            self.app.stderr.write(f"keys rotated; {count} stored values re-encrypted\n")
        elif parsed_args.retire_previous and not rotation.retire_previous(coordinator.channel, coordinator.inventory):
            self.app.stderr.write("no previous signing key\n")
        self.app.stdout.write(coordinator.channel.public_key_text() + "\n")
        return 0


class NodeList(Lister):
    """List nodes: alive, enrolment and convergence, generations, drift, last heartbeat.

    State is one of: pending (key not accepted), held (its roles do not render now: 'node show' says why;
    the rest of the fleet goes on), rolled_back (its last generation cut it off and was undone: 'events
    --node HOST --type rolled_back' says which probe), failed, converging, converged. Filters combine: --role compute
    --state converging --down lists the compute nodes not yet converged that stopped reporting.

    With [neutron] cloud configured, a Neutron column says how many of the agents the node's roles
    run Neutron lists alive (e.g. 4/4; '?' when Neutron cannot be asked): 'nodeagentctl verify' names them.
    """

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("--role", metavar="ROLE", help="only nodes with this role")
        parser.add_argument("--state", choices=nodequery.STATES, help="only nodes in this state")
        parser.add_argument("--drifted", action="store_true", help="only nodes with open drift")
        alive = parser.add_mutually_exclusive_group()
        alive.add_argument("--down", action="store_true", help="only nodes not reporting")
        alive.add_argument("--up", action="store_true", help="only nodes reporting")
        parser.add_argument("--sort", choices=sorted(nodequery.SORT_KEYS), default="host",
                            help="order of the rows (default host; heartbeat: the longest silent first)")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[Any, Any]:
        columns = ("Host", "Roles", "Alive", "State", "Generation", "Drifted", "Last heartbeat")
        coordinator = _coordinator(self.app)
        alive = False if parsed_args.down else True if parsed_args.up else None
        found = nodequery.select(coordinator.inventory, nodequery.NodeFilter(
            parsed_args.role, parsed_args.state, parsed_args.drifted, alive, parsed_args.sort))
        neutron = nodequery.neutron_column(coordinator.neutron)
        rows = []
        for row in found:
            node = row.node
            rows.append((node.name, ", ".join(node.roles or []), ":-)" if node.alive else "XXX", node.state,
                         f"{node.desired_generation}/{node.observed_generation}", row.drifted,
                         _when(node.last_heard)) + ((neutron(node.name),) if neutron else ()))
        return columns + (("Neutron",) if neutron else ()), rows


class Verify(Lister):
    """The guides' verification: every agent the nodes' roles run, as the real Neutron lists it.

    Asks the Neutron API of [neutron] cloud (openstack network agent list, extension list) and compares
    with what each node's roles start. Exits 1 if an expected agent is dead or missing, or an extension
    the guide's networks need is absent; each row names the agent and where to look.
    """

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("--node", metavar="HOST", type=host_name, help="only this node's agents (with --traffic: its stand-in)")
        parser.add_argument("--traffic", action="store_true",
                            help="packets instead: a stand-in instance on each node with probe_access gets its "
                                 "address by DHCP and pings the DHCP port, its router and the other stand-ins; "
                                 "a failure names the broken hop")
        parser.add_argument("--network", metavar="NAME",
                            help="with --traffic: probe this self-service network (default: a throw-away one)")
        parser.add_argument("--cidr", default="198.19.254.0/24",
                            help="with --traffic: the throw-away network's subnet (default %(default)s)")
        parser.add_argument("--external", metavar="NAME",
                            help="with --traffic: the provider network for the router's gateway (default: the "
                                 "only external network, if there is one): SNAT to its subnet's gateway is checked")
        parser.add_argument("--outside-access", metavar="PREFIX",
                            help="with --traffic: a command prefix that runs a command on a host of the provider "
                                 "network (e.g. 'ssh root@upstream'): each stand-in's floating IP must answer it")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[Any, Any]:
        from nodeagent.fleet.neutroncheck import AGENT_TYPES

        coordinator = _coordinator(self.app)
        verifier = coordinator.neutron
        if not verifier.enabled:
            raise Unavailable("no Neutron to ask: set [neutron] cloud (and clouds_yaml) in the "
                             "coordinator's configuration")
        if parsed_args.traffic:
            return self._traffic(coordinator, verifier, parsed_args)
        try:
            checks = verifier.checks(parsed_args.node)
            missing = verifier.missing_extensions()
        except Exception as exc:
            raise Unavailable(f"cannot ask Neutron ({type(exc).__name__}: {exc})") from None
        rows = [(c.host, AGENT_TYPES.get(c.binary, c.binary), c.binary, c.state, c.hint) for c in checks]
        rows += [("(server)", "extension", alias, "missing", "the server's service_plugins / extension_drivers")
                 for alias in missing]
        self.healthy = all(row[3] == "alive" for row in rows)
        return ("Host", "Agent", "Binary", "State", "Hint"), rows

    def _traffic(self, coordinator: Any, verifier: Any, parsed_args: argparse.Namespace) -> tuple[Any, Any]:
        from nodeagent.fleet import trafficprobe

        try:
            probe = trafficprobe.for_fleet(coordinator.inventory, lambda: verifier.neutron, parsed_args.node, parsed_args.network,
                                           parsed_args.cidr, parsed_args.external, parsed_args.outside_access)
        except trafficprobe.ProbeError as exc:
            raise SystemExit(f"nodeagentctl verify --traffic: {exc}") from None

        def interrupted(signum: int, _frame: Any) -> None:
            raise KeyboardInterrupt  # the probe's 'finally' removes its stand-ins, ports, router and network

        previous = signal.signal(signal.SIGTERM, interrupted)
        try:
            checks = probe.run()
        except trafficprobe.ProbeError as exc:
            raise SystemExit(f"nodeagentctl verify --traffic: {exc}") from None
        finally:
            signal.signal(signal.SIGTERM, previous)
        self.healthy = bool(checks) and all(c.ok for c in checks)
        rows = [(c.host, c.check, c.target, "ok" if c.ok else "FAILED", c.hop, c.hint) for c in checks]
        return ("Host", "Check", "Target", "Result", "Hop", "Hint"), rows

    def run(self, parsed_args: argparse.Namespace) -> int:
        super().run(parsed_args)
        return 0 if self.healthy else 1


class NodeShow(ShowOne):
    """Show one node: key, state, generations, status, health and facts.

    last_heartbeat is when its last report was taken; health_at when its health was stored (load and CPU
    figures are stored again once they are [coordinator] health_refresh old; a service starting or stopping
    at once).
    """

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("host", metavar="HOST", type=host_name)
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[Any, Any]:
        coordinator = _coordinator(self.app)
        node = coordinator.inventory.node(parsed_args.host)
        if node is None:
            raise NotFound(f"no node '{parsed_args.host}'")
        interfaces = (node.facts or {}).get("interfaces", {})
        addresses = {name: info.get("ipv4", []) for name, info in interfaces.items() if info.get("ipv4")}
        data = {
            "host": node.name, "alive": node.alive, "state": node.state, "held": node.held or "",
            "rollout": coordinator.rollouts.of_node(node.name), "enrolment": node.enrolment,
            "public_key": node.public_key, "roles": node.roles or [],
            "desired_generation": node.desired_generation, "observed_generation": node.observed_generation,
            "last_heartbeat": _when(node.last_heard), "status": node.status or {}, "health": node.health or {},
            "health_at": _when(node.last_heartbeat),  # load and CPU are stored once per health_refresh
            "os": (node.facts or {}).get("os"), "kernel": (node.facts or {}).get("kernel"),
            "openvswitch": (node.facts or {}).get("openvswitch"),
            "interfaces": {name: info.get("mac") for name, info in sorted(interfaces.items())},
            "addresses": addresses,
        }
        return tuple(data), tuple(data.values())


class NodeAccept(Command):
    """Accept a node's key: from then on its reports are trusted and it gets its document."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("host", metavar="HOST", type=host_name)
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> int:
        enrolment.accept(_coordinator(self.app).inventory, parsed_args.host)
        self.app.stdout.write(f"accepted {parsed_args.host}\n")
        return 0


class NodeRevoke(Command):
    """Revoke a node: its key is forgotten, its reports are refused, it gets nothing. 'node forget' undoes
    the name's reservation (the node may then enrol again, pending)."""

    forget = False

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("host", metavar="HOST", type=host_name)
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> int:
        coordinator = _coordinator(self.app)
        (enrolment.forget if self.forget else enrolment.revoke)(coordinator.inventory, parsed_args.host)
        self.app.stdout.write(f"{'forgot' if self.forget else 'revoked'} {parsed_args.host}\n")
        return 0


class NodeForget(NodeRevoke):
    """Forget a node: its documents, keys and drift records (its events stay); it may enrol again, pending."""

    forget = True


class NodeSetState(Command):
    """Give a node a desired-state document: stored at the next generation, signed and pushed."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("host", metavar="HOST", type=host_name)
        parser.add_argument("state_file", metavar="STATE_FILE", help="YAML or JSON document (its generation is "
                            "replaced by the next one)")
        parser.add_argument("--no-push", action="store_true", help="store only; the agent gets it on its next pull")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> int:
        from nodeagent.document import loading
        from nodeagent.kit.errors import InvalidDocument

        raw = loading.load_file(parsed_args.state_file)
        if not isinstance(raw, dict):
            raise InvalidDocument(f"{parsed_args.state_file}: document must be a mapping")
        _quiet_broker_retries(self.app)
        try:
            generation = _coordinator(self.app).desired.set_state(parsed_args.host, raw, push=not parsed_args.no_push)
        except PushFailed as exc:
            _print_stored(self.app, exc)
            raise
        self.app.stdout.write(f"{parsed_args.host}: generation {generation}"
                              f"{'' if parsed_args.no_push else ' pushed'}\n")
        return 0


class NodePlan(Lister):
    """Ask a node what its current document would change (nothing is applied)."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("host", metavar="HOST", type=host_name)
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[Any, Any]:
        from nodeagent.wire.messages import Refusal, plan_or_refusal

        answer = plan_or_refusal(_coordinator(self.app).desired.plan(parsed_args.host))
        if isinstance(answer, Refusal):
            raise Refused(f"{parsed_args.host} refused the plan request: {answer.refused}")
        return result_rows(answer.to_dict(), parsed_args.formatter in ("json", "yaml"))


class Events(Lister):
    """Events of the fleet: enrolments, refusals, applies, nodes down and up."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("--node", metavar="HOST", type=host_name, help="only this node's events")
        parser.add_argument("--type", metavar="TYPE", help="only this type (a * matches anything: 'node.*')")
        parser.add_argument("--limit", type=int, default=200, help="at most this many, newest last (default 200)")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[Any, Any]:
        found = _coordinator(self.app).inventory.events(parsed_args.node, parsed_args.type, parsed_args.limit)
        return ("Time", "Node", "Type", "Detail"), [(_when(e.at), e.node or "(fleet)", e.type, e.detail)
                                                    for e in found]


class DriftList(Lister):
    """Drift events: what changed behind an agent's back, and whether it was corrected, left or contested.

    A drift is open while it is not corrected and the node still reports it
    (monitor mode, contested, or failed to fix).
    """

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("--node", metavar="HOST", type=host_name, help="only this node's drift")
        parser.add_argument("--since", metavar="WHEN", type=_since,
                            help="only drift seen since WHEN: an ISO time, or an age such as 30s, 15m, 2h, 1d")
        parser.add_argument("--open", action="store_true", help="only drift not corrected and not gone")
        parser.add_argument("--limit", type=int, default=500, help="at most this many, newest last (default 500)")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[Any, Any]:
        from nodeagent.fleet.reports import drift_event

        records = _coordinator(self.app).inventory.drift(parsed_args.node, parsed_args.since, parsed_args.open,
                                                         parsed_args.limit)
        structured = parsed_args.formatter in ("json", "yaml")
        rows = []
        for record in records:
            event = drift_event(record)
            changes, by = event.lines(), event.by
            rows.append((_when(record.seen_at), record.node, record.resource, record.driver, record.state,
                         "open" if record.open else "closed", changes if structured else "\n".join(changes),
                         _when(record.fixed_at) if record.fixed_at else "",
                         (by.to_dict() if structured else by.describe()) if by else ""))
        return ("Seen", "Node", "Resource", "Driver", "State", "Open", "Changes", "Fixed", "By"), rows


def _since(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if text[-1:] in units and text[:-1].isdigit():
        return time.time() - int(text[:-1]) * units[text[-1]]
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is neither an ISO time nor an age such as 15m") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.timestamp()


class RoleList(Lister):
    """List the roles (templates in roles_dir) and the variables each reads."""

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[Any, Any]:
        roles = _coordinator(self.app).roles
        structured = parsed_args.formatter in ("json", "yaml")
        return ("Role", "Variables"), [(name, roles.variables(name) if structured else ", ".join(
            roles.variables(name))) for name in roles.names()]


class RoleShow(ShowOne):
    """Show a role: the variables it reads and its template."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("role", metavar="ROLE")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[Any, Any]:
        roles = _coordinator(self.app).roles
        source = roles.source(parsed_args.role)
        return ("role", "variables", "template"), (parsed_args.role, ", ".join(roles.variables(parsed_args.role)),
                                                   source)


class NodeAssign(Command):
    """Give nodes roles: their documents are rendered, the fleet checked, and what changed pushed.

    HOST is a node's name, a shell pattern, or several of either separated by commas: 'compute*' gives
    every compute node the role in one change (one render of the fleet, one transaction).
    """

    remove = False

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("host", metavar="HOST", type=host_name, help="name, pattern (quote it: 'compute*'), or a,b,c")
        parser.add_argument("roles", metavar="ROLE", nargs="+")
        parser.add_argument("--rollout", action="store_true", help="push the change in batches ('rollout start')")
        rollout.add_policy_arguments(parser, selection=False)
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> int:
        coordinator = _coordinator(self.app)
        hosts = coordinator.settings.matching(parsed_args.host)
        if parsed_args.rollout:
            verb = "unassign" if self.remove else "assign"
            return rollout.start(self.app, parsed_args, lambda c, converge: c.settings.assign(
                hosts, parsed_args.roles, self.remove, converge=converge),
                f"node {verb} {parsed_args.host} {' '.join(parsed_args.roles)}")
        _converge(self.app, lambda: coordinator.settings.assign(hosts, parsed_args.roles, self.remove),
                  coordinator.desired)
        return 0


class NodeUnassign(NodeAssign):
    """Take roles from a node (their resources leave its document; what they wrote stays)."""

    remove = True


class VarSet(Command):
    """Set a variable for the whole site or one node (--node); documents are re-rendered and pushed.

    With --rollout the new documents go out in batches, each healthy before the next ('rollout start'
    explains the options); --role or --nodes limit the rollout, the other nodes get the change at once.
    """

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("--node", metavar="HOST", type=host_name, help="for this node only (overrides the site's value)")
        parser.add_argument("key", metavar="KEY")
        parser.add_argument("value", metavar="VALUE")
        parser.add_argument("--rollout", action="store_true", help="push the change in batches (see above)")
        rollout.add_policy_arguments(parser, selection=True)
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> int:
        if parsed_args.rollout:
            return rollout.start(self.app, parsed_args, lambda c, converge: c.settings.set_variable(
                parsed_args.key, parsed_args.value, parsed_args.node, converge=converge),
                f"var set {parsed_args.key}={parsed_args.value}" + (f" on {parsed_args.node}" if parsed_args.node
                                                                     else ""))
        coordinator = _coordinator(self.app)
        _converge(self.app, lambda: coordinator.settings.set_variable(parsed_args.key, parsed_args.value,
                                                                      parsed_args.node), coordinator.desired)
        return 0


class VarList(Lister):
    """List variables: the site's, or what one node sees (--node), defaults included."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("--node", metavar="HOST", type=host_name)
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[Any, Any]:
        return ("Variable", "Value", "From"), _coordinator(self.app).settings.variable_origins(parsed_args.node)


class SecretSet(Command):
    """Set a secret; the value is read from standard input or a prompt, never from the command line."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("key", metavar="KEY", help="e.g. NEUTRON_PASS, RABBIT_PASS, METADATA_SECRET")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> int:
        import getpass

        if sys.stdin.isatty():
            value = getpass.getpass(f"{parsed_args.key}: ")
        else:
            value = sys.stdin.readline().rstrip("\n")
        coordinator = _coordinator(self.app)
        _converge(self.app, lambda: coordinator.settings.set_secret(parsed_args.key, value), coordinator.desired)
        return 0


class DbUpgrade(Command):
    """Bring the inventory's database to this version's schema (Alembic), keeping every row.

    Run it after installing a new nodeagent, before starting 'serve' (serve upgrades a database it finds
    behind, too). A database made by an older nodeagent is upgraded from its revision; on SQLite, MariaDB or
    PostgreSQL alike ([coordinator] database_connection).
    """

    def take_action(self, parsed_args: argparse.Namespace) -> int:
        coordinator = _coordinator(self.app)
        coordinator.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        before, after = coordinator.upgrade_schema()
        self.app.stderr.write(f"inventory at revision {after}" + (" (unchanged)\n" if before == after else
                              f" (was {before or 'empty'})\n"))
        return 0


class DbVersion(ShowOne):
    """Show the inventory's schema revision and the one this nodeagent expects."""

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[Any, Any]:
        current, head = _coordinator(self.app).schema_revision()
        return ("Database", "Expected", "Up to date"), (current or "(empty)", head, current == head)


class SecretList(Lister):
    """List the secrets' names and when they were set (never their values)."""

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[Any, Any]:
        return ("Secret", "Set"), [(key, _when(at)) for key, at in _coordinator(self.app).inventory.secrets_set()]


COMMANDS = {
    "serve": Serve, "keygen": Keygen, "node list": NodeList, "node show": NodeShow, "node accept": NodeAccept,
    "node revoke": NodeRevoke, "node forget": NodeForget,
    "node set-state": NodeSetState, "node plan": NodePlan, "events": Events, "drift list": DriftList,
    "role list": RoleList, "role show": RoleShow, "node assign": NodeAssign, "node unassign": NodeUnassign,
    "var set": VarSet, "var list": VarList, "secret set": SecretSet, "secret list": SecretList, "verify": Verify,
    "lint": lint.FleetLint, "db upgrade": DbUpgrade, "db version": DbVersion, "web-password": WebPassword,
    **rollout.COMMANDS,
}


def make_app() -> NodeAgentApp:
    return NodeAgentApp("nodeagentctl: manage the nodeagent fleet (run it on the coordinator's host).", COMMANDS,
                        "/etc/nodeagent/coordinator.conf")


def main(argv: Sequence[str] | None = None) -> int:
    return main_for(make_app(), argv)


if __name__ == "__main__":
    sys.exit(main())
