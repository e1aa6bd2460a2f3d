"""The web view's application on a real inventory (made by keygen) and a real password file, through Flask's test
client (WSGI, no socket): who gets in, that nothing writes, that the fleet page filters as ``node list`` does,
and that no secret reaches a page. The browser tests (tests/functional/test_web_browser.py) drive a real fleet."""

from __future__ import annotations

import base64
import os
import re
import time

import pytest

from nodeagent.fleet.errors import InvalidInput
from nodeagent.fleet.inventory import DriftRecord, Event, Node, Rollout, RolloutNode, Secret, StateDocument
from nodeagent.fleet.web import auth, timeline
from nodeagent.fleet.web.app import make_app
from tests.conftest import set_up_coordinator

SECRET = "Xq7-s3cret-$-value"  # as the operator typed it
PAGES = ["/", "/nodes/compute1", "/nodes/network1", "/timeline", "/timeline?hours=168", "/events",
         "/?state=held", "/?role=compute&alive=up&sort=heartbeat&drifted=on", "/rollouts", "/rollouts/1"]


@pytest.fixture
def coordinator(tmp_path):
    auth.set_password(tmp_path / "web-passwords", "ann", "reader", "ann's pass:word")
    auth.set_password(tmp_path / "web-passwords", "root", "admin", "other")
    coordinator = set_up_coordinator(tmp_path, f"[web]\npassword_file = {tmp_path / 'web-passwords'}\nrefresh = 3\n")
    now = time.time()
    with coordinator.inventory.session() as session:
        def node(name, roles, alive, heartbeat, enrolment="accepted", held=None, desired=1, observed=1, status=None):
            session.add(Node(name=name, roles=roles, variables={}, facts={"os": "Debian GNU/Linux 12"},
                             health={"load": [0.25], "cpu_percent": 3.0, "memory_percent": 41.0,
                                     "services": {"neutron-l3-agent": True, "neutron-dhcp-agent": False}},
                             status=status or {}, alive=alive, last_heartbeat=heartbeat, enrolment=enrolment,
                             held=held, desired_generation=desired, observed_generation=observed))
        node("compute1", ["compute"], True, now - 5, status={
            "generation": 1, "reconciled_generation": 1, "counts": {"in_sync": 1, "drifted": 1},
            "drifted": ["neutron-conf"]})
        node("compute2", ["compute"], False, now - 500, desired=2)
        node("network1", ["network"], True, now - 1, held="interface eth1 of node 'network1' has no IPv4 address")
        node("new1", [], False, None, enrolment="pending", desired=0, observed=0)
        session.flush()
        session.add(Secret(key="RABBIT_PASS", value=SECRET, set_at=now))
        session.add(StateDocument(node="compute1", generation=1, body={"node": "compute1", "generation": 1, "resources": [
            {"id": "neutron-conf", "driver": "ini", "path": "/etc/neutron/neutron.conf",
             "settings": {"DEFAULT": {"transport_url": f"rabbit://openstack:{SECRET}@controller"}},
             "sensitive": ["DEFAULT.transport_url"]},
            {"id": "forward", "driver": "sysctl", "settings": {"net.ipv4.ip_forward": 1}}]}))
        session.add(DriftRecord(uid="d1", node="compute1", resource="neutron-conf", driver="ini", generation=1,
                                state="left", seen_at=now - 30, changes=[
                                    {"field": "DEFAULT.transport_url", "expected": "***", "found": "***"},
                                    {"field": "DEFAULT.debug", "expected": "false", "found": "true"}]))
        session.add(DriftRecord(uid="d2", node="network1", resource="br-ex", driver="ovs_bridge", generation=1,
                                state="corrected", seen_at=now - 600, fixed_at=now - 599, changes=[]))
        session.add(Event(node="compute1", type="node.up", detail="new <b>bold</b>", at=now))
        session.add(Rollout(id=1, state="failed", selection="role compute", change="var set tag=blue", canary=0,
                            max_unavailable="1", soak=0.0, batch=1, reason="compute1: generation 2 failed on tunnel",
                            created_at=now, updated_at=now))
        session.flush()
        session.add(RolloutNode(rollout=1, node="compute1", batch=1, state="failed", since=now, generation=2,
                                reason="generation 2 failed on tunnel"))
        session.add(RolloutNode(rollout=1, node="compute2", batch=2, state="waiting", since=now))
    return coordinator


@pytest.fixture
def client(coordinator):
    return make_app(coordinator.conf, coordinator.inventory, coordinator.neutron).test_client()


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


READER = basic("ann", "ann's pass:word")


def test_every_page_asks_who_is_looking(client):
    for path in PAGES + ["/nodes/nobody", "/no-such-page"]:
        for headers in ({}, basic("ann", "wrong"), basic("nobody", "ann's pass:word"), {"Authorization": "Basic ???"},
                        {"Authorization": "Bearer abc"}):
            answer = client.get(path, headers=headers)
            assert answer.status_code == 401, (path, headers)
            assert answer.headers["WWW-Authenticate"].startswith("Basic ")
            assert "compute1" not in answer.get_data(as_text=True)


