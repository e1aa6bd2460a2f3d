"""``nodeagentctl web-password``: a user of the web view's password file ([web] password_file)."""

from __future__ import annotations

import argparse
import getpass
import sys

from nodeagent.cli.base import Command

from nodeagent.fleet.web import auth


class WebPassword(Command):
    """Add a user to the web view's password file, or change their password and role; the password is read from
    standard input or a prompt, never from the command line, and only its scrypt hash is kept."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("user", metavar="USER")
        parser.add_argument("--role", choices=sorted(auth.ROLES), default="reader",
                            help="reader or admin: either may look (default reader); nothing in the view writes")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> int:
        if sys.stdin.isatty():
            password = getpass.getpass(f"password of {parsed_args.user}: ")
        else:
            password = sys.stdin.readline().rstrip("\n")
        path = self.app.conf().web.password_file
        auth.set_password(path, parsed_args.user, parsed_args.role, password)
        self.app.stdout.write(f"{parsed_args.user} ({parsed_args.role}) set in {path}\n")
        return 0
