"""Configuration options (oslo.config), read from /etc/nodeagent/nodeagent.conf."""

from __future__ import annotations

import os
from pathlib import Path

from oslo_config import cfg

from nodeagent.context import DEFAULT_ALLOWED_ROOTS, DEFAULT_OVSDB, Context

DEFAULT_CONFIG_FILE = "/etc/nodeagent/nodeagent.conf"

agent_opts = [
    cfg.ListOpt("allowed_roots", default=list(DEFAULT_ALLOWED_ROOTS),
                help="Directories the agent may write under; any other path in a document is refused, "
                     "including one that escapes through '..' or a symbolic link."),
    cfg.StrOpt("ovsdb_connection", default=DEFAULT_OVSDB,
               help="The Open vSwitch database of this node's ovs-vswitchd (ovs_bridge resources)."),
    cfg.StrOpt("state_dir", default="/var/lib/nodeagent",
               help="Where the agent keeps its last accepted document, keys and event spool."),
    cfg.StrOpt("backup_dir", default="/var/lib/nodeagent/backups",
               help="Where the previous version of every replaced file is kept (empty: keep none)."),
]


def list_opts() -> list[tuple[str | None, list[cfg.Opt]]]:
    """For oslo-config-generator: every option, by group."""
    return [(None, agent_opts)]


def make_conf(config_files: list[str] | None = None) -> cfg.ConfigOpts:
    """A ConfigOpts with nodeagent's options, read from the given files (or the default one if present)."""
    conf = cfg.ConfigOpts()
    for group, opts in list_opts():
        conf.register_opts(opts, group=group)
    if config_files is None:
        config_files = [DEFAULT_CONFIG_FILE] if os.path.exists(DEFAULT_CONFIG_FILE) else []
    for path in config_files:
        if not os.path.isfile(path):
            raise cfg.ConfigFilesNotFoundError([path])
    conf(args=[], project="nodeagent", default_config_files=config_files, default_config_dirs=[])
    return conf


def make_context(conf: cfg.ConfigOpts, root: str = "/", netns: str | None = None,
                 ovsdb: str | None = None) -> Context:
    return Context(root=Path(root), netns=netns, allowed_roots=tuple(conf.allowed_roots),
                   backup_dir=conf.backup_dir or None, ovsdb=ovsdb or conf.ovsdb_connection)