def test_a_reader_and_an_admin_see_every_page(client):
    for headers in (READER, basic("root", "other")):
        for path in PAGES:
            answer = client.get(path, headers=headers)
            assert answer.status_code == 200, path
            assert answer.headers["Content-Security-Policy"].startswith("default-src 'none'")
            assert "<script" not in answer.get_data(as_text=True)
            assert '<meta http-equiv="refresh" content="3">' in answer.get_data(as_text=True)


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_nothing_writes_whoever_asks(client, coordinator, method):
    before = [(n.name, n.roles, n.enrolment) for n in coordinator.inventory.nodes()]
    for path in PAGES + ["/nodes/compute1/accept", "/secrets"]:
        assert client.open(path, method=method).status_code == 401
        answer = client.open(path, method=method, headers=READER, data={"roles": "controller"})
        assert answer.status_code == 405, (method, path)
        assert answer.headers["Allow"] == "GET, HEAD"
    assert [(n.name, n.roles, n.enrolment) for n in coordinator.inventory.nodes()] == before


def hosts(client, query: str) -> list[str]:
    page = client.get(f"/?{query}", headers=READER).get_data(as_text=True)
    return re.findall(r'<tr id="node-([^"]+)">', page)


def test_the_fleet_page_filters_as_node_list_does(client):
    assert hosts(client, "") == ["compute1", "compute2", "network1", "new1"]
    assert hosts(client, "role=compute") == ["compute1", "compute2"]
    assert hosts(client, "state=held") == ["network1"]
    assert hosts(client, "state=converging") == ["compute2"]
    assert hosts(client, "alive=down&role=compute") == ["compute2"]
    assert hosts(client, "drifted=on") == ["compute1"]
    assert hosts(client, "sort=heartbeat") == ["new1", "compute2", "compute1", "network1"]
    page = client.get("/", headers=READER).get_data(as_text=True)
    assert "interface eth1 of node &#39;network1&#39; has no IPv4 address" in page  # held, and why
    assert "1/2" in page and "load 0.25 · cpu 3% · mem 41% · 1/2 services" in page


def test_a_wrong_filter_is_an_error_naming_it(client):
    for query, named in (("state=sleepy", "state &#39;sleepy&#39;"), ("sort=size", "sort &#39;size&#39;"),
                         ("alive=maybe", "alive &#39;maybe&#39;")):
        answer = client.get(f"/?{query}", headers=READER)
        assert answer.status_code == 400 and named in answer.get_data(as_text=True)
    answer = client.get("/timeline?hours=2", headers=READER)
    assert answer.status_code == 400 and "hours &#39;2&#39; is not one of 1, 6, 24, 168" in answer.get_data(as_text=True)
    assert client.get("/nodes/nobody", headers=READER).status_code == 404


def test_a_node_page_shows_its_resources_last_diff_and_history(client):
    page = client.get("/nodes/compute1", headers=READER).get_data(as_text=True)
    assert re.search(r"<td>neutron-conf</td><td>ini</td><td>/etc/neutron/neutron.conf</td>\s*<td class=\"drifted\">", page)
    assert re.search(r"<td>forward</td><td>sysctl</td><td></td>\s*<td class=\"in-sync\">in sync", page)
    assert "DEFAULT.debug: found true, expected false" in page.split('id="last-diff"')[1]
    assert "node.up" in page and "new &lt;b&gt;bold&lt;/b&gt;" in page  # escaped


def test_no_secret_in_any_page_source(client):
    for path in PAGES + ["/events?node=compute1", "/nodes/compute1"]:
        page = client.get(path, headers=READER).get_data(as_text=True)
        assert SECRET not in page and "s3cret" not in page and "transport_url\": " not in page, path
        assert "rabbit://" not in page, path


def test_the_timeline_has_a_lane_per_node_and_a_mark_per_drift(client):
    page = client.get("/timeline?hours=1", headers=READER).get_data(as_text=True)
    assert re.findall(r'<g class="lane" data-node="([^"]+)">', page) == ["compute1", "network1"]
    marks = re.findall(r'<g class="mark" data-node="([^"]+)">\s*(?:<line[^>]*>)?\s*<circle [^>]*fill="([^"]+)"', page)
    assert sorted(marks) == [("compute1", timeline.COLOURS["left"]), ("network1", timeline.COLOURS["corrected"])]


