"""The engine's logic with an in-memory driver: order, failure isolation, monitor mode, notify, secrets."""

from __future__ import annotations

from typing import Any

import pytest

from nodeagent.kit.context import Context
from nodeagent.kit.driver import Driver
from nodeagent.kit.result import Change
from nodeagent.node.engine import Engine
from nodeagent.kit.errors import PermanentError, TemporaryError
from nodeagent.document.model import parse_document
from nodeagent.document.registry import DriverRegistry
from nodeagent.kit.result import Status


class MemoryDriver(Driver):
    """Keeps values in ctx.extra['store']; 'fail' makes apply raise, 'stuck' makes apply do nothing."""

    name = "memory"
    notifiable = True

    def validate(self, spec: dict[str, Any]) -> dict[str, Any]:
        return dict(spec)

    def observe(self, spec, ctx):
        ctx.extra["log"].append(("observe", spec["key"]))
        return ctx.extra["store"].get(spec["key"])

    def diff(self, spec, observed):
        return [] if observed == spec["value"] else [Change("value", observed, spec["value"])]

    def apply(self, spec, changes, ctx):
        ctx.extra["log"].append(("apply", spec["key"]))
        if spec.get("fail") == "temporary":
            raise TemporaryError(f"device busy while writing {spec['value']}")
        if spec.get("fail"):
            raise PermanentError(f"cannot write {spec['value']}")
        if not spec.get("stuck"):
            ctx.extra["store"][spec["key"]] = spec["value"]

    def notify(self, spec, ctx):
        ctx.extra["log"].append(("notify", spec["key"]))
        return "restarted"


@pytest.fixture
def ctx():
    return Context(extra={"store": {}, "log": []})


@pytest.fixture
def engine(ctx):
    return Engine(DriverRegistry([MemoryDriver()]), ctx)


def document(*resources, mode="enforce"):
    return parse_document({"node": "n1", "generation": 1, "mode": mode,
                           "resources": [{"driver": "memory", **r} for r in resources]},
                          DriverRegistry([MemoryDriver()]))


def by_id(result):
    return {r.id: r for r in result.resources}


def test_apply_then_verify_then_idempotent(engine, ctx):
    doc = document({"id": "a", "key": "a", "value": "1"})
    first = engine.reconcile(doc)
    assert by_id(first)["a"].status is Status.CHANGED
    assert ctx.extra["log"] == [("observe", "a"), ("apply", "a"), ("observe", "a")]
    second = engine.reconcile(doc)
    assert by_id(second)["a"].status is Status.IN_SYNC
    assert second.counts()["changed"] == 0


def test_failure_stays_with_its_resource_and_dependents_are_skipped(engine, ctx):
    doc = document({"id": "bad", "key": "b", "value": "1", "fail": True},
                   {"id": "child", "key": "c", "value": "1", "after": ["bad"]},
                   {"id": "grandchild", "key": "g", "value": "1", "after": ["child"]},
                   {"id": "free", "key": "f", "value": "1"})
    results = by_id(engine.reconcile(doc))
    assert results["bad"].status is Status.FAILED
    assert results["bad"].error == "cannot write 1" and results["bad"].error_kind == "permanent"
    assert results["child"].status is Status.SKIPPED and results["child"].error == "skipped: 'bad' failed"
    assert results["grandchild"].error == "skipped: 'child' skipped"
    assert results["free"].status is Status.CHANGED
    assert ("apply", "c") not in ctx.extra["log"]


def test_temporary_errors_say_so(engine):
    result = by_id(engine.reconcile(document({"id": "t", "key": "t", "value": "1", "fail": "temporary"})))["t"]
    assert result.error_kind == "temporary"


def test_apply_that_does_not_converge_fails(engine):
    result = by_id(engine.reconcile(document({"id": "s", "key": "s", "value": "1", "stuck": True})))["s"]
    assert result.status is Status.FAILED
    assert "still differs in: value" in result.error


def test_monitor_mode_reports_drift_and_changes_nothing(engine, ctx):
    ctx.extra["store"]["m"] = "old"
    doc = document({"id": "m", "key": "m", "value": "new"}, {"id": "e", "key": "e", "value": "1", "mode": "enforce"},
                   mode="monitor")
    results = by_id(engine.reconcile(doc))
    assert results["m"].status is Status.DRIFTED
    assert results["m"].changes[0].describe() == "value: old → new"
    assert ctx.extra["store"]["m"] == "old"
    assert results["e"].status is Status.CHANGED


def test_dry_run_changes_nothing(engine, ctx):
    result = engine.reconcile(document({"id": "a", "key": "a", "value": "1"}), dry_run=True)
    assert by_id(result)["a"].status is Status.PENDING and result.pending
    assert ctx.extra["store"] == {}


