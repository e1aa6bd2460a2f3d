"""The web view in a real browser (Debian's chromium, driven by Selenium through chromium-driver) on a lab fleet:
two lab nodes with real agents over RabbitMQ, a role that renders two secrets into their files, and two
coordinators on one database, each serving the view (one from [web] address, one from ``serve --web``).

Screenshots of each page are kept under test-artifacts/test_web_browser/ (git ignores it)."""

from __future__ import annotations

import base64
import json
import re
import shutil
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from nodeagent.testing.lab import Fleet
from nodeagent.testing.labcloud import free_port
from nodeagent.testing.waiting import wait_until

pytestmark = pytest.mark.timeout(300)

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "test_web_browser"
NODES = ("web1", "web2")
# Secrets of this run only: grepping the pages for them cannot match anything but a leak.
SECRETS = {"RABBIT_PASS": f"Rb{uuid.uuid4().hex[:12]}", "NEUTRON_PASS": f"Np{uuid.uuid4().hex[:12]}"}
ROLE = """resources:
  - id: neutron-conf
    driver: ini
    path: /etc/neutron/neutron.conf
    settings:
      DEFAULT:
        core_plugin: ml2
        transport_url: "rabbit://openstack:{{ secret('RABBIT_PASS') | rabbit_password }}@controller"
      keystone_authtoken:
        password: "{{ secret('NEUTRON_PASS') | ini }}"
    sensitive: [DEFAULT.transport_url, keystone_authtoken]
  - id: dnsmasq
    driver: file
    path: /etc/neutron/dnsmasq-neutron.conf
    content: "dhcp-option-force=26,{{ instance_mtu }}\\n"
"""
READER = ("reader1", f"rd-{uuid.uuid4().hex[:8]}")
ADMIN = ("admin1", f"ad-{uuid.uuid4().hex[:8]}")


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def fetch(url: str, method: str = "GET", who: tuple[str, str] | None = None) -> tuple[int, str]:
    """The answer's status and body, as any HTTP client gets it."""
    request = urllib.request.Request(url, method=method, data=b"x=1" if method in ("POST", "PUT", "PATCH") else None)
    if who:
        request.add_header("Authorization", basic(*who))
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    directory = tmp_path_factory.mktemp("web")
    (directory / "roles").mkdir()
    (directory / "roles/web.yaml.j2").write_text(ROLE)
    ports = [free_port(), free_port()]
    fleet = Fleet(directory, report_interval=1, auto_accept=True,
                  coordinator_options={"roles_dir": directory / "roles"},
                  coordinator_sections={"web": {"address": f"127.0.0.1:{ports[0]}",
                                                "password_file": directory / "web-passwords", "refresh": 1}})
    fleet.urls = [f"http://127.0.0.1:{port}" for port in ports]
    second = None
    try:
        for user, role in ((READER, "reader"), (ADMIN, "admin")):
            fleet.ctl("web-password", user[0], "--role", role, stdin=user[1] + "\n")
        for name in NODES:
            fleet.add_node(name, ["eth1"])
        fleet.start("coordinator")
        for name in NODES:
            fleet.start(name)
        # A second coordinator of the same fleet (its own host name, the same database), its view from --web.
        conf = directory / "coordinator2.conf"
        conf.write_text(fleet.coordinator_conf.read_text().replace("host = coordinator", "host = coordinator2"))
        second = _serve(conf, directory / "coordinator2.log", f"127.0.0.1:{ports[1]}")
        wait_until(lambda: all(name in fleet.ctl("node", "list", "-f", "value", "-c", "Host").stdout
                               for name in NODES), timeout=60)
        for key, value in SECRETS.items():
            fleet.ctl("secret", "set", key, stdin=value + "\n")
        fleet.ctl("node", "assign", ",".join(NODES), "web")
        wait_until(lambda: fleet.ctl("node", "list", "-f", "value", "-c", "State").stdout.split()
                   == ["converged"] * len(NODES), timeout=60)
        for url in fleet.urls:
            wait_until(lambda: fetch(url)[0] == 401, timeout=30, what=f"the web view at {url}")
        yield fleet
    finally:
        if second is not None:
            second.terminate()
            second.wait(30)
        fleet.close()


