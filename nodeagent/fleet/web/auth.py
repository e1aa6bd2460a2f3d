"""Who may look at the web view: a Keystone user with the admin or reader role, or a user of a local password file.

``[web] auth_strategy = keystone`` puts keystonemiddleware's ``auth_token`` in front of the view, as every
OpenStack API has it (configured in ``[keystone_authtoken]``): no valid token, 401 from the middleware itself.
``password`` (sites without Keystone) checks HTTP Basic credentials against ``[web] password_file``.

Hashes are scrypt (``hashlib.scrypt``, RFC 7914): in the standard library (OpenSSL), memory-hard, and one of the
schemes OWASP recommends for passwords. passlib is unmaintained since 2020 and bcrypt would be one more compiled
dependency doing the same job.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from nodeagent.fleet.errors import InvalidInput
from nodeagent.kit import files

LOG = logging.getLogger(__name__)

ROLES = frozenset({"admin", "reader"})  # either may look; nothing in the view writes
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2 ** 14, 8, 1  # 16 MiB, about 40 ms a check here
# Checks at once: each holds 16 MiB, and a flood of made-up passwords must not hold more than this (they wait).
CHECKS_AT_ONCE = threading.BoundedSemaphore(4)


@dataclass(frozen=True)
class Identity:
    """Who is asking, and the roles they hold."""

    user: str
    roles: frozenset[str]

    @property
    def may_look(self) -> bool:
        return bool(self.roles & ROLES)


def hash_password(password: str, salt: bytes | None = None) -> str:
    """``scrypt$N$r$p$salt$digest`` (base64): what a password file holds."""
    salt = salt or os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    return "$".join(["scrypt", str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P), _b64(salt), _b64(digest)])


def check_password(password: str, hashed: str) -> bool:
    """Whether ``password`` has ``hashed`` (compared in constant time; at most ``CHECKS_AT_ONCE`` at a time)."""
    scheme, n, r, p, salt, digest = hashed.split("$")
    if scheme != "scrypt":
        raise ValueError(f"unknown hash scheme '{scheme}'")
    expected = base64.b64decode(digest)
    with CHECKS_AT_ONCE:
        found = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                               dklen=len(expected), maxmem=256 * 1024 * 1024)
    return hmac.compare_digest(found, expected)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class PasswordFile:
    """``name:role:hash`` lines ('#' comments); read again when the file changes, so a user added needs no restart."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._seen: tuple[float, int] | None = None
        self._users: dict[str, tuple[str, str]] = {}

    def users(self) -> dict[str, tuple[str, str]]:
        """name -> (role, hash). An unreadable file or a bad line is an error naming the file and the line."""
        try:
            stat = self.path.stat()
        except OSError as exc:
            raise InvalidInput(f"[web] password_file {self.path}: {exc.strerror} "
                               f"(add a user with 'nodeagentctl web-password USER')") from None
        with self._lock:
            if self._seen != (stat.st_mtime, stat.st_size):
                self._users = parse(self.path.read_text(), str(self.path))
                self._seen = (stat.st_mtime, stat.st_size)
            return self._users

    def identify(self, user: str, password: str) -> Identity | None:
        """The user's identity when the password is theirs, else None."""
        found = self.users().get(user)
        if found is None:
            check_password(password, _DUMMY)  # the same time whether the user exists or not
            return None
        role, hashed = found
        return Identity(user, frozenset({role})) if check_password(password, hashed) else None


_DUMMY = hash_password("no such user", salt=b"\0" * 16)


def parse(text: str, where: str) -> dict[str, tuple[str, str]]:
    """The users of a password file's ``text``; ``where`` names it in errors."""
    users = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        if len(parts) != 3 or not parts[0]:
            raise InvalidInput(f"{where} line {number}: expected 'name:role:hash'")
        name, role, hashed = parts
        if role not in ROLES:
            raise InvalidInput(f"{where} line {number}: role '{role}' is not one of {', '.join(sorted(ROLES))}")
        if len(hashed.split("$")) != 6 or not hashed.startswith("scrypt$"):
            raise InvalidInput(f"{where} line {number}: hash is not 'scrypt$N$r$p$salt$digest'")
        users[name] = (role, hashed)
    return users


def set_password(path: str | Path, user: str, role: str, password: str) -> None:
    """Add ``user`` to the password file (or change their role and password); the file is replaced atomically,
    mode 0600, keeping its owner (the coordinator's user must read it: chown a new file to it once)."""
    if not user or ":" in user or any(c.isspace() for c in user):
        raise InvalidInput(f"user name '{user}': no ':' or blanks, not empty")
    if role not in ROLES:
        raise InvalidInput(f"role '{role}' is not one of {', '.join(sorted(ROLES))}")
    if not password:
        raise InvalidInput(f"the password of '{user}' must not be empty")
    path = Path(path)
    lines = path.read_text().splitlines() if path.exists() else []
    parse("\n".join(lines), str(path))  # a broken file is said, not rewritten
    kept = [line for line in lines if line.split(":", 1)[0].strip() != user]
    text = "\n".join(kept + [f"{user}:{role}:{hash_password(password)}"]) + "\n"
    files.write_atomic(path, text.encode(), mode=0o600)


class PasswordAccess:
    """HTTP Basic against the password file."""

    challenge = 'Basic realm="nodeagent", charset="UTF-8"'

    def __init__(self, path: str | Path):
        self.file = PasswordFile(path)

    def wrap(self, app: Callable) -> Callable:
        self.file.users()  # a missing or broken file stops the start, naming it
        return app

    def identify(self, environ: dict[str, Any]) -> Identity | None:
        header = environ.get("HTTP_AUTHORIZATION", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, sep, password = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        if not sep:
            return None
        try:
            return self.file.identify(user, password)
        except InvalidInput as exc:  # the file broke while serving: nobody gets in, the log says why
            LOG.error("%s", exc)
            return None


class KeystoneAccess:
    """keystonemiddleware's auth_token in front; the identity it confirmed, from the headers it sets (it removes
    any such header a client sent)."""

    challenge = None  # auth_token answers 401 itself, with its WWW-Authenticate

    def __init__(self, conf: Any):
        self.conf = conf

    def wrap(self, app: Callable) -> Callable:
        from keystonemiddleware import auth_token

        return auth_token.AuthProtocol(app, {"oslo_config_config": self.conf})

    def identify(self, environ: dict[str, Any]) -> Identity | None:
        if environ.get("HTTP_X_IDENTITY_STATUS") != "Confirmed":
            return None
        roles = frozenset(r.strip() for r in environ.get("HTTP_X_ROLES", "").split(",") if r.strip())
        return Identity(environ.get("HTTP_X_USER_NAME", ""), roles)


def access_for(conf: Any) -> PasswordAccess | KeystoneAccess:
    """The configured way in (``[web] auth_strategy``)."""
    if conf.web.auth_strategy == "keystone":
        return KeystoneAccess(conf)
    return PasswordAccess(conf.web.password_file)
