"""Secrets with any character reach each service as they were set: the roles' files are written by the real ini
driver, then read back by the readers the services use (oslo.config, oslo.messaging's TransportURL,
SQLAlchemy's make_url and PyMySQL's password encoding)."""

from __future__ import annotations

from pathlib import Path

import oslo_messaging
import pytest
from oslo_config import cfg
from sqlalchemy.engine import make_url

from nodeagent.fleet import escapes
from nodeagent.fleet.roles import RoleError, Roles
from nodeagent.kit.context import Context
from nodeagent.document.model import COMMON_FIELDS
from tests.conftest import REPO
from tests.unit.test_roles import FACTS, NODE_VARS

HOSTILE = ["p@ss/AT#?%$é", "$$x${y}$", "a:b@c//d?e=f&g#h;i", "€ 10% off \\ 'q' \"dq\"", "%41%zz+",
           "'quoted'", '"', " spaced ", "#not-a-comment", ";semi"]
NAMES = ("RABBIT_PASS", "NEUTRON_PASS", "NEUTRON_DBPASS", "NOVA_PASS", "METADATA_SECRET", "ADMIN_PASS")


def deployed(registry, root: Path, roles: list[str], secrets: dict[str, str], variables: dict) -> dict[str, Path]:
    """Render ``roles``, write their ini files with the ini driver under ``root``; the files by resource id."""
    body = Roles(REPO / "etc" / "roles").render("n1", roles, {**NODE_VARS, **variables}, secrets, FACTS)
    driver, ctx, written = registry.get("ini"), Context(root=root, backup_dir=None), {}
    for resource in body["resources"]:
        if resource["driver"] == "ini":
            spec = driver.validate({k: v for k, v in resource.items() if k not in COMMON_FIELDS})
            driver.apply(spec, driver.diff(spec, driver.observe(spec, ctx)), ctx)
            written[resource["id"]] = root / resource["path"].lstrip("/")
    return written


def read(path: Path, group: str, key: str) -> str:
    """What a service reads: oslo.config with the option registered, interpolation and all."""
    conf = cfg.ConfigOpts()
    conf.register_opt(cfg.StrOpt(key), group=group)
    conf(args=[], default_config_files=[str(path)], default_config_dirs=[])
    return conf[group][key]


@pytest.mark.parametrize("hostile", HOSTILE)
@pytest.mark.parametrize("variables", [{}, {"mechanism": "linuxbridge", "openstack_release": "2024.2"}])
def test_every_secret_reads_back_as_it_was_set(registry, tmp_path, hostile, variables):
    secrets = {name: f"{hostile}{name}" if index % 2 else f"{name}{hostile}" for index, name in enumerate(NAMES)}
    secrets["RABBIT_PASS"] = secrets["RABBIT_PASS"].replace("/", "")  # refused: see the test below
    files = deployed(registry, tmp_path / "controller", ["controller"], secrets, variables)
    files.update(deployed(registry, tmp_path / "network", ["network"], secrets, variables))
    compute = deployed(registry, tmp_path / "compute", ["compute"], secrets, variables)

    for path in (files["controller-neutron-conf"], files["agent-neutron-conf"], compute["agent-neutron-conf"]):
        url = oslo_messaging.TransportURL.parse(cfg.ConfigOpts(), read(path, "DEFAULT", "transport_url"))
        assert (url.hosts[0].username, url.hosts[0].password) == ("openstack", secrets["RABBIT_PASS"])
        assert (url.hosts[0].hostname, url.hosts[0].port) == ("controller", 5672)
        assert read(path, "keystone_authtoken", "password") == secrets["NEUTRON_PASS"]
    assert read(files["controller-neutron-conf"], "nova", "password") == secrets["NOVA_PASS"]
    for path in (files["nova-conf-neutron"], compute["nova-conf-neutron"]):
        assert read(path, "neutron", "password") == secrets["NEUTRON_PASS"]
    for path, group in ((files["nova-conf-neutron"], "neutron"), (files["metadata-agent-ini"], "DEFAULT")):
        assert read(path, group, "metadata_proxy_shared_secret") == secrets["METADATA_SECRET"]

    database = make_url(read(files["controller-neutron-conf"], "database", "connection"))
    assert (database.drivername, database.username, database.host, database.database) == (
        "mysql+pymysql", "neutron", "controller", "neutron")
    # PyMySQL sends password.encode("latin1"); MariaDB hashed the UTF-8 the mysql client sent.
    assert database.password.encode("latin1") == secrets["NEUTRON_DBPASS"].encode("utf-8")


def test_the_rabbitmq_user_and_vhost_are_escaped_too(registry, tmp_path):
    secrets = {name: name for name in NAMES}
    files = deployed(registry, tmp_path, ["compute"], secrets, {"rabbit_user": "ops@site", "rabbit_vhost": "/"})
    url = oslo_messaging.TransportURL.parse(cfg.ConfigOpts(), read(files["agent-neutron-conf"], "DEFAULT",
                                                                   "transport_url"))
    assert (url.hosts[0].username, url.virtual_host) == ("ops@site", "/")


@pytest.mark.parametrize("role", ["controller", "network", "compute"])
def test_a_rabbitmq_password_oslo_messaging_cannot_carry_is_refused_naming_the_secret(role):
    secrets = {name: "p@ss/AT" for name in NAMES}
    with pytest.raises(RoleError) as refused:
        Roles(REPO / "etc" / "roles").render("n1", [role], NODE_VARS, secrets, FACTS)
    assert str(refused.value).startswith(f"role '{role}' for node 'n1': the RabbitMQ password (secret RABBIT_PASS) "
                                         "contains '/'")
    assert "p@ss/AT" not in str(refused.value)


def test_each_filter_escapes_only_what_its_reader_gives_a_meaning():
    assert escapes.ini("a$b$$") == "a$$b$$$$"
    assert escapes.url_userinfo("p@ss/AT#?%$é") == "p%40ss%2FAT%23%3F%25%24%C3%A9"
    assert escapes.url_userinfo("plain-_.~") == "plain-_.~"
    assert escapes.mysql_password("é") == "%C3%83%C2%A9"  # U+00C3 U+00A9: latin-1 for the bytes C3 A9
