"""The option checks against the registry generated from the real packages: each kind of mistake, caught."""

from __future__ import annotations

import gzip
import json

import pytest

from nodeagent.optionregistry import Finding, legacy, lint_document, lint_resources, registry

PATHS = {"neutron.conf": "/etc/neutron/neutron.conf", "ml2_conf.ini": "/etc/neutron/plugins/ml2/ml2_conf.ini",
         "openvswitch_agent.ini": "/etc/neutron/plugins/ml2/openvswitch_agent.ini",
         "linuxbridge_agent.ini": "/etc/neutron/plugins/ml2/linuxbridge_agent.ini",
         "l3_agent.ini": "/etc/neutron/l3_agent.ini", "dhcp_agent.ini": "/etc/neutron/dhcp_agent.ini",
         "metadata_agent.ini": "/etc/neutron/metadata_agent.ini", "nova.conf": "/etc/nova/nova.conf",
         "keystone.conf": "/etc/keystone/keystone.conf"}


def lint(file: str, settings: dict, release: str = "2025.2", **extra) -> list[Finding]:
    return lint_resources([{"id": "r", "driver": "ini", "path": PATHS[file], "settings": settings, **extra}], release)


def only(findings: list[Finding]) -> Finding:
    assert len(findings) == 1, [f.describe() for f in findings]
    return findings[0]


def test_the_data_covers_three_releases_of_each_service():
    assert registry.available() == {service: ["2024.2", "2025.1", "2025.2"]
                                    for service in ("keystone", "neutron", "nova")}
    for service, series in registry.available().items():
        for name in series:
            release = registry.load(service, name)
            assert release.service == service and release.series == name and release.version
            assert f"{service}.conf" in release.files
    assert "linuxbridge_agent.ini" in registry.load("neutron", "2024.2").files
    assert "linuxbridge_agent.ini" not in registry.load("neutron", "2025.1").files


def test_the_data_holds_nothing_of_the_machine_it_was_made_on():
    import socket

    for path in registry.DATA.glob("*.json.gz"):
        text = gzip.decompress(path.read_bytes()).decode()
        assert f'"{socket.gethostname()}"' not in text and "/var/tmp/nodeagent-registry" not in text
        data = json.loads(text)
        assert data["opts"]["oslo.log"]  # every service reads oslo.log's options


def test_known_keys_with_good_values_pass():
    assert lint("neutron.conf", {"DEFAULT": {"core_plugin": "ml2", "debug": True, "bind_port": 9696,
                                             "service_plugins": "router,segments"},
                                 "oslo_messaging_rabbit": {"rabbit_login_method": "AMQPLAIN"}}) == []


def test_a_typo_gets_the_closest_name():
    finding = only(lint("neutron.conf", {"DEFAULT": {"core_plugn": "ml2"}}))
    assert finding.is_error and (finding.section, finding.key) == ("DEFAULT", "core_plugn")
    assert "did you mean core_plugin" in finding.message


def test_a_misspelt_section_gets_the_closest_section():
    finding = only(lint("neutron.conf", {"keystone_authtokn": {"auth_type": "password"}}))
    assert "unknown section [keystone_authtokn]" in finding.message and "[keystone_authtoken]" in finding.message


@pytest.mark.parametrize("section, key, value, expected", [
    ("DEFAULT", "debug", "maybe", "not a boolean"),
    ("DEFAULT", "bind_port", 99999, "out of range: must be >= 0 and <= 65535"),
    ("DEFAULT", "dhcp_agents_per_network", 0, "out of range: must be >= 1"),
    ("oslo_messaging_rabbit", "rabbit_login_method", "PLAINTEXT", "not one of the choices: PLAIN, AMQPLAIN"),
    ("database", "max_retries", "ten", "not an integer"),
])
def test_bad_values_are_errors_naming_what_is_accepted(section, key, value, expected):
    finding = only(lint("neutron.conf", {section: {key: value}}))
    assert finding.is_error and expected in finding.message and f"'{value}'" in finding.message


def test_a_choice_of_the_agent_file_is_checked_there():
    finding = only(lint("openvswitch_agent.ini", {"ovs": {"datapath_type": "fast"}}))
    assert "not one of the choices: system, netdev" in finding.message


def test_secret_values_are_never_shown():
    findings = lint("neutron.conf", {"DEFAULT": {"transport_url": "s3cret-rabbit"},
                                     "keystone_authtoken": {"auth_type": "password", "password": "s3cret-pw"},
                                     "database": {"max_retries": "s3cret-retries"}},
                    sensitive=["database.max_retries"])
    assert only(findings).message.startswith("value hidden: not an integer")
    assert all("s3cret" not in f.message for f in findings)
    bad_secret = lint("nova.conf", {"neutron": {"metadata_proxy_shared_secret": "x", "timeout": "s3cret"}},
                      sensitive=True)
    assert "s3cret" not in only(bad_secret).message