def _serve(conf: Path, log: Path, web: str):
    import subprocess
    import sys

    program = Path(sys.executable).parent / "nodeagentctl"
    return subprocess.Popen([str(program), "--config-file", str(conf), "serve", "--web", web],
                            stdout=open(log, "ab"), stderr=subprocess.STDOUT)


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})  # the statuses the browser received
    driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"))
    driver.set_page_load_timeout(30)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()


def log_in(driver, who: tuple[str, str] | None) -> None:
    """Every request of the browser from now on carries ``who``'s credentials (none: no Authorization)."""
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Authorization": basic(*who)} if who else {}})


def shot(driver, name: str) -> None:
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def statuses(driver) -> dict[str, int]:
    """url -> HTTP status of each document the browser received since the last call."""
    found = {}
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.responseReceived" and message["params"]["type"] == "Document":
            found[message["params"]["response"]["url"]] = message["params"]["response"]["status"]
    return found


def read(driver, what):
    """``what(driver)`` on one load of the page: the page reloads itself every second, and an element read
    across a reload is stale (or not there yet), so the whole read is done again."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException, \
        WebDriverException

    for attempt in range(20):
        try:
            return what(driver)
        except WebDriverException as exc:
            # Chrome may also say the element's node "does not belong to the document" (read as it reloaded).
            stale = isinstance(exc, (NoSuchElementException, StaleElementReferenceException)) \
                or "does not belong to the document" in str(exc)
            if attempt == 19 or not stale:
                raise
            time.sleep(0.1)


def text(driver, element_id: str) -> str:
    return read(driver, lambda d: d.find_element("id", element_id).text)


def marks(driver, node: str) -> list[str]:
    """The colours of ``node``'s marks on the timeline."""
    return read(driver, lambda d: [circle.get_attribute("fill") for circle in d.find_elements(
        "css selector", f'#timeline g.mark[data-node="{node}"] circle')])


def test_the_fleets_nodes_appear_on_every_coordinators_view(fleet, browser):
    log_in(browser, READER)
    seen = []
    for number, url in enumerate(fleet.urls, 1):
        browser.get(url + "/")
        rows = read(browser, lambda d: [(row.get_attribute("id"), [cell.text for cell in row.find_elements(
            "css selector", "td")]) for row in d.find_elements("css selector", "#nodes tbody tr")])
        seen.append([row_id for row_id, _ in rows])
        for _, cells in rows:
            assert cells[1] == "web" and cells[2] == "up" and cells[3] == "converged" and cells[5] == "2/2", cells
        assert text(browser, "served-by") == f"served by coordinator{'' if number == 1 else 2}"
        shot(browser, f"fleet-coordinator{number}")
    assert seen == [[f"node-{name}" for name in NODES]] * 2
    browser.get(fleet.urls[0] + "/?state=held")
    # the page before it reloads itself every second: under load its reload can land after this get
    wait_until(lambda: read(browser, lambda d: d.find_element("css selector", "#nodes tbody").text)
               == "No node matches.", 30, "the held filter's empty table")
    browser.get(fleet.urls[0] + "/")
    read(browser, lambda d: d.find_element("link text", "web1").click())  # a link, no script
    assert browser.current_url.endswith("/nodes/web1")
    resources = text(browser, "resources")
    assert "neutron-conf ini /etc/neutron/neutron.conf in sync" in resources
    shot(browser, "node-web1")


def test_a_drift_appears_on_the_timeline_within_seconds(fleet, browser):
    log_in(browser, READER)
    browser.get(fleet.urls[1] + "/timeline?hours=1")  # the view of the coordinator started with --web
    before = len(marks(browser, "web1"))
    dnsmasq = fleet.directory / "web1/root/etc/neutron/dnsmasq-neutron.conf"
    expected = dnsmasq.read_text()  # what the role renders (a rollout test of this module may change it)
    made = time.monotonic()
    dnsmasq.write_text("dhcp-option-force=26,9000\n")
    # No navigation: the page reloads itself ([web] refresh = 1 s).
    wait_until(lambda: len(marks(browser, "web1")) > before, timeout=30, what="a new mark for web1 on the timeline")
    print(f"drift on the timeline after {time.monotonic() - made:.1f} s")
    assert dnsmasq.read_text() == expected
    assert marks(browser, "web1")[-1] == "#009E73"  # corrected
    assert re.search(r"web1 dnsmasq corrected\ncontent: found 26 bytes", text(browser, "drift"))
    shot(browser, "timeline-after-drift")
    browser.get(fleet.urls[0] + "/nodes/web1")
    assert "dnsmasq (file) corrected" in text(browser, "last-diff-title")
    shot(browser, "node-web1-last-diff")


