"""The agent's options (oslo.config, ``/etc/nodeagent/nodeagent.conf``), and the driver context they make."""

from __future__ import annotations

import os
import shlex
import socket
from pathlib import Path

from oslo_config import cfg, types

from nodeagent.kit.context import DEFAULT_ALLOWED_ROOTS, DEFAULT_OVSDB, Context

# systemd-run: the command runs as a service of its own, outside this unit's sandbox; its output and exit code
# come back as a child's would.
TRANSIENT_UNIT = ("systemd-run", "--wait", "--pipe", "--collect", "--quiet", "--service-type=exec")

# A unit, an executable's path or name (drift_ignore_from, drift_contest_from): one word each.
WRITER_ENTRY = types.String(regex=r"^\S+$", type_name="unit or executable")

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
    cfg.StrOpt("package_command_prefix", default="auto",
               help="Prefix for the package manager's commands (package resources). 'auto': under systemd, a "
                    "transient unit of its own (" + " ".join(TRANSIENT_UNIT) + "), since the agent's hardened "
                    "unit (ProtectSystem=strict) leaves /usr and the package database read-only to it; "
                    "elsewhere none. Empty: run them as they are."),
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
    cfg.IntOpt("document_max_age", default=3600, min=0,
               help="Seconds a pushed or pulled document is taken after the coordinator signed it (0: no bound): "
                    "a push captured on the broker cannot be replayed later. The cached document is exempt."),
    cfg.StrOpt("node_key", help="This node's private key (made on first start; default state_dir/node.key)."),
    cfg.FloatOpt("debounce", default=0.1, min=0,
                 help="Seconds to wait after a watch event for more before reconciling what it touched."),
    cfg.IntOpt("drift_contested_count", default=5, min=2,
               help="A resource drifting this many times within drift_contested_window is contested: "
                    "something else manages it, and the agent backs off instead of fighting."),
    cfg.FloatOpt("drift_contested_window", default=60, min=1, help="Seconds, see drift_contested_count."),
    cfg.FloatOpt("drift_backoff", default=30, min=1,
                 help="First backoff of a contested resource in seconds; doubles each time, up to an hour."),
    cfg.FloatOpt("rollback_timeout", default=60, min=1, max=3600,
                 help="Seconds the probes get to answer after a new document changed network resources (bridges, "
                      "links, addresses, offloads, net.* parameters) before the change is rolled back; a "
                      "document's own rollback_timeout wins. Only probes that answered before the change count: "
                      "the broker, and the document's probes."),
    cfg.StrOpt("file_watch", default="auto", choices=("auto", "fanotify", "inotify"),
               help="How file changes are heard. fanotify names the process that made each change (its command "
                    "line, unit, login user and parents: the 'by' of a drift) and needs CAP_SYS_ADMIN; inotify "
                    "names nobody. auto: fanotify where the agent may have it, else inotify ('nodeagent status' "
                    "says which)."),
    cfg.BoolOpt("name_short_lived_writers", default=True,
                help="With fanotify: read each new program's command line as it starts (the kernel's process "
                     "events), so a writer that exits before its change is read (sed -i, a postinst) is still "
                     "named. Costs about 0.2 ms of CPU per program started on the node (1.2%% of a core at 40 "
                     "programs/s, see benchmarks/drift.py); off, such a writer is named by its pid only."),
    cfg.ListOpt("drift_ignore_from", default=[], item_type=WRITER_ENTRY,
                help="Writers whose changes are expected: recorded as drift 'ignored', not corrected, until "
                     "the next document. Each entry a systemd unit (apt-daily.service), an executable's path "
                     "(/usr/bin/dpkg) or name (dpkg); a name also matches the writer's parents. Needs writers "
                     "named (file_watch)."),
    cfg.ListOpt("drift_contest_from", default=[], item_type=WRITER_ENTRY,
                help="Writers that manage the same things (another configuration tool): their first change "
                     "makes the resource contested at once (not corrected; backed off, see drift_backoff). "
                     "Entries as in drift_ignore_from."),
    cfg.StrOpt("metrics_address", default="",
               help="host:port for Prometheus metrics (empty: none), e.g. 127.0.0.1:9180."),
]


def make_context(conf: cfg.ConfigOpts, root: str = "/", netns: str | None = None,
                 ovsdb: str | None = None) -> Context:
    return Context(root=Path(root), netns=netns, allowed_roots=tuple(conf.allowed_roots),
                   backup_dir=conf.backup_dir or None, ovsdb=ovsdb or conf.ovsdb_connection,
                   systemctl=tuple(shlex.split(conf.systemctl)),
                   command_prefix=tuple(shlex.split(conf.command_prefix)),
                   package_prefix=package_prefix(conf.package_command_prefix))


def package_prefix(option: str) -> tuple[str, ...]:
    """The package manager's prefix: 'auto' means a transient unit when systemd runs the agent
    (it sets INVOCATION_ID for the processes of a unit), none otherwise."""
    if option == "auto":
        return TRANSIENT_UNIT if os.environ.get("INVOCATION_ID") else ()
    return tuple(shlex.split(option))