def test_a_key_in_the_wrong_file_names_the_file_that_reads_it():
    finding = only(lint("ml2_conf.ini", {"ovs": {"local_ip": "198.18.1.21"}}))
    assert finding.is_error and "it is an option of openvswitch_agent.ini" in finding.message


def test_a_key_in_the_wrong_section_names_the_section():
    finding = only(lint("openvswitch_agent.ini", {"DEFAULT": {"local_ip": "198.18.1.21"}}))
    assert "openvswitch_agent.ini reads local_ip in [ovs]" in finding.message


def test_a_key_only_in_a_newer_release_is_an_error_for_an_older_target():
    settings = {"keystone_authtoken": {"memcache_tls_enabled": True}}
    assert lint("neutron.conf", settings, "2025.2") == []
    finding = only(lint("neutron.conf", settings, "2024.2"))
    assert finding.is_error and "only from 2025.2 on (the target is 2024.2)" in finding.message


def test_a_key_removed_upstream_names_the_release():
    settings = {"DEFAULT": {"use_eventlog": False}}
    assert lint("neutron.conf", settings, "2024.2")[0].severity == "warning"  # deprecated for removal there
    finding = only(lint("neutron.conf", settings, "2025.1"))
    assert finding.is_error and "removed in 2025.1 (last in 2024.2)" in finding.message


def test_a_deprecated_name_is_a_warning_with_the_new_name():
    finding = only(lint("openvswitch_agent.ini", {"DEFAULT": {"logdir": "/var/log/neutron"}}))
    assert finding.severity == "warning" and "write [DEFAULT] log_dir" in finding.message
    finding = only(lint("neutron.conf", {"keystone_authtoken": {"auth_plugin": "password"}}))
    assert "write [keystone_authtoken] auth_type" in finding.message


def test_deprecated_for_removal_warns_with_the_upstream_reason():
    finding = only(lint("neutron.conf", {"keystone_authtoken": {"auth_uri": "http://controller:5000"}}))
    assert finding.severity == "warning" and "www_authenticate_uri" in finding.message


def test_a_legacy_key_names_its_replacement_release_and_source():
    finding = only(lint("metadata_agent.ini", {"DEFAULT": {"nova_metadata_ip": "controller"}}))
    assert finding.is_error and "use [DEFAULT] nova_metadata_host" in finding.message
    assert "removed in Queens" in finding.message and "source: " in finding.message
    for row in legacy.TABLE:
        assert row.source and row.removed and row.replacement


@pytest.mark.parametrize("file, section, key, value", [
    ("ml2_conf.ini", "ml2", "mechanism_drivers", "linuxbridge,l2population"),
    ("l3_agent.ini", "DEFAULT", "interface_driver", "linuxbridge"),
    ("dhcp_agent.ini", "DEFAULT", "interface_driver", "neutron.agent.linux.interface.BridgeInterfaceDriver"),
])
def test_a_plugin_the_release_lacks_is_an_error_from_2025_1(file, section, key, value):
    assert not [f for f in lint(file, {section: {key: value}}, "2024.2") if "not a plugin" in f.message]
    finding = only(lint(file, {section: {key: value}}, "2025.1"))
    assert finding.is_error and "removed in 2025.1 (last in 2024.2)" in finding.message


def test_an_experimental_mechanism_driver_must_be_enabled_in_neutron_conf():
    ml2 = {"id": "ml2", "driver": "ini", "path": PATHS["ml2_conf.ini"],
           "settings": {"ml2": {"mechanism_drivers": "linuxbridge,l2population"}}}
    finding = only(lint_resources([ml2], "2024.2"))
    assert finding.is_error and "neutron.conf sets [experimental] linuxbridge = true" in finding.message
    neutron = {"id": "neutron", "driver": "ini", "path": PATHS["neutron.conf"],
               "settings": {"experimental": {"linuxbridge": True}}}
    assert lint_resources([ml2, neutron], "2024.2") == []


def test_an_unknown_plugin_name_gets_suggestions():
    finding = only(lint("ml2_conf.ini", {"ml2": {"mechanism_drivers": "openvswich"}}))
    assert "did you mean openvswitch" in finding.message and "it offers:" in finding.message
    assert "fake_agent" not in finding.message  # the services' test fakes are not offered to operators


