"""Which reconcile results are drift: the node moved away from the document, not a restart it caused."""

from __future__ import annotations

from nodeagent.node.drift import is_drift
from nodeagent.kit.result import Change
from nodeagent.kit.result import ResourceResult, Status


def test_a_corrected_or_left_difference_is_drift():
    assert is_drift(ResourceResult("conf", "ini", Status.CHANGED, (Change("DEFAULT.debug", "true", "false"),)))
    assert is_drift(ResourceResult("conf", "ini", Status.DRIFTED, (Change("DEFAULT.debug", "true", "false"),)))
    assert is_drift(ResourceResult("svc", "service", Status.CHANGED, (Change("state", "stopped", "running"),),
                                   notified=("restarted (notified by 'conf')",)))


def test_a_service_only_restarted_because_what_it_reads_changed_is_not_drift():
    assert not is_drift(ResourceResult("svc", "service", Status.CHANGED, (),
                                       notified=("restarted (notified by 'conf')",)))
    assert not is_drift(ResourceResult("conf", "ini", Status.IN_SYNC))
