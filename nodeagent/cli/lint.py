"""Option checks on the command line: ``nodeagent lint``, ``nodeagentctl lint``, and the gate of plan/apply."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from nodeagent.cli.base import Lister
from nodeagent.kit.errors import InvalidInput, one_line

if TYPE_CHECKING:
    from nodeagent.optionregistry import Finding

COLUMNS = ("Severity", "Resource", "File", "Section", "Key", "Message")
RELEASE_HELP = ("check against this OpenStack release (e.g. 2024.2); default: the document's openstack_release, "
                "else the newest release the registry covers")


def rows(findings: list[Finding], with_node: bool = False) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    columns = (("Node",) if with_node else ()) + COLUMNS
    return columns, [((f.node,) if with_node else ()) + (f.severity, f.resource, f.file, f.section, f.key, f.message)
                     for f in findings]


def gate(app: Any, document: Any, release: str | None) -> None:
    """Before a local plan or apply: show warnings, refuse the document on any error (nothing is touched)."""
    from nodeagent.optionregistry import lint_document
    from nodeagent.optionregistry.checks import default_release

    findings = lint_document(document, release)
    for finding in findings:
        if not finding.is_error:
            app.stderr.write(finding.describe() + "\n")
    errors = [f for f in findings if f.is_error]
    if errors:
        target = release or getattr(document, "openstack_release", None) or default_release()
        raise OptionErrors(f"{len(errors)} option error(s) for OpenStack {target}, nothing was changed:",
                           [f.describe() for f in errors])


class OptionErrors(InvalidInput):
    """A document the option checks refuse: a heading, then every error on a line of its own, as ``lint`` shows
    them (an InvalidDocument is one bounded line, which cut a long list short after 300 characters)."""

    def __init__(self, heading: str, lines: list[str]):
        super().__init__("\n".join([heading, *(f"  {one_line(line)}" for line in lines)]))
        self.lines = lines


class _LintLister(Lister):
    """Shared: exit status 1 when any finding is an error."""

    def run(self, parsed_args: argparse.Namespace) -> int:
        self.findings: list[Finding] = []
        super().run(parsed_args)
        errors = sum(f.is_error for f in self.findings)
        self.app.stderr.write(f"{errors} errors, {len(self.findings) - errors} warnings\n")
        return 1 if errors else 0


class Lint(_LintLister):
    """Check a document's OpenStack options against what the target release reads (nothing is touched).

    Every ini resource writing a service's file (neutron.conf, ml2_conf.ini, the agents'
    ini files, nova.conf, keystone.conf) is checked key by key: unknown keys and sections
    (with the closest name, and the replacement of a key that left upstream), deprecated
    names, keys removed in or only added after the target release, types, ranges and
    choices, keys in the wrong file, plugins the release lacks; an absent key the release
    says is secret but the resource does not mark sensitive (the change that removes it
    would show its value). Secret values are never shown. Exit status: 0 no error
    (warnings allowed), 1 errors.
    """

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("state_file", metavar="STATE_FILE", help="desired-state document (YAML or JSON)")
        parser.add_argument("--release", metavar="SERIES", help=RELEASE_HELP)
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[Any, Any]:
        from nodeagent.document.model import load_document
        from nodeagent.document.registry import DriverRegistry
        from nodeagent.optionregistry import lint_document

        document = load_document(parsed_args.state_file, DriverRegistry.from_entry_points())
        self.findings = lint_document(document, parsed_args.release)
        return rows(self.findings)


class FleetLint(_LintLister):
    """Check the options every node's roles render, as the coordinator does before each push.

    Each node is checked against its own openstack_release variable (or --release).
    Exit status: 0 no error, 1 errors.
    """

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("--role", metavar="ROLE", help="only nodes with this role")
        parser.add_argument("--node", metavar="HOST", help="only this node")
        parser.add_argument("--release", metavar="SERIES", help="check against this release instead of each "
                            "node's openstack_release variable")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[Any, Any]:
        from nodeagent.fleet.coordinator import Coordinator

        coordinator = Coordinator(self.app.conf())
        self.findings = coordinator.desired.lint(parsed_args.node, parsed_args.role, parsed_args.release)
        return rows(self.findings, with_node=True)