def test_notify_fires_once_at_the_end_for_changed_sources_only(engine, ctx):
    ctx.extra["store"]["same"] = "1"
    doc = document({"id": "svc", "key": "svc", "value": "run"},
                   {"id": "conf1", "key": "c1", "value": "1", "notify": ["svc"]},
                   {"id": "conf2", "key": "c2", "value": "1", "notify": ["svc"]},
                   {"id": "same", "key": "same", "value": "1", "notify": ["svc"]})
    assert doc.order.index("svc") > doc.order.index("conf2")
    results = by_id(engine.reconcile(doc))
    assert [entry for entry in ctx.extra["log"] if entry[0] == "notify"] == [("notify", "svc")]
    assert ctx.extra["log"][-1] == ("notify", "svc")
    assert results["svc"].notified == ("restarted (notified by 'conf1', 'conf2')",)
    assert not by_id(engine.reconcile(doc))["svc"].notified


def test_notify_of_a_failed_source_skips_the_target(engine, ctx):
    doc = document({"id": "svc", "key": "svc", "value": "run"},
                   {"id": "conf", "key": "c", "value": "1", "notify": ["svc"], "fail": True})
    results = by_id(engine.reconcile(doc))
    assert results["svc"].status is Status.SKIPPED
    assert ("notify", "svc") not in ctx.extra["log"]


def test_only_reconciles_the_named_resources(engine, ctx):
    doc = document({"id": "a", "key": "a", "value": "1"}, {"id": "b", "key": "b", "value": "1"})
    result = engine.reconcile(doc, only=["b"])
    assert [r.id for r in result.resources] == ["b"]
    assert "a" not in ctx.extra["store"]


def test_secrets_are_masked_in_changes_and_errors(engine, ctx):
    ctx.extra["store"]["p"] = "old-password"
    doc = document({"id": "p", "key": "p", "value": "hunter22", "sensitive": ["value"]},
                   {"id": "q", "key": "q", "value": "hunter33", "fail": True, "sensitive": True})
    results = by_id(engine.reconcile(doc))
    assert results["p"].changes[0].describe() == "value: *** → ***"
    assert results["q"].error == "cannot write ***"
    text = repr(engine.reconcile(doc, dry_run=True).to_dict())
    assert "hunter" not in text and "old-password" not in text


def test_a_change_to_a_shared_file_notifies_the_readers_named_by_every_resource_of_that_file(engine, ctx):
    # The two-node controller: the server's and the agents' neutron.conf resources manage one file.
    ctx.extra["store"]["shared"] = "1"
    doc = document({"id": "server", "key": "server", "value": "run"},
                   {"id": "agent", "key": "agent", "value": "run"},
                   {"id": "as-server", "key": "shared", "path": "/etc/neutron/neutron.conf", "value": "2",
                    "notify": ["server"]},
                   {"id": "as-agent", "key": "shared", "path": "/etc/neutron/neutron.conf", "value": "2",
                    "notify": ["agent"]})
    results = by_id(engine.reconcile(doc))
    assert results["as-agent"].status is Status.IN_SYNC  # the first resource already wrote the value
    assert sorted(e for e in ctx.extra["log"] if e[0] == "notify") == [("notify", "agent"), ("notify", "server")]


def test_a_targeted_reconcile_still_restarts_what_reads_the_changed_resource(engine, ctx):
    # A drift reconciles only the drifted file; the service that reads it must restart all the same.
    doc = document({"id": "svc", "key": "svc", "value": "run"},
                   {"id": "conf", "key": "c", "value": "1", "notify": ["svc"]})
    engine.reconcile(doc)
    ctx.extra["store"]["c"] = "drifted"
    ctx.extra["log"].clear()
    results = by_id(engine.reconcile(doc, only=["conf"]))
    assert results["conf"].status is Status.CHANGED
    assert ("notify", "svc") in ctx.extra["log"]
    assert results["svc"].notified == ("restarted (notified by 'conf')",)


def test_a_notified_service_restarts_at_its_turn_before_what_comes_after_it(engine, ctx):
    # The two-node controller moving to option 2: the server must restart with the router plugin before the
    # new L3 agent starts, or the agent's first calls go unanswered.
    doc = document({"id": "conf", "key": "c", "value": "router", "notify": ["server"]},
                   {"id": "server", "key": "server", "value": "run"},
                   {"id": "l3", "key": "l3", "value": "run", "after": ["server"]})
    engine.reconcile(doc)
    log = ctx.extra["log"]
    assert log.index(("notify", "server")) < log.index(("observe", "l3"))
    assert log.count(("notify", "server")) == 1