def test_unauthenticated_is_401_and_nothing_writes(fleet, browser):
    log_in(browser, None)
    statuses(browser)
    for url in fleet.urls:
        browser.get(url + "/nodes/web1")
        assert "web1" not in browser.page_source  # headless: no login dialog, nothing of the fleet either
    assert statuses(browser) == {url + "/nodes/web1": 401 for url in fleet.urls}
    shot(browser, "unauthenticated")
    log_in(browser, READER)
    browser.get(fleet.urls[0] + "/nodes/web1")
    assert statuses(browser) == {fleet.urls[0] + "/nodes/web1": 200}
    for url in fleet.urls:
        for path in ("/", "/nodes/web1", "/timeline", "/events", "/nowhere"):
            assert fetch(url + path)[0] == 401
            assert fetch(url + path, who=(READER[0], "wrong"))[0] == 401
        for who in (READER, ADMIN):
            for method in ("POST", "PUT", "PATCH", "DELETE"):
                for path in ("/", "/nodes/web1", "/events"):
                    assert fetch(url + path, method, who)[0] == 405, (method, path)
                    assert fetch(url + path, method)[0] == 401
    # What a reader's browser can reach: only links and GET forms, and no script at all.
    for path in ("/", "/nodes/web1", "/timeline", "/events"):
        browser.get(fleet.urls[0] + path)
        assert not read(browser, lambda d: d.find_elements("css selector", "script"))
        assert read(browser, lambda d: {form.get_attribute("method") for form in d.find_elements(
            "css selector", "form")}) <= {"get"}


def test_no_secret_in_any_page(fleet, browser):
    rendered = (fleet.directory / "web1/root/etc/neutron/neutron.conf").read_text()
    assert all(value in rendered for value in SECRETS.values())  # they are there to leak
    conf = fleet.directory / "web2/root/etc/neutron/neutron.conf"  # a drift of the secret's own line
    conf.write_text(conf.read_text().replace(SECRETS["RABBIT_PASS"], "changed-by-hand"))
    wait_until(lambda: SECRETS["RABBIT_PASS"] in conf.read_text(), timeout=30, what="the transport_url put back")
    wait_until(lambda: "transport_url" in fetch(fleet.urls[0] + "/nodes/web2", who=READER)[1], timeout=30,
               what="the transport_url drift on web2's page")
    log_in(browser, ADMIN)
    paths = ["/", "/events", "/events?node=web2"] + [f"/nodes/{name}" for name in NODES] + \
        [f"/timeline?hours={hours}" for hours in (1, 6, 24, 168)]
    for url in fleet.urls:
        for path in paths:
            status, raw = fetch(url + path, who=ADMIN)
            browser.get(url + path)
            assert status == 200
            for page in (raw, browser.page_source):
                for key, value in SECRETS.items():
                    assert value not in page, f"{key} in {path}"
                assert "changed-by-hand" not in page
    shot(browser, "timeline-168h")
    assert re.search(r"DEFAULT\.transport_url: found \*\*\*, expected \*\*\*",
                     fetch(fleet.urls[0] + "/nodes/web2", who=ADMIN)[1])


def test_a_rollouts_progress_moves_on_its_page(fleet, browser):
    log_in(browser, READER)
    fleet.ctl("var", "set", "instance_mtu", "1400", "--rollout", "--soak", "2")  # one node at a time, each 2 s
    number = json.loads(fleet.ctl("rollout", "list", "-f", "json").stdout)[0]["ID"]
    browser.get(f"{fleet.urls[1]}/rollouts/{number}")
    seen = []

    def progress() -> bool:
        seen.append(read(browser, lambda d: int(d.find_element("id", "progress").get_attribute("value"))))
        return seen[-1] == 100

    wait_until(progress, timeout=60, step=0.3)
    shot(browser, "rollout")
    assert seen[0] < 100 and seen == sorted(seen), seen  # it moved, forward, while the page reloaded itself
    assert "done" in text(browser, "rollout-node-web2")
    browser.get(f"{fleet.urls[0]}/rollouts")
    assert "completed" in text(browser, f"rollout-{number}")
