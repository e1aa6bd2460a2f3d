"""ethtool offloads on a veth inside the test's namespace, checked with the real ethtool command."""

from __future__ import annotations

import pytest

from nodeagent.node.engine import Engine
from nodeagent.kit.errors import InvalidDocument
from nodeagent.kit.result import Status
from tests.conftest import lab_context
from tests.functional.helpers import EventSink, watching, details, reconcile

GRO_OFF = {"id": "gro-off", "driver": "ethtool", "interface": "eth2", "features": {"gro": False}}


@pytest.fixture
def engine(lab, registry):
    return Engine(registry, lab_context(lab))


def feature(lab, name):
    out = lab.exec("ethtool", "-k", "eth2").stdout
    return next(line.split(":")[1].split()[0] for line in out.splitlines() if line.startswith(name + ":"))


def test_gro_turned_off_kept_off_and_fixed_after_drift(lab, engine):
    lab.exec("ethtool", "-K", "eth2", "gro", "on")  # veth starts with GRO off here
    planned = reconcile(engine, GRO_OFF, dry_run=True)["gro-off"]
    assert details(planned) == ["gro: on → off"]
    assert reconcile(engine, GRO_OFF)["gro-off"].status is Status.CHANGED
    assert feature(lab, "generic-receive-offload") == "off"
    assert reconcile(engine, GRO_OFF)["gro-off"].status is Status.IN_SYNC
    lab.exec("ethtool", "-K", "eth2", "gro", "on")
    assert details(reconcile(engine, GRO_OFF, dry_run=True)["gro-off"]) == ["gro: on → off"]
    assert reconcile(engine, GRO_OFF)["gro-off"].status is Status.CHANGED
    assert feature(lab, "generic-receive-offload") == "off"


def test_several_features_and_kernel_names(lab, engine):
    spec = {**GRO_OFF, "features": {"tso": False, "tx-generic-segmentation": False, "gro": True}}
    assert reconcile(engine, spec)["gro-off"].status is Status.CHANGED
    assert feature(lab, "tcp-segmentation-offload") == "off"
    assert feature(lab, "generic-segmentation-offload") == "off"
    assert feature(lab, "generic-receive-offload") == "on"
    assert reconcile(engine, spec)["gro-off"].status is Status.IN_SYNC


def test_a_fixed_feature_is_a_clear_error(lab, engine):
    failed = reconcile(engine, {**GRO_OFF, "features": {"lro": True}})["gro-off"]
    assert failed.status is Status.FAILED
    assert failed.error == "offload feature 'lro' of interface eth2 is fixed by its driver and cannot be turned on"
    assert feature(lab, "large-receive-offload") == "off"


def test_unknown_interface_and_feature(lab, engine):
    missing = reconcile(engine, {**GRO_OFF, "interface": "eth7"})["gro-off"]
    assert missing.error == f"interface eth7 not found in network namespace '{lab.name}'"
    unknown = reconcile(engine, {**GRO_OFF, "features": {"warp-drive": True}})["gro-off"]
    assert unknown.error == "interface eth2 has no offload feature 'warp-drive'"


@pytest.mark.parametrize("change, message", [
    ({"features": {"gro": "off"}}, "field 'features.gro' must be true or false, got 'off'"),
    ({"features": "gro=off"}, "field 'features' must be a mapping of feature to true/false"),
    ({"interface": "eth2/../x"}, "field 'interface' must be an interface name"),
])
def test_bad_input_is_refused(engine, change, message):
    with pytest.raises(InvalidDocument, match=message):
        reconcile(engine, {**GRO_OFF, **change})


def test_watch_reports_a_feature_change(lab, engine, registry):
    reconcile(engine, GRO_OFF)
    driver = registry.get("ethtool")
    sink = EventSink()
    with watching(driver, {"gro-off": driver.validate({"interface": "eth2", "features": {"gro": False}})},
                  engine.ctx, sink):
        lab.exec("ethtool", "-K", "eth2", "gro", "on")
        assert sink.wait_for("gro-off")
