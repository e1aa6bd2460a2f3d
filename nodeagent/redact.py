"""Keeping secrets out of every output: changes, errors, logs and reports."""

from __future__ import annotations

from typing import Iterable

from nodeagent.driver import REDACTED, Change


def is_sensitive(field: str, sensitive: tuple[str, ...] | bool) -> bool:
    """``DEFAULT.transport_url`` covers that change; ``keystone_authtoken`` covers the whole section."""
    if sensitive is True:
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
