"""Configuration options (oslo.config), read from /etc/nodeagent/nodeagent.conf."""

from __future__ import annotations

import os
import shlex
import socket
from pathlib import Path

import warnings

from oslo_config import cfg

with warnings.catch_warnings():  # oslo.messaging imports eventlet via oslo.service and warns
    warnings.simplefilter("ignore")
    import oslo_messaging
    import oslo_messaging.opts
    from oslo_messaging._metrics import client as _metrics_client
    from oslo_messaging._tracing import client as _tracing_client
    from oslo_messaging import transport as _transport
    from oslo_messaging.rpc import client as _rpc_client

from nodeagent.kit.context import DEFAULT_ALLOWED_ROOTS, DEFAULT_OVSDB, Context

DEFAULT_CONFIG_FILE = "/etc/nodeagent/nodeagent.conf"

agent_opts = [
    cfg.ListOpt("allowed_roots", default=list(DEFAULT_ALLOWED_ROOTS),
                help="Directories the agent may write under; any other path in a document is refused, "
                     "including one that escapes through '..' or a symbolic link."),
    cfg.StrOpt("ovsdb_connection", default=DEFAULT_OVSDB,
               help="The Open vSwitch database of this node's ovs-vswitchd (ovs_bridge resources)."),
    cfg.StrOpt("systemctl", default="systemctl",
               help="Command that reaches this node's systemd (service resources); a lab may prefix it, "
                    "e.g. 'nsenter -t PID -m -p -- systemctl'."),
    cfg.StrOpt("command_prefix", default="",
               help="Prefix for the commands of command resources (empty: run them as they are); a lab uses it "
                    "to run them in the node's own view, e.g. 'nsenter -t PID -m -n -u --'."),
    cfg.StrOpt("state_dir", default="/var/lib/nodeagent",
               help="Where the agent keeps its last accepted document, keys and event spool."),
    cfg.StrOpt("backup_dir", default="/var/lib/nodeagent/backups",
               help="Where the previous version of every replaced file is kept (empty: keep none)."),
]


daemon_opts = [
    cfg.StrOpt("host", default=socket.gethostname(), sample_default="<hostname>",
               help="This node's name in the fleet; the coordinator's documents name it."),
    cfg.StrOpt("root", default="/", help="Filesystem root the agent acts under (a scratch root in labs)."),
    cfg.StrOpt("netns", help="Network namespace the agent acts on (default: its own)."),
    cfg.IntOpt("report_interval", default=10, min=1, help="Seconds between heartbeats to the coordinator."),
    cfg.IntOpt("resync_interval", default=300, min=1,
               help="Seconds between full reconciles (jittered by up to 10%%), the safety net for what no "
                    "event reports."),
    cfg.StrOpt("coordinator_public_key", default="/etc/nodeagent/coordinator.pub",
               help="The coordinator's Ed25519 public key; documents not signed by it are refused."),
    cfg.StrOpt("node_key", help="This node's private key (made on first start; default state_dir/node.key)."),
    cfg.FloatOpt("debounce", default=0.1, min=0,
                 help="Seconds to wait after a watch event for more before reconciling what it touched."),
    cfg.IntOpt("drift_contested_count", default=5, min=2,
               help="A resource drifting this many times within drift_contested_window is contested: "
                    "something else manages it, and the agent backs off instead of fighting."),
    cfg.FloatOpt("drift_contested_window", default=60, min=1, help="Seconds, see drift_contested_count."),
    cfg.FloatOpt("drift_backoff", default=30, min=1,
                 help="First backoff of a contested resource in seconds; doubles each time, up to an hour."),
    cfg.StrOpt("metrics_address", default="",
               help="host:port for Prometheus metrics (empty: none), e.g. 127.0.0.1:9180."),
]

