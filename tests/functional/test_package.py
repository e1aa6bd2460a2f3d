"""Packages through the real apt-get, dpkg, dnf and rpm, on a scratch root with a repository the test builds
(``package_repos``): nothing reaches the host's package set, which every test checks afterwards."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from nodeagent.document.model import parse_document
from nodeagent.kit.context import Context
from nodeagent.kit.errors import InvalidDocument
from nodeagent.kit.result import Status
from nodeagent.node.engine import Engine
from nodeagent.testing import labpackages
from nodeagent.testing import packagerepos
from tests.functional.helpers import EventSink, details, reconcile, watching

HOST_PACKAGE_STATE = ("/var/lib/dpkg/status", "/etc/dnf/plugins/versionlock.list", "/var/lib/rpm", "/var/cache/dnf",
                      "/var/lib/dnf", "/var/cache/apt/archives")


def host_package_state() -> dict[str, str]:
    """What the host's package databases hold: a file's digest, a folder's names."""
    state = {}
    for place in map(Path, HOST_PACKAGE_STATE):
        if place.is_file():
            state[str(place)] = hashlib.sha256(place.read_bytes()).hexdigest()
        elif place.is_dir():
            state[str(place)] = " ".join(sorted(p.name for p in place.rglob("*")))
    return state


@pytest.fixture(autouse=True)
def host_untouched():
    before = host_package_state()
    yield
    assert host_package_state() == before


