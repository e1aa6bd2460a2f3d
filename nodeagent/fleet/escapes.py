"""Secrets with any character: each written the way the program that reads it will read it back.

The role templates pipe every secret through one of these filters (``{{ secret('X') | ini }}``), by where
the value lands. A password is the operator's, with any character in it (``p@ss/AT#?%$é``); each reader
gives some characters a meaning:

* ``ini``: oslo.config reads ``$name`` as another option's value and ``$$`` as ``$``;
* ``url_userinfo``: a URL's user or password (``transport_url``, ``[database] connection``): ``@ / # ? %``
  end or change it unless percent-encoded; oslo.messaging and SQLAlchemy decode it;
* ``rabbit_password``: the password of a ``rabbit://`` URL, percent-encoded as above, and refused when it holds
  a ``/``: oslo.messaging's rabbit driver decodes the URL, then re-encodes the password for kombu with
  ``urllib.parse.quote``, which leaves ``/`` as it is, and kombu ends the host part there ("Port could not be cast
  to integer value"). Seen with oslo.messaging 17.1 (2025.2), the 2024.2 release's and 18.3; no spelling survives;
* ``mysql_password``: the password of a ``mysql+pymysql://`` URL. PyMySQL encodes a password as latin-1
  whatever the connection's charset (PyMySQL issue #1252; 1.1.1 in the 2024.2 and 2025.2 upper-constraints),
  while MariaDB hashed the UTF-8 the ``mysql`` client sent: the UTF-8 bytes, spelt as latin-1 characters,
  make PyMySQL send exactly those bytes.

SQL is not here on purpose: the database step passes the password in its environment and hands it to the
server hex-encoded (``controller.yaml.j2``), so no character of it is ever SQL. YAML quoting of every printed
value is ``roles.yaml_escape``'s.
"""

from __future__ import annotations

from typing import Any, Callable
from urllib.parse import quote


def ini(value: Any) -> str:
    """A value oslo.config reads back verbatim: ``$`` doubled, so nothing is interpolated."""
    return str(value).replace("$", "$$")


def url_userinfo(value: Any) -> str:
    """A URL's user or password: every character but letters, digits and ``_.-~`` percent-encoded."""
    return quote(str(value), safe="")


class Unwritable(ValueError):
    """A value no escaping carries to its reader; the message says which character and why."""


def rabbit_password(value: Any) -> str:
    """A RabbitMQ password in a transport_url, or Unwritable when oslo.messaging would cut it."""
    if "/" in str(value):
        raise Unwritable("the RabbitMQ password (secret RABBIT_PASS) contains '/', which oslo.messaging's rabbit "
                         "driver cannot pass on to kombu (it re-encodes the password leaving '/' as is); "
                         "choose one without '/' (rabbitmqctl change_password)")
    return url_userinfo(value)


def mysql_password(value: Any) -> str:
    """The password part of a ``mysql+pymysql://`` URL that makes PyMySQL send the password's UTF-8 bytes."""
    return url_userinfo(str(value).encode("utf-8").decode("latin-1"))


FILTERS: dict[str, Callable[[Any], str]] = {"ini": ini, "url_userinfo": url_userinfo,
                                            "rabbit_password": rabbit_password, "mysql_password": mysql_password}
