"""Keeping secrets out of every output: changes, errors, logs and reports."""

from __future__ import annotations

import re
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