coordinator_opts = [
    cfg.StrOpt("state_dir", default="/var/lib/nodeagent-coordinator",
               help="Where the coordinator keeps its database and signing key."),
    cfg.StrOpt("database_connection", secret=True,
               help="SQLAlchemy URL of the inventory (default: SQLite in state_dir; "
                    "postgresql:// or mysql+pymysql:// in production)."),
    cfg.StrOpt("signing_key", help="Ed25519 key that signs documents (default state_dir/coordinator.key)."),
    cfg.StrOpt("secrets_key",
               help="Key file that encrypts secrets and rendered documents in the database (default "
                    "state_dir/secrets.key, made on first use; keep it apart from database backups)."),
    cfg.FloatOpt("refusal_window", default=60, min=1,
                 help="Seconds over which refused messages from one source make one event with a count."),
    cfg.BoolOpt("auto_accept", default=False,
                help="Accept every new node's key on first contact (labs and demos only)."),
    cfg.IntOpt("agent_down_time", default=0, min=0,
               help="Seconds without a heartbeat after which a node is down (0: 3 x report_interval)."),
    cfg.ListOpt("webhooks", default=[], help="URLs that get every drift event and node down as a JSON POST."),
    cfg.FloatOpt("webhook_timeout", default=5, min=0.1, help="Seconds a webhook may take to answer."),
    cfg.IntOpt("webhook_retries", default=4, min=0,
               help="Retries (backoff 0.5 s doubling) before an alert is recorded as a dead letter."),
    cfg.StrOpt("metrics_address", default="", help="host:port for the coordinator's Prometheus metrics."),
    cfg.StrOpt("roles_dir", default="/etc/nodeagent/roles",
               help="Directory of the role templates (<role>.yaml.j2) that 'node assign' renders."),
]


# The coordinator's view of the real Neutron (nodeagent.fleet.neutroncheck): the guides' agent list, per node.
neutron_opts = [
    cfg.StrOpt("cloud", default="",
               help="Cloud name in clouds.yaml whose Neutron the coordinator asks which agents are alive "
                    "(empty: no Neutron verification)."),
    cfg.StrOpt("clouds_yaml", default="",
               help="clouds.yaml to read (default: the openstack client's search path)."),
    cfg.FloatOpt("agent_alive_timeout", default=180, min=1,
                 help="Seconds an agent the roles expect may be missing or dead in Neutron before it is an "
                      "alert (event, notification nodeagent.neutron.agent_dead, webhook)."),
    cfg.FloatOpt("check_interval", default=15, min=1, help="Seconds between two looks at Neutron's agent list."),
]


def list_opts() -> list[tuple[str | None, list[cfg.Opt]]]:
    """For oslo-config-generator: every option, by group."""
    return [(None, agent_opts + daemon_opts), ("coordinator", coordinator_opts), ("neutron", neutron_opts)]


# oslo.messaging's RabbitMQ listener looks at its stop flag between two waits of
# heartbeat_timeout_threshold / heartbeat_rate / 2 seconds (capped at 5 s): with its defaults (60 / 3)
# stopping an RPC server took up to 5 s. A rate of 60 makes that wait 0.5 s; a heartbeat frame then goes
# out after 1 s without traffic. An operator's [oslo_messaging_rabbit] heartbeat_rate still wins.
PROMPT_STOP_HEARTBEAT_RATE = 60


def register_messaging_opts(conf: cfg.ConfigOpts) -> None:
    """oslo.messaging registers its tracing and metrics options on the global CONF only."""
    conf.register_opts(_transport._transport_opts)  # control_exchange, which names the fleet's topics
    rabbit = "oslo_messaging_rabbit"
    if rabbit not in conf:
        conf.register_opts(dict(oslo_messaging.opts.list_opts())[rabbit], group=rabbit)
        conf.set_default("heartbeat_rate", PROMPT_STOP_HEARTBEAT_RATE, group=rabbit)
    if "rpc_response_timeout" in conf:
        return
    conf.register_opts(_tracing_client.oslo_messaging_tracing, group="oslo_messaging_tracing")
    conf.register_opts(_metrics_client.oslo_messaging_metrics, group="oslo_messaging_metrics")
    conf.register_opts(_rpc_client._client_opts)  # rpc_response_timeout, read before the first client
    oslo_messaging.set_transport_defaults("nodeagent")


def make_conf(config_files: list[str] | None = None, with_messaging: bool = False) -> cfg.ConfigOpts:
    """A ConfigOpts with nodeagent's options, read from the given files (or the default one if present)."""
    conf = cfg.ConfigOpts()
    for group, opts in list_opts():
        conf.register_opts(opts, group=group)
    if with_messaging:
        register_messaging_opts(conf)  # oslo.messaging's own options (transport_url, rabbit, ...)
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
                   backup_dir=conf.backup_dir or None, ovsdb=ovsdb or conf.ovsdb_connection,
                   systemctl=tuple(shlex.split(conf.systemctl)),
                   command_prefix=tuple(shlex.split(conf.command_prefix)))
