"""The coordinator's options (oslo.config, ``/etc/nodeagent/coordinator.conf``): its ``[coordinator]``,
``[neutron]`` and ``[web]`` groups."""

from __future__ import annotations

from oslo_config import cfg

coordinator_opts = [
    cfg.StrOpt("state_dir", default="/var/lib/nodeagent-coordinator",
               help="Where the coordinator keeps its database and signing key."),
    cfg.StrOpt("database_connection", secret=True,
               help="SQLAlchemy URL of the inventory (default: SQLite in state_dir; "
                    "postgresql:// or mysql+pymysql:// in production)."),
    cfg.FloatOpt("database_lock_timeout", default=2, min=0,
                 help="Seconds a statement waits for a row another transaction holds before it gives up "
                      "(PostgreSQL lock_timeout, MariaDB innodb_lock_wait_timeout; 0: the server's setting). A "
                      "coordinator hung inside a transaction then delays only the nodes whose rows it holds, and a "
                      "heartbeat that waited is simply sent again at the next interval."),
    cfg.FloatOpt("database_idle_transaction_timeout", default=5, min=0,
                 help="Seconds the database server lets a coordinator's transaction sit idle before it ends it "
                      "(PostgreSQL idle_in_transaction_session_timeout, MariaDB idle_transaction_timeout; 0: the "
                      "server's setting): what a hung coordinator holds is freed after this. Below "
                      "report_interval, so a node whose heartbeat a hung coordinator was taking loses that one "
                      "heartbeat, not its down time; above the longest pause inside a transaction (a change "
                      "renders its nodes before its transaction opens: its pauses stay well under a second at "
                      "1,000 nodes)."),
    cfg.StrOpt("coordination_url", secret=True,
               help="tooz backend for the locks several coordinators on one database share (default: the "
                    "inventory's own MariaDB or PostgreSQL, or a lock folder in state_dir with SQLite; "
                    "every coordinator of a fleet must use the same). A hung coordinator keeps a lock of those "
                    "until it is stopped; redis://HOST:6379?lock_timeout=30 makes locks leases that lapse when "
                    "their holder stops renewing them (needs the redis Python package: nodeagent[redis])."),
    cfg.StrOpt("signing_key", help="Ed25519 key that signs documents (default state_dir/coordinator.key)."),
    cfg.StrOpt("secrets_key",
               help="Key file that encrypts secrets and rendered documents in the database (default "
                    "state_dir/secrets.key, made on first use; keep it apart from database backups)."),
    cfg.FloatOpt("refusal_window", default=60, min=1,
                 help="Seconds over which refused messages from one source make one event with a count."),
    cfg.BoolOpt("auto_accept", default=False,
                help="Accept every new node's key on first contact (labs and demos only)."),
    cfg.IntOpt("max_pending_nodes", default=100, min=0,
               help="Nodes that may wait for an operator's 'node accept' at once; a first contact past them is "
                    "refused (one event per refusal_window), so made-up nodes cannot fill the inventory."),
    cfg.IntOpt("enrolments_per_minute", default=30, min=1,
               help="New pending nodes per minute (per coordinator); more are refused alike. Neither bound "
                    "applies with auto_accept."),
    cfg.IntOpt("agent_down_time", default=0, min=0,
               help="Seconds without a heartbeat after which a node is down (0: 3 x report_interval)."),
    cfg.BoolOpt("heartbeat_casts", default=True,
                help="Ask agents to cast their plain heartbeats (no events, no new facts), which the coordinators "
                     "take in batches (less CPU per heartbeat), instead of calling with each one. False: every "
                     "heartbeat is a call, answered (agents follow at their next report)."),
    cfg.FloatOpt("health_refresh", default=60, min=0,
                 help="Seconds a node's stored load, CPU, memory and disk figures may age before a heartbeat stores "
                      "them again (0: every heartbeat). A heartbeat whose status or running services moved is "
                      "stored at once; one that moved nothing else costs no write to the node's row, and when it "
                      "was heard is kept apart (node list's Last heartbeat is always exact)."),
    cfg.FloatOpt("rollout_node_timeout", default=600, min=1,
                 help="Seconds a node released by a rollout may take to report its new generation applied (and "
                      "its Neutron agents alive) before it fails the rollout."),
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


# The read-only web view (nodeagent.fleet.web), served by 'nodeagentctl serve' when address is set.
web_opts = [
    cfg.StrOpt("address", default="",
               help="host:port of the read-only web view (empty: off; 'nodeagentctl serve --web' sets it too). "
                    "Plain HTTP: keep it on loopback or behind a TLS proxy."),
    cfg.StrOpt("auth_strategy", default="password", choices=["password", "keystone"],
               help="Who may look: 'keystone' (keystonemiddleware's auth_token, configured in "
                    "[keystone_authtoken]; the admin or reader role) or 'password' (HTTP Basic against "
                    "password_file; 'nodeagentctl web-password' adds a user)."),
    cfg.StrOpt("password_file", default="/etc/nodeagent/web-passwords",
               help="Users of the web view, one 'name:role:scrypt-hash' a line (role admin or reader)."),
    cfg.IntOpt("refresh", default=10, min=1, help="Seconds after which a page reloads itself (meta refresh)."),
]
