"""Keeping secrets out of every output: changes, errors, logs and reports."""

from __future__ import annotations

import re
import shlex
from typing import Iterable

from nodeagent.kit.result import REDACTED, Change


# Option names that hold secrets in OpenStack's files: masked even when the document forgot to say so
# (``memcache_secret_key``, ``metadata_proxy_shared_secret``, ``[database] connection`` with its password).
_SECRET_NAME = re.compile(r"pass|secret|token|credential|private|transport_url|connection", re.IGNORECASE)


def looks_secret(field: str) -> bool:
    """A field whose last part is named like a secret (``keystone_authtoken.password``)."""
    return bool(_SECRET_NAME.search(field.split(" ", 1)[0].rsplit(".", 1)[-1]))


def is_sensitive(field: str, sensitive: tuple[str, ...] | bool) -> bool:
    """``DEFAULT.transport_url`` covers that change; ``keystone_authtoken`` covers the whole section;
    a field named like a secret is always covered."""
    if sensitive is True or looks_secret(field):
        return True
    name = field.split(" ", 1)[0]
    return any(name == s or name.startswith(s + ".") for s in sensitive or ())


def scrub(text: str | None, secrets: Iterable[str]) -> str | None:
    """Replace every occurrence of a secret value in free text (error messages, diffs)."""
    if not text:
        return text
    for secret in sorted(set(secrets), key=len, reverse=True):
        if secret:
            text = text.replace(secret, REDACTED)
    return text


def redact_change(change: Change, sensitive: tuple[str, ...] | bool, secrets: Iterable[str]) -> Change:
    if is_sensitive(change.field, sensitive):
        return change.redacted()
    secrets = tuple(secrets)
    return Change(change.field, scrub(change.old, secrets), scrub(change.new, secrets), scrub(change.diff, secrets))


_URL_PASSWORD = re.compile(r"(://[^/\s:@]*:)[^/\s@]+@")
_SECRET_ASSIGNMENT = re.compile(r"^(-*[\w.]+[=:])(.+)$")


def scrub_command(command: str | None, secrets: Iterable[str]) -> str | None:
    """A writer's command line without secrets: the document's own, a URL's password, the value of an
    argument named like a secret (``--password=x``, ``password x``, ``crudini --set f DEFAULT transport_url x``)."""
    if not command:
        return command
    try:
        words = shlex.split(command)
    except ValueError:  # not one writers.describe made: scrubbed as free text
        return scrub(_URL_PASSWORD.sub(rf"\g<1>{REDACTED}@", command), secrets)
    for number, word in enumerate(words):
        assignment = _SECRET_ASSIGNMENT.match(word)
        if assignment and looks_secret(assignment.group(1).strip("-=:")):
            words[number] = assignment.group(1) + REDACTED
        elif number and looks_secret(words[number - 1].strip("-")) and not set("/=:") & set(words[number - 1]):
            words[number] = REDACTED
        else:
            words[number] = _URL_PASSWORD.sub(rf"\g<1>{REDACTED}@", word)
    return scrub(shlex.join(words), secrets)