def test_a_file_the_release_does_not_read_is_one_error():
    settings = {"linux_bridge": {"physical_interface_mappings": "provider:eth1"}, "vxlan": {"enable_vxlan": True}}
    assert lint("linuxbridge_agent.ini", settings, "2024.2") == []
    finding = only(lint("linuxbridge_agent.ini", settings, "2025.1"))
    assert finding.key == "" and "does not read linuxbridge_agent.ini at all: removed in 2025.1" in finding.message


def test_password_plugin_keys_without_auth_type_warn():
    settings = {"keystone_authtoken": {"auth_url": "http://controller:5000", "username": "neutron"}}
    finding = only(lint("neutron.conf", settings))
    assert finding.severity == "warning" and finding.key == "auth_type" and "auth_url, username" in finding.message
    assert lint("neutron.conf", {"keystone_authtoken": {**settings["keystone_authtoken"],
                                                        "auth_type": "password"}}) == []


def test_a_key_written_twice_for_a_single_value_option_is_an_error():
    finding = only(lint("neutron.conf", {"DEFAULT": {"core_plugin": ["ml2", "ml2"]}}))
    assert "written 2 times" in finding.message


def test_nova_and_keystone_files_are_checked_too():
    assert "did you mean" in only(lint("nova.conf", {"neutron": {"regon_name": "RegionOne"}})).message
    assert only(lint("keystone.conf", {"token": {"provider": "uuid"}})).is_error  # only fernet and jws remain
    assert lint("keystone.conf", {"token": {"provider": "fernet"}, "database": {"connection": "sqlite://"}}) == []


def test_an_unknown_release_is_a_warning_not_a_guess():
    finding = only(lint("neutron.conf", {"DEFAULT": {"core_plugin": "ml2"}}, "2026.1"))
    assert finding.severity == "warning" and "no neutron 2026.1" in finding.message


def test_other_files_and_drivers_are_not_checked():
    resources = [{"id": "x", "driver": "ini", "path": "/etc/myapp/app.ini", "settings": {"a": {"b": 1}}},
                 {"id": "y", "driver": "file", "path": "/etc/neutron/neutron.conf", "content": "x"}]
    assert lint_resources(resources, "2025.2") == []


def test_the_document_names_its_release():
    document = {"openstack_release": "2024.2", "resources": [
        {"id": "lb", "driver": "ini", "path": PATHS["linuxbridge_agent.ini"],
         "settings": {"vxlan": {"enable_vxlan": True}}}]}
    assert lint_document(document) == []
    assert only(lint_document(document, "2025.2")).is_error


def test_unchecked_sections_and_keys_are_written_with_one_warning_each():
    from nodeagent.document.model import parse_document
    from nodeagent.document.registry import DriverRegistry

    resource = {"id": "ml2", "driver": "ini", "path": "/etc/neutron/plugins/ml2/ml2_conf.ini",
                "settings": {"ml2_vendor": {"url": "x", "retries": "3"}, "ml2": {"type_drivers": "vxlan",
                                                                              "vendor_flag": "on"}},
                "unchecked": ["ml2_vendor", "ml2.vendor_flag"]}
    document = parse_document({"node": "n1", "resources": [resource]}, DriverRegistry.from_entry_points())
    found = lint_document(document, "2025.2")
    assert [(f.severity, f.section, f.key) for f in found] == [("warning", "ml2", "vendor_flag"),
                                                               ("warning", "ml2_vendor", "")]
    assert "2 keys written as given" in found[1].message
    # Without the marks, the same keys are errors.
    del resource["unchecked"]
    assert {(f.severity, f.section, f.key) for f in lint_resources([resource], "2025.2")} == {
        ("error", "ml2_vendor", "url"), ("error", "ml2_vendor", "retries"), ("error", "ml2", "vendor_flag")}


@pytest.mark.parametrize("marks", [["ml2_vendr"], ["ml2.nothing"], "ml2", [3]])
def test_an_unchecked_mark_must_name_what_the_resource_writes(marks):
    from nodeagent.document.model import parse_document
    from nodeagent.document.registry import DriverRegistry
    from nodeagent.kit.errors import InvalidResource

    resource = {"id": "ml2", "driver": "ini", "path": "/etc/neutron/plugins/ml2/ml2_conf.ini",
                "settings": {"ml2_vendor": {"url": "x"}, "ml2": {"type_drivers": "vxlan"}}, "unchecked": marks}
    with pytest.raises(InvalidResource, match="resource 'ml2': field 'unchecked'"):
        parse_document({"node": "n1", "resources": [resource]}, DriverRegistry.from_entry_points())
