"""The rendered roles write only keys their target release reads: the option registry is their oracle."""

from __future__ import annotations

import pytest

from nodeagent.optionregistry import lint_document, registry
from nodeagent.fleet.roles import LINUXBRIDGE_REMOVED, Roles, release
from tests.conftest import REPO
from tests.unit.test_roles import FACTS, NODE_VARS, SECRETS

RELEASES = registry.available()["neutron"]
VARIANTS = [{}, {"overlay": "gre"}, {"network_option": "provider"},
            {"mechanism": "linuxbridge"}, {"mechanism": "linuxbridge", "network_option": "provider"}]


def supported(variables: dict, series: str) -> bool:
    return variables.get("mechanism") != "linuxbridge" or release(series) < LINUXBRIDGE_REMOVED


@pytest.mark.parametrize("series", RELEASES)
def test_every_role_is_clean_for_every_release_it_supports(series):
    roles = Roles(REPO / "etc" / "roles")
    findings = []
    for variables in (v for v in VARIANTS if supported(v, series)):
        for role in roles.names():
            body = roles.render("n1", [role], {**variables, **NODE_VARS, "openstack_release": series}, SECRETS, FACTS)
            findings += [f"{role} {variables}: {f.describe()}" for f in lint_document(body, series)]
    assert findings == []
