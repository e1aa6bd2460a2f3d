"""The configuration both programs read: every option of the agent's and the coordinator's, by group
(``oslo-config-generator`` lists them through ``list_opts``), from the files given or the default one.

oslo.messaging's own options are registered only where a broker is used (``with_messaging``, or
``wire.rpc.register_opts`` by the agent and the coordinator): a local command never imports it.
"""

from __future__ import annotations

import os

from oslo_config import cfg

from nodeagent.fleet.options import coordinator_opts, neutron_opts, web_opts
from nodeagent.node.options import agent_opts, daemon_opts

DEFAULT_CONFIG_FILE = "/etc/nodeagent/nodeagent.conf"


def list_opts() -> list[tuple[str | None, list[cfg.Opt]]]:
    """For oslo-config-generator: every option, by group."""
    return [(None, agent_opts + daemon_opts), ("coordinator", coordinator_opts), ("neutron", neutron_opts),
            ("web", web_opts)]


def make_conf(config_files: list[str] | None = None, with_messaging: bool = False) -> cfg.ConfigOpts:
    """A ConfigOpts with nodeagent's options, read from the given files (or the default one if present)."""
    conf = cfg.ConfigOpts()
    for group, opts in list_opts():
        conf.register_opts(opts, group=group)
    if with_messaging:
        from nodeagent.wire.rpc import register_opts

        register_opts(conf)  # oslo.messaging's own options (transport_url, rabbit, ...)
    if config_files is None:
        config_files = [DEFAULT_CONFIG_FILE] if os.path.exists(DEFAULT_CONFIG_FILE) else []
    for path in config_files:
        if not os.path.isfile(path):
            raise cfg.ConfigFilesNotFoundError([path])
    conf(args=[], project="nodeagent", default_config_files=config_files, default_config_dirs=[])
    return conf
