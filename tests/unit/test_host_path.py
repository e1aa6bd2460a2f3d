"""Context.host_path: a document's path mapped under the scratch root, links resolved inside that root,
and anything outside the allowed roots refused with the path named (real files and links, no host /etc)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nodeagent.kit.context import Context
from nodeagent.kit.errors import PathRefused


@pytest.fixture
def ctx(root: Path) -> Context:
    (root / "etc/neutron").mkdir(parents=True)
    (root / "etc/secret").mkdir(parents=True)
    return Context(root=root, allowed_roots=("/etc/neutron",))


def test_a_path_under_an_allowed_root_maps_under_the_scratch_root(ctx, root):
    assert ctx.host_path("/etc/neutron/neutron.conf") == root / "etc/neutron/neutron.conf"
    assert ctx.host_path("/etc/neutron/plugins/ml2/ml2_conf.ini") == root / "etc/neutron/plugins/ml2/ml2_conf.ini"
    assert ctx.host_path("/etc/neutron") == root / "etc/neutron"  # the root itself


@pytest.mark.parametrize("path, message", [
    ("etc/neutron/neutron.conf", "path 'etc/neutron/neutron.conf' must be absolute and must not contain '..'"),
    ("/etc/neutron/../shadow", "path '/etc/neutron/../shadow' must be absolute and must not contain '..'"),
    ("/etc/secret/x.conf", "path '/etc/secret/x.conf' is outside the allowed roots: /etc/neutron"),
    ("/etc/neutronic/x.conf", "path '/etc/neutronic/x.conf' is outside the allowed roots: /etc/neutron"),
])
def test_relative_dotdot_and_outside_paths_are_refused_by_name(ctx, path, message):
    with pytest.raises(PathRefused) as refused:
        ctx.host_path(path)
    assert str(refused.value) == message


def test_a_link_is_resolved_inside_the_root_and_cannot_escape(ctx, root):
    os.symlink("/etc/secret", root / "etc/neutron/absolute")  # absolute: means root + /etc/secret
    os.symlink("../secret", root / "etc/neutron/relative")
    for link in ("absolute", "relative"):
        with pytest.raises(PathRefused, match=f"'/etc/neutron/{link}/x.conf' \\(resolves to '/etc/secret/x.conf'\\)"):
            ctx.host_path(f"/etc/neutron/{link}/x.conf")


def test_a_link_that_stays_inside_an_allowed_root_is_followed(ctx, root):
    (root / "etc/neutron/plugins/ml2").mkdir(parents=True)
    os.symlink("plugins/ml2/ml2_conf.ini", root / "etc/neutron/plugin.ini")
    assert ctx.host_path("/etc/neutron/plugin.ini") == root / "etc/neutron/plugins/ml2/ml2_conf.ini"
    # the symlink driver manages the link itself: its final part is not followed
    assert ctx.host_path("/etc/neutron/plugin.ini", follow_final=False) == root / "etc/neutron/plugin.ini"


def test_a_final_link_out_is_refused_unless_the_link_itself_is_managed(ctx, root):
    os.symlink("/etc/secret/shadow", root / "etc/neutron/leak.conf")
    with pytest.raises(PathRefused, match="outside the allowed roots"):
        ctx.host_path("/etc/neutron/leak.conf")
    assert ctx.host_path("/etc/neutron/leak.conf", follow_final=False) == root / "etc/neutron/leak.conf"


def test_a_link_loop_is_refused_not_followed_forever(ctx, root):
    os.symlink("loop-b", root / "etc/neutron/loop-a")
    os.symlink("loop-a", root / "etc/neutron/loop-b")
    with pytest.raises(PathRefused, match="too many symbolic links under '/etc/neutron/loop-a'"):
        ctx.host_path("/etc/neutron/loop-a/x")


def test_an_allowed_root_that_is_a_link_allows_where_it_leads_and_no_further(root):
    """The allowed root is resolved like any path: /etc/nova -> /opt/nova allows /opt/nova, not /opt."""
    (root / "etc").mkdir()
    (root / "opt/nova").mkdir(parents=True)
    (root / "opt/other").mkdir()
    os.symlink("/opt/nova", root / "etc/nova")
    ctx = Context(root=root, allowed_roots=("/etc/nova",))
    assert ctx.host_path("/etc/nova/nova.conf") == root / "opt/nova/nova.conf"
    assert ctx.host_path("/opt/nova/nova.conf") == root / "opt/nova/nova.conf"
    with pytest.raises(PathRefused, match="'/opt/other/x' is outside the allowed roots"):
        ctx.host_path("/opt/other/x")
    # the link that is the allowed root, managed as a link: not under the root it leads to
    with pytest.raises(PathRefused, match="'/etc/nova' is outside the allowed roots"):
        ctx.host_path("/etc/nova", follow_final=False)


def test_a_folder_of_an_allowed_root_replaced_by_a_link_is_followed_on_the_next_look(ctx, root):
    """Nothing is remembered between looks: a folder swapped for a link out is refused at once."""
    (root / "etc/neutron/plugins").mkdir()
    assert ctx.host_path("/etc/neutron/plugins/x.ini") == root / "etc/neutron/plugins/x.ini"
    (root / "etc/neutron/plugins").rmdir()
    os.symlink("/etc/secret", root / "etc/neutron/plugins")
    with pytest.raises(PathRefused, match="resolves to '/etc/secret/x.ini'"):
        ctx.host_path("/etc/neutron/plugins/x.ini")