def test_timeline_geometry_keeps_marks_inside_the_plot():
    now = 1_000_000.0
    records = [DriftRecord(node=f"n{i % 3}", resource="r", driver="ini", state="failed", seen_at=now - i * 100,
                           fixed_at=None, closed_at=None) for i in range(30)]
    plot = timeline.plot(records, now - 3600, now)
    assert [lane.node for lane in plot.lanes] == ["n0", "n1", "n2"]
    assert len(plot.marks) == 30 and all(plot.left <= m.x <= plot.width - 10 for m in plot.marks)
    assert {m.y for m in plot.marks} == {lane.y for lane in plot.lanes}
    assert plot.ticks[0].x == plot.left and plot.ticks[-1].x == plot.width - 10


def test_password_file_keeps_hashes_only_and_names_a_bad_line(tmp_path):
    path = tmp_path / "pw"
    auth.set_password(path, "ann", "reader", "first")
    auth.set_password(path, "ann", "admin", "second")  # replaces her line
    text = path.read_text()
    assert text.count("ann:") == 1 and "second" not in text and text.startswith("ann:admin:scrypt$")
    assert path.stat().st_mode & 0o777 == 0o600
    os.chown(path, 1, 1)  # given to the coordinator's user: a change keeps it theirs
    auth.set_password(path, "ann", "admin", "second")
    assert (path.stat().st_uid, path.stat().st_gid, path.stat().st_mode & 0o777) == (1, 1, 0o600)
    text = path.read_text()
    users = auth.PasswordFile(path)
    assert users.identify("ann", "second") == auth.Identity("ann", frozenset({"admin"}))
    assert users.identify("ann", "first") is None and users.identify("bob", "second") is None
    for line, named in (("ann:reader", "line 2: expected 'name:role:hash'"),
                        ("bob:owner:scrypt$1$2$3$4$5", "line 2: role 'owner' is not one of admin, reader"),
                        ("bob:reader:md5$x", "line 2: hash is not")):
        path.write_text(text + line + "\n")
        with pytest.raises(InvalidInput, match=re.escape(named)):
            auth.PasswordFile(path).users()
        with pytest.raises(InvalidInput, match="line 2"):
            auth.set_password(path, "carl", "reader", "x")  # a broken file is said, not rewritten
        assert path.read_text() == text + line + "\n"
    with pytest.raises(InvalidInput, match="role 'owner'"):
        auth.set_password(tmp_path / "other", "ann", "owner", "x")
    with pytest.raises(InvalidInput, match="must not be empty"):
        auth.set_password(tmp_path / "other", "ann", "reader", "")
    assert not (tmp_path / "other").exists()


def test_a_missing_password_file_stops_the_start_naming_it(coordinator, tmp_path):
    coordinator.conf.set_override("password_file", str(tmp_path / "absent"), group="web")
    with pytest.raises(InvalidInput, match=re.escape(f"[web] password_file {tmp_path / 'absent'}")):
        make_app(coordinator.conf, coordinator.inventory, coordinator.neutron)


def test_a_wrong_address_is_an_error_naming_it(client):
    from nodeagent.fleet.web.server import WebServer

    for address in ("nonsense", "127.0.0.1:http", ":8480", "127.0.0.1:70000"):
        with pytest.raises(InvalidInput, match=re.escape(f"[web] address '{address}': expected host:port")):
            WebServer(client.application, address)
    taken = WebServer(client.application, "127.0.0.1:0").start()
    try:
        with pytest.raises(InvalidInput, match=f"address '127.0.0.1:{taken.port}': cannot serve there"):
            WebServer(client.application, f"127.0.0.1:{taken.port}")
        import urllib.request
        request = urllib.request.Request(f"http://127.0.0.1:{taken.port}/", headers=READER)
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 200 and b'id="node-compute1"' in answer.read()
            assert answer.headers["Server"] == "nodeagent"
    finally:
        taken.stop()


def test_a_timeline_past_its_limit_says_so(client, coordinator):
    from nodeagent.fleet.web.pages import TIMELINE_LIMIT

    assert 'id="limited"' not in client.get("/timeline?hours=1", headers=READER).get_data(as_text=True)
    now = time.time()
    with coordinator.inventory.session() as session:
        session.add_all(DriftRecord(uid=f"many{n}", node="compute2", resource="r", driver="ini", generation=1,
                                    state="left", seen_at=now - 60, changes=[]) for n in range(TIMELINE_LIMIT))
    page = client.get("/timeline?hours=1", headers=READER).get_data(as_text=True)
    assert f"Only the newest {TIMELINE_LIMIT} drift records of this window are drawn" in page
    assert page.count('<g class="mark"') == TIMELINE_LIMIT


def test_the_rollouts_pages_show_progress_and_why_one_stopped(client):
    listing = client.get("/rollouts", headers=READER).get_data(as_text=True)
    assert "var set tag=blue" in listing and "0/2" in listing and "compute1: generation 2 failed on tunnel" in listing
    one = client.get("/rollouts/1", headers=READER).get_data(as_text=True)
    assert re.search(r'id="rollout-node-compute2">.*?waiting', one, re.S) and "0/2 nodes done" in one
    assert client.get("/rollouts/9", headers=READER).status_code == 404