@pytest.fixture(scope="module")
def repositories(tmp_path_factory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("repositories")
    return {"apt": packagerepos.deb_repository(directory), "dnf": packagerepos.rpm_repository(directory)}


@pytest.fixture(params=["apt", "dnf"])
def manager(request) -> str:
    return request.param


@pytest.fixture
def node(root: Path, repositories, manager) -> Path:
    if manager == "apt":
        return packagerepos.apt_root(root, repositories["apt"])
    return packagerepos.dnf_root(root, repositories["dnf"])


@pytest.fixture
def engine(registry, root: Path) -> Engine:
    return Engine(registry, Context(root=root, backup_dir=None))


def packages(manager: str, **states) -> dict:
    names = {key.replace("_", "-"): value for key, value in states.items()}
    return {"id": "packages", "driver": "package", "manager": manager, "packages": names}


def version(manager: str, number: str) -> str:
    """The test packages' versions as each manager writes them (RPM names the release)."""
    return number if manager == "apt" else f"{number}-1"


def test_a_missing_package_is_installed_then_in_sync(engine, node, manager):
    resource = packages(manager, na_tool="installed")
    planned = reconcile(engine, resource, dry_run=True)["packages"]
    assert details(planned) == ["na-tool: absent → installed"]
    assert packagerepos.installed_file(node, "na-tool") is None
    assert reconcile(engine, resource)["packages"].status is Status.CHANGED
    assert packagerepos.installed_file(node, "na-tool") == "2.0"  # the newest the repository has
    assert reconcile(engine, resource)["packages"].status is Status.IN_SYNC


def test_a_held_version_is_installed_held_moved_and_released(engine, node, manager):
    old, new = version(manager, "1.0"), version(manager, "2.0")
    first = reconcile(engine, packages(manager, na_tool=old))["packages"]
    assert (first.status, details(first)) == (Status.CHANGED, [f"na-tool: absent → {old} (held)"])
    assert packagerepos.installed_file(node, "na-tool") == "1.0"
    assert reconcile(engine, packages(manager, na_tool=old))["packages"].status is Status.IN_SYNC
    if manager == "apt":  # the hold is dpkg's own: an upgrade leaves the package where it is
        upgraded = subprocess.run(["apt-get", "upgrade", "-y", "-q"], capture_output=True, text=True,
                                  env={"APT_CONFIG": apt_config(node), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
        assert "kept back" in upgraded.stdout, upgraded.stdout + upgraded.stderr
        assert packagerepos.installed_file(node, "na-tool") == "1.0"

    moved = reconcile(engine, packages(manager, na_tool=new))["packages"]
    assert details(moved) == [f"na-tool: {old} (held) → {new} (held)"]
    assert packagerepos.installed_file(node, "na-tool") == "2.0"
    back = reconcile(engine, packages(manager, na_tool=old))["packages"]  # a downgrade too
    assert (back.status, packagerepos.installed_file(node, "na-tool")) == (Status.CHANGED, "1.0")

    released = reconcile(engine, packages(manager, na_tool="installed"))["packages"]
    assert details(released) == [f"na-tool: {old} (held) → installed"]
    assert packagerepos.installed_file(node, "na-tool") == "1.0"  # released, not upgraded
    assert reconcile(engine, packages(manager, na_tool="installed"))["packages"].status is Status.IN_SYNC


def test_absent_removes_an_installed_package_and_leaves_the_others(engine, node, manager):
    reconcile(engine, packages(manager, na_tool="installed", na_other="installed"))
    removed = reconcile(engine, packages(manager, na_tool="absent", na_other="installed"))["packages"]
    assert details(removed) == ["na-tool: 2.0 → absent" if manager == "apt" else "na-tool: 2.0-1 → absent"]
    assert packagerepos.installed_file(node, "na-tool") is None
    assert packagerepos.installed_file(node, "na-other") == "1.0"
    assert reconcile(engine, packages(manager, na_tool="absent"))["packages"].status is Status.IN_SYNC


def test_an_unknown_package_is_an_error_naming_it_and_nothing_changes(engine, node, manager):
    failed = reconcile(engine, packages(manager, na_other="installed", na_nosuch="installed"))["packages"]
    assert failed.status is Status.FAILED
    assert failed.error.startswith("field 'packages.na-nosuch': no repository of this node has package "
                                   "'na-nosuch'"), failed.error
    assert failed.error.endswith("nothing was changed")
    assert packagerepos.installed_file(node, "na-other") is None


def test_a_version_no_repository_has_is_an_error_naming_it_and_nothing_changes(engine, node, manager):
    missing = version(manager, "9.9")
    failed = reconcile(engine, packages(manager, na_other="installed", na_tool=missing))["packages"]
    assert failed.status is Status.FAILED
    assert failed.error.startswith(f"field 'packages.na-tool': no repository of this node has version {missing} of "
                                   "package 'na-tool'"), failed.error
    assert packagerepos.installed_file(node, "na-other") is None


@pytest.mark.parametrize("manager", ["apt"])
def test_a_package_removed_by_hand_is_seen_and_put_back(engine, node, registry):
    """dpkg replaces its status file on every change: the watch on it hears a removal made behind the agent."""
    resource = packages("apt", na_tool="installed")
    reconcile(engine, resource)
    driver = registry.get("package")
    sink = EventSink()
    with watching(driver, {"packages": driver.validate({k: resource[k] for k in ("manager", "packages")})},
                  engine.ctx, sink):
        packagerepos.run("dpkg", f"--root={node}", "--remove", "na-tool")
        assert sink.wait_for("packages")
    fixed = reconcile(engine, resource)["packages"]
    assert details(fixed) == ["na-tool: absent → installed"]
    assert packagerepos.installed_file(node, "na-tool") == "2.0"


@pytest.mark.parametrize("manager", ["dnf"])
def test_dnf_without_the_versionlock_plugin_refuses_a_held_version_and_changes_nothing(engine, root, repositories,
                                                                                        manager):
    node = packagerepos.dnf_root(root, repositories["dnf"], versionlock=False)
    failed = reconcile(engine, packages("dnf", na_tool="1.0-1"))["packages"]
    assert failed.error == ("a held version needs dnf's versionlock plugin, and this node has no "
                            "/etc/dnf/plugins/versionlock.list (package python3-dnf-plugin-versionlock); "
                            "nothing was changed")
    assert packagerepos.installed_file(node, "na-tool") is None
    assert reconcile(engine, packages("dnf", na_tool="installed"))["packages"].status is Status.CHANGED


@pytest.mark.parametrize("manager", ["apt"])
def test_a_root_without_a_dpkg_database_is_an_error_saying_so(engine, root, manager):
    failed = reconcile(engine, packages("apt", na_tool="installed"))["packages"]
    assert failed.error == f"no dpkg database at {root}/var/lib/dpkg (manager 'apt' on a node without dpkg?)"


@pytest.mark.parametrize("manager", ["apt"])
@pytest.mark.parametrize("change, message", [
    ({"manager": "yum"}, "field 'manager' must be one of apt, dnf, got 'yum'"),
    ({"packages": ["radvd"]}, "field 'packages' must be a mapping of package name to installed, absent or a "
                              "version, got \\['radvd'\\]"),
    ({"packages": {}}, "field 'packages' must be a mapping"),
    ({"packages": {"Radvd": "installed"}}, "field 'packages' has an invalid apt package name 'Radvd'"),
    ({"packages": {"-o": "installed"}}, "field 'packages' has an invalid apt package name '-o'"),
    ({"packages": {"radvd": "latest"}}, "field 'packages.radvd' must be installed, absent or a version "
                                        "\\(e.g. 2.19-1 or 1:2.19-1\\+b1\\), got 'latest'"),
    ({"manager": "dnf", "packages": {"radvd": "2.19"}}, "field 'packages.radvd' must be installed, absent or a "
                                                        "version \\(e.g. 2.19-5.el9\\), got '2.19'"),
    ({"version": "1"}, "field 'version' is not known to driver 'package'"),
])
def test_bad_input_is_refused_naming_the_resource_and_field(engine, root, manager, change, message):
    with pytest.raises(InvalidDocument, match=f"resource 'packages': {message}"):
        parse_document({"node": "lab", "generation": 1,
                        "resources": [{**packages("apt", radvd="installed"), **change}]}, engine.registry)
    assert list(root.iterdir()) == []


@pytest.mark.parametrize("manager", ["apt"])
def test_a_lab_node_reads_the_hosts_packages_and_never_installs(engine, root, manager):
    """What the lab gives its nodes (labpackages): the host's package set, read-only in effect."""
    labpackages.copy_package_database(root)
    tools = reconcile(engine, packages("apt", radvd="installed", dnsmasq_utils="installed"))["packages"]
    assert tools.status is Status.IN_SYNC, tools.error  # scripts/setup.sh installs them on the host
    missing = reconcile(engine, packages("apt", radvd="installed", na_tool="installed"))["packages"]
    assert missing.status is Status.FAILED
    assert missing.error.startswith("field 'packages.na-tool': no repository of this node has package 'na-tool'")


def apt_config(root: Path) -> str:
    config = root.parent / "apt-test.conf"
    config.write_text(f'Dir "{root}/";\nDPkg::Options:: "--root={root}";\n')
    return str(config)
