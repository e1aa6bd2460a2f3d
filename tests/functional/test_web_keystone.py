"""The web view behind a real Keystone ([web] auth_strategy = keystone): keystonemiddleware's auth_token checks each
token with the lab's Keystone (MariaDB and Keystone only, no node), the view lets in the admin and reader roles,
refuses any other role with 403 and every write with 405."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from nodeagent.fleet import escapes
from nodeagent.fleet.inventory import Node
from nodeagent.fleet.web.app import make_app
from nodeagent.fleet.web.server import WebServer
from nodeagent.testing.labcloud import LabCloud
from tests.conftest import set_up_coordinator

pytestmark = pytest.mark.timeout(600)

PROJECT = "webview"
USERS = {"looker": "reader", "helper": "member", "stranger": "observer"}  # user -> their one role on the project


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    cloud = LabCloud(tmp_path_factory.mktemp("keystone"))
    try:
        cloud.start_identity()
        yield cloud
    finally:
        cloud.stop()


@pytest.fixture(scope="module")
def admin(cloud, tmp_path_factory):
    """The cloud's admin (openstacksdk), once auth_token can find Keystone: through the catalog's internal identity
    endpoint, pointed here at the lab's port."""
    import openstack.config
    import openstack.connection

    clouds_yaml = cloud.clouds_yaml(tmp_path_factory.mktemp("clouds") / "clouds.yaml")
    region = openstack.config.OpenStackConfig(config_files=[str(clouds_yaml)]).get_one(cloud="lab")
    admin = openstack.connection.Connection(config=region)
    for endpoint in admin.identity.endpoints(interface="internal"):
        admin.identity.update_endpoint(endpoint, url=cloud.keystone_url + "/")
    return admin


@pytest.fixture(scope="module")
def tokens(cloud, admin):
    """A token per user of USERS (and the admin), each scoped to the project."""
    from keystoneauth1 import session
    from keystoneauth1.identity import v3

    project = admin.identity.create_project(name=PROJECT, domain_id="default")
    admin.identity.create_role(name="observer")  # implies nothing
    passwords = {}
    for user, role in USERS.items():
        passwords[user] = f"{user}-pass"
        created = admin.identity.create_user(name=user, password=passwords[user], domain_id="default")
        admin.identity.assign_project_role_to_user(project, created, admin.identity.find_role(role))

    def token(user: str, password: str, project_name: str = PROJECT) -> str:
        auth = v3.Password(auth_url=cloud.keystone_url, username=user, password=password, project_name=project_name,
                           user_domain_id="default", project_domain_id="default")
        return session.Session(auth=auth).get_token()

    found = {user: token(user, password) for user, password in passwords.items()}
    found["admin"] = token("admin", cloud.admin_password, "admin")
    return found


@pytest.fixture(scope="module")
def view(cloud, admin, tmp_path_factory):
    directory = tmp_path_factory.mktemp("coordinator")
    coordinator = set_up_coordinator(directory, (
        "[web]\nauth_strategy = keystone\n"
        "[keystone_authtoken]\n"
        f"www_authenticate_uri = {cloud.keystone_url}\nauth_url = {cloud.keystone_url}\nauth_type = password\n"
        f"username = admin\npassword = {escapes.ini(cloud.admin_password)}\nproject_name = admin\n"
        "user_domain_name = Default\nproject_domain_name = Default\nregion_name = RegionOne\n"))
    with coordinator.inventory.session() as session:
        session.add(Node(name="compute1", roles=["compute"], variables={}, facts={}, health={}, status={},
                         alive=True, enrolment="accepted"))
    server = WebServer(make_app(coordinator.conf, coordinator.inventory, coordinator.neutron), "127.0.0.1:0").start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.stop()


def ask(url: str, token: str | None = None, method: str = "GET") -> tuple[int, str, dict]:
    request = urllib.request.Request(url, method=method, data=b"x" if method in ("POST", "PUT") else None)
    if token:
        request.add_header("X-Auth-Token", token)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.read().decode(), dict(answer.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(), dict(error.headers)


def test_no_token_or_a_bad_one_is_401_naming_keystone(view, cloud):
    for token in (None, "not-a-token", "gAAAAABl" + "x" * 150):
        status, body, headers = ask(view + "/", token)
        assert status == 401 and "compute1" not in body
        assert headers["WWW-Authenticate"] == f"Keystone uri=\"{cloud.keystone_url}\""


def test_the_reader_and_admin_roles_look_others_are_403(view, tokens):
    for user in ("looker", "admin", "helper"):  # Keystone's member implies reader
        status, body, _ = ask(view + "/", tokens[user])
        assert status == 200 and 'id="node-compute1"' in body, user
    status, body, _ = ask(view + "/", tokens["stranger"])
    assert status == 403 and "compute1" not in body and "admin or reader role" in body


def test_a_reader_writes_nothing(view, tokens):
    for method in ("POST", "PUT", "DELETE"):
        for path in ("/", "/nodes/compute1"):
            assert ask(view + path, tokens["looker"], method)[0] == 405
            assert ask(view + path, None, method)[0] == 401
