"""A lab cloud: the real OpenStack services the roles configure, running on lab nodes.

What an operator already has before following the Neutron guide runs on the host, private to
the lab: a MariaDB (its own data directory, a socket only), a Keystone (fernet, bootstrapped,
on loopback), a memcached and a RabbitMQ vhost. Every lab node gets a systemd of its own *inside* its
network namespace, whose mount view makes the node look like a node:

* ``/etc/neutron``, ``/etc/nova``, ``/etc/openstack`` are the node's scratch root (where its
  nodeagent writes), so units read the roles' paths verbatim; the rest of ``/etc`` is an
  overlay of the host's (``/etc/hosts`` says ``controller`` is 127.0.0.1);
* ``/run`` is fresh (the node's own ``/run/netns`` for qdhcp-/qrouter- namespaces), with the
  node's Open vSwitch at ``/run/openvswitch`` and the lab MariaDB's socket at ``/run/mysqld``;
* ``/var/lib`` is an overlay (``/var/lib/neutron`` is the node's), the host name is the node's;
* relays (socat units) answer on the node's 127.0.0.1 for RabbitMQ (5672), Keystone (5000),
  MariaDB (3306) and memcached (11211), through unix sockets to the host: no host interface or
  route is touched.

The units are what a distribution package installs (Debian names), with the neutron
binaries of the series' virtualenv (``scripts/setup-openstack.sh``); the roles enable,
start and restart them. Nova's units are stand-ins, or with ``nova=True`` the real Nova with its fake virt
driver (``labnova``).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from nodeagent.fleet import escapes
from nodeagent.testing import labnova
from nodeagent.testing.lab import STAND_IN_UNIT, LabSystemd
from nodeagent.testing.sqlserver import install_mariadb, mariadb_tmpdir
from nodeagent.testing.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
VENVS = REPO / ".venvs"
KEYSTONE_SERIES = "2025.2"   # one Keystone serves every lab; its API (v3) does not change with the series
NODE_PORTS = {"rabbit": 5672, "keystone": 5000, "mysql": 3306, "memcached": 11211}
SERVICE_PATH = "{bin}:{venv}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Debian unit names -> the config files the package's unit passes (after /etc/neutron/neutron.conf).
NEUTRON_UNITS = {
    "neutron-server": ("neutron-server", ["/etc/neutron/plugin.ini"], "simple"),
    "neutron-api": ("neutron-api", ["/etc/neutron/plugin.ini"], "simple"),
    "neutron-rpc-server": ("neutron-rpc-server", ["/etc/neutron/plugin.ini"], "simple"),
    "neutron-periodic-workers": ("neutron-periodic-workers", ["/etc/neutron/plugin.ini"], "simple"),
    # Type=notify: the OVS agent says READY after its first state report, so a hung agent
    # ("Agent terminated!" without exiting) fails the start instead of looking active.
    "neutron-openvswitch-agent": ("neutron-openvswitch-agent",
                                  ["/etc/neutron/plugins/ml2/openvswitch_agent.ini"], "notify"),
    "neutron-linuxbridge-agent": ("neutron-linuxbridge-agent",
                                  ["/etc/neutron/plugins/ml2/linuxbridge_agent.ini"], "notify"),
    "neutron-dhcp-agent": ("neutron-dhcp-agent", ["/etc/neutron/dhcp_agent.ini"], "notify"),
    "neutron-l3-agent": ("neutron-l3-agent", ["/etc/neutron/l3_agent.ini"], "notify"),
    "neutron-metadata-agent": ("neutron-metadata-agent", ["/etc/neutron/metadata_agent.ini"], "simple"),
}
# Lab-only options, in a file of the node's view outside every role's paths: agents report every 5 s (30 by
# default) and the server calls an agent dead after 20 s without a report (75 by default), so tests need not wait.
LAB_CONF = "/etc/neutron-lab.conf"
LAB_TUNING = "[DEFAULT]\nagent_down_time = 20\n[agent]\nreport_interval = 5\n"
# Every lab password starts with what breaks a URL, an ini file, SQL or a latin-1 encoder: the roles must
# carry it to each service as it was set (fleet/escapes.py).
HOSTILE = "p@ss/AT#?%$\u00e9'"
STAND_INS = ("nova-api", "nova-compute", "nova-scheduler", "nova-conductor", "openvswitch-switch")

UNIT = """[Unit]
Description=OpenStack {name} (lab unit, as the Debian package ships it)
After=lab-relays.target
[Service]
Type={type}
Environment=PATH={path}
ExecStart={command}
StandardOutput=append:{log}
StandardError=inherit
TimeoutStartSec=90
TimeoutStopSec=5
KillMode=mixed
[Install]
WantedBy=multi-user.target
"""
RELAY_UNIT = """[Unit]
Description=lab relay: the node's 127.0.0.1:{port} to {socket}
[Service]
ExecStart=/usr/bin/socat TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr UNIX-CONNECT:{socket}
"""
EXPOSE_UNIT = """[Unit]
Description=lab relay: this node's 127.0.0.1:{port} for the host, at {socket}
[Service]
ExecStart=/usr/bin/socat UNIX-LISTEN:{socket},fork,unlink-early TCP:127.0.0.1:{port}
"""
# Neutron's default root_helper is 'sudo'; lab nodes run as root and have none.
SUDO_SHIM = """#!/bin/sh
# lab only: a node's services run as root, and neutron's default root_helper is 'sudo'
while [ $# -gt 0 ]; do case "$1" in -E|-n|-H|-S) shift;; -u|-g) shift 2;; --) shift; break;; *) break;; esac; done
exec "$@"
"""
NODE_BOOT = """#!/bin/sh
set -e
hostname {name}
mount -t tmpfs tmpfs /run
mkdir -p /run/systemd /run/netns /run/openvswitch /run/lock /run/mysqld
mount --bind {ovs} /run/openvswitch
mount --bind {mysqld} /run/mysqld
mount -t overlay overlay -o lowerdir=/etc,upperdir={view}/etc.upper,workdir={view}/etc.work /etc
mount -t overlay overlay -o lowerdir=/var/lib,upperdir={view}/lib.upper,workdir={view}/lib.work /var/lib
for d in neutron nova openstack placement; do mkdir -p /etc/$d; mount --bind {root}/etc/$d /etc/$d; done
mkdir -p /var/lib/neutron /var/log/neutron /var/lib/nova/tmp
printf '127.0.0.1 localhost {name} controller\\n' > /etc/hosts
echo {name} > /etc/hostname     # systemd sets the host name from it at boot
mount -t tmpfs tmpfs /sys/fs/cgroup
mkdir -p /sys/fs/cgroup/unified /sys/fs/cgroup/systemd
mount -t cgroup2 none /sys/fs/cgroup/unified
mount -t cgroup -o none,name=systemd systemd /sys/fs/cgroup/systemd
mount -t tmpfs tmpfs /etc/systemd/system
exec env -i container=docker SYSTEMD_UNIT_PATH=/etc/systemd/system:{units} /lib/systemd/systemd --system \\
    --unit=nodeagent-lab.target
"""


def venv(series: str) -> Path:
    """The virtualenv of an OpenStack series, or a clear error saying how to make it."""
    path = VENVS / f"openstack-{series}"
    if not (path / ".installed").exists():
        raise RuntimeError(f"no OpenStack {series} services at {path}: run scripts/setup-openstack.sh")
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _setsid(command: list[str], log: Path, **kwargs) -> subprocess.Popen:
    """A lab process in a session of its own, so stopping it stops what it forked."""
    return subprocess.Popen(command, stdout=open(log, "ab"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True, **kwargs)


def _stop_group(process: subprocess.Popen, grace: float = 3) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(grace)
            return
        except subprocess.TimeoutExpired:
            continue


@dataclass
class LabCloud:
    """The shared services of a lab cloud (MariaDB, Keystone, a RabbitMQ vhost) and its nodes' systemds."""

    directory: Path
    series: str = "2025.2"
    admin_password: str = field(default_factory=lambda: HOSTILE + "admin-" + secrets.token_hex(6))
    # no '/': oslo.messaging's rabbit driver cannot carry one (fleet/escapes.py, rabbit_password)
    rabbit_password: str = field(default_factory=lambda: HOSTILE.replace("/", "") + "rabbit-" + secrets.token_hex(6))
    nova: bool = False  # the real Nova (fake virt driver) instead of stand-ins; needs nova_secrets before start
    nova_secrets: dict[str, str] = field(default_factory=dict)  # NOVA_PASS, PLACEMENT_PASS

    def __post_init__(self) -> None:
        self.directory = Path(self.directory)
        self.venv = venv(self.series)
        self.keystone_venv = venv(KEYSTONE_SERIES)
        tag = f"{os.getpid()}x{id(self) % 100000}"
        self.rabbit_vhost = self.rabbit_user = f"nalab-{tag}"
        self.sockets = self.directory / "sockets"
        self.keystone_port = free_port()
        self.api_port = free_port()
        self.nova_port = free_port()
        self.nova_venv = labnova.venv(VENVS) if self.nova else None
        self.processes: dict[str, subprocess.Popen] = {}
        self.bin = self.directory / "bin"

    # --- the host side -------------------------------------------------------------------------------------

    @property
    def keystone_url(self) -> str:
        return f"http://127.0.0.1:{self.keystone_port}/v3"

    @property
    def neutron_url(self) -> str:
        """The controller node's Neutron API, as the host reaches it."""
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def nova_url(self) -> str:
        """The controller node's compute API (with ``nova``), as the host reaches it."""
        return f"http://127.0.0.1:{self.nova_port}/v2.1"

    @property
    def mysqld(self) -> Path:
        return self.directory / "mysqld"

    def start(self) -> "LabCloud":
        for directory in (self.sockets, self.mysqld, self.bin, self.directory / "logs"):
            directory.mkdir(parents=True, exist_ok=True)
        (self.bin / "sudo").write_text(SUDO_SHIM)
        (self.bin / "sudo").chmod(0o755)
        self._rabbit()
        self._mariadb()
        self._keystone()
        self.processes["memcached"] = _setsid(["memcached", "-u", "root", "-m", "16", "-s",
                                               str(self.sockets / "memcached.sock")], self._log("memcached"))
        self._relay("rabbit", ["TCP:127.0.0.1:5672"])
        self._relay("keystone", [f"TCP:127.0.0.1:{self.keystone_port}"])
        host = _setsid(["socat", f"TCP-LISTEN:{self.api_port},bind=127.0.0.1,fork,reuseaddr",
                        f"UNIX-CONNECT:{self.sockets / 'neutron-api.sock'}"], self._log("relay-neutron-api"))
        self.processes["relay-neutron-api"] = host
        if self.nova:
            self.processes["relay-nova-api"] = _setsid(
                ["socat", f"TCP-LISTEN:{self.nova_port},bind=127.0.0.1,fork,reuseaddr",
                 f"UNIX-CONNECT:{self.sockets / 'nova-api.sock'}"], self._log("relay-nova-api"))
        return self

    def start_identity(self) -> "LabCloud":
        """Only MariaDB and Keystone, on the host: for a test that needs a real Keystone and no node (``stop()``
        ends them)."""
        for directory in (self.mysqld, self.directory / "logs"):
            directory.mkdir(parents=True, exist_ok=True)
        self._mariadb()
        self._keystone()
        return self

    def _log(self, name: str) -> Path:
        return self.directory / "logs" / f"{name}.log"

    def _rabbit(self) -> None:
        # The password on stdin: Debian's rabbitmqctl wrapper runs the real one through 'su -c' and a shell,
        # which would expand a '$' or '`' given as an argument.
        permissions = ["set_permissions", "-p", self.rabbit_vhost, self.rabbit_user, ".*", ".*", ".*"]
        for command, stdin in ((["add_vhost", self.rabbit_vhost], None),
                               (["add_user", self.rabbit_user], self.rabbit_password + "\n"), (permissions, None)):
            subprocess.run(["rabbitmqctl", "-q", *command], check=True, capture_output=True, timeout=60, input=stdin,
                           text=True)

    def _mariadb(self) -> None:
        data = self.directory / "mysql-data"
        if not data.exists():
            install_mariadb(data)
        self.processes["mariadb"] = _setsid(
            ["mariadbd", "--no-defaults", f"--datadir={data}", f"--socket={self.mysqld / 'mysqld.sock'}",
             "--skip-networking", "--user=root", f"--log-error={self._log('mariadb')}",
             "--innodb-buffer-pool-size=64M", f"--pid-file={self.directory / 'mariadb.pid'}",
             f"--tmpdir={mariadb_tmpdir(data)}"], self._log("mariadbd"))
        wait_until(lambda: self.sql("SELECT 1").returncode == 0, 60, "MariaDB")

    def sql(self, statement: str) -> subprocess.CompletedProcess:
        """Run SQL as the lab's database administrator (root over the socket)."""
        return subprocess.run(["mariadb", "--no-defaults", "-S", str(self.mysqld / "mysqld.sock"), "-uroot",
                               "-N", "-e", statement], capture_output=True, text=True, timeout=60)

    def _keystone(self) -> None:
        etc = self.directory / "keystone"
        etc.mkdir(exist_ok=True)
        self.sql("CREATE DATABASE IF NOT EXISTS keystone CHARACTER SET utf8mb4")
        (etc / "keystone.conf").write_text(
            "[database]\nconnection = mysql+pymysql://root@localhost/keystone?unix_socket="
            f"{self.mysqld / 'mysqld.sock'}&charset=utf8mb4\n[token]\nprovider = fernet\n"
            f"[fernet_tokens]\nkey_repository = {etc / 'fernet-keys'}\n"
            f"[fernet_receipts]\nkey_repository = {etc / 'fernet-keys'}\n"
            f"[credential]\nkey_repository = {etc / 'credential-keys'}\n")
        manage = [str(self.keystone_venv / "bin/keystone-manage"), "--config-file", str(etc / "keystone.conf")]
        for step in (["db_sync"], ["fernet_setup", "--keystone-user", "root", "--keystone-group", "root"],
                     ["credential_setup", "--keystone-user", "root", "--keystone-group", "root"],
                     ["bootstrap", "--bootstrap-password", self.admin_password, "--bootstrap-region-id", "RegionOne",
                      *(f"--bootstrap-{kind}-url=http://controller:5000/v3/" for kind in ("admin", "internal",
                                                                                        "public"))]):
            done = subprocess.run([*manage, *step], capture_output=True, text=True, timeout=300)
            if done.returncode != 0:
                raise RuntimeError(f"keystone-manage {step[0]} failed: {done.stderr.strip()[-500:]}")
        # Keystone parses sys.argv with oslo.config: serve it from a tiny threaded WSGI server.
        server = etc / "serve.py"
        server.write_text(
            "import sys\nfrom socketserver import ThreadingMixIn\n"
            "from wsgiref.simple_server import WSGIServer, make_server\n"
            "port = int(sys.argv[1]); sys.argv = sys.argv[:1]\n"
            "from keystone.wsgi.api import application\n"
            "class Server(ThreadingMixIn, WSGIServer):\n    daemon_threads = True\n"
            "make_server('127.0.0.1', port, application, server_class=Server).serve_forever()\n")
        self.processes["keystone"] = _setsid([str(self.keystone_venv / "bin/python"), str(server),
                                              str(self.keystone_port)], self._log("keystone"),
                                             env={**os.environ, "OS_KEYSTONE_CONFIG_DIR": str(etc)})
        wait_until(lambda: _http_ok(self.keystone_url), 60, "Keystone")

    def _relay(self, name: str, target: list[str]) -> None:
        self.processes[f"relay-{name}"] = _setsid(
            ["socat", f"UNIX-LISTEN:{self.sockets / name}.sock,fork,unlink-early", *target], self._log(f"relay-{name}"))
        wait_until(lambda: (self.sockets / f"{name}.sock").exists(), 10, f"the {name} relay")

    def stop(self) -> None:
        for name in list(self.processes):
            _stop_group(self.processes.pop(name))
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", self.rabbit_vhost], capture_output=True, timeout=60)
        subprocess.run(["rabbitmqctl", "-q", "delete_user", self.rabbit_user], capture_output=True, timeout=60)

    # --- what the roles need to know about this cloud -------------------------------------------------------

    def variables(self) -> dict[str, str]:
        """Fleet variables that point the roles at this cloud's services."""
        return {"openstack_release": self.series, "rabbit_user": self.rabbit_user,
                "rabbit_vhost": self.rabbit_vhost, "datapath_type": "netdev",
                "openstack_packages": "false",  # the services come from the lab's virtualenvs
                **({"manage_nova": "true"} if self.nova else {})}

    def secrets(self) -> dict[str, str]:
        return {"RABBIT_PASS": self.rabbit_password, "ADMIN_PASS": self.admin_password}

    # --- the nodes ------------------------------------------------------------------------------------------

    def node_systemd(self, name: str, netns: str, directory: Path, root: Path, ovs: Path) -> "NodeSystemd":
        """A lab node's systemd with the cloud's units, started in the node's namespaces."""
        systemd = NodeSystemd(directory, netns=netns, boot=NODE_BOOT.format(
            name=name, ovs=ovs, mysqld=self.mysqld, view=directory / "view", root=root, units=directory / "units"))
        path = self.service_path
        for unit, (binary, files, kind) in NEUTRON_UNITS.items():
            if not (self.venv / "bin" / binary).exists():
                continue  # a unit this release does not ship (neutron-server from 2025.2 on, ...)
            # the lab's own tuning (faster state reports, faster 'dead') comes last, in a file no role manages
            config = " ".join(f"--config-file={f}" for f in ["/etc/neutron/neutron.conf", *files, LAB_CONF])
            command = f"{self.venv}/bin/{binary} {config}"
            if binary == "neutron-api":  # the pbr WSGI script: its own options, then the service's after '--'
                command = f"{self.venv}/bin/neutron-api --host 127.0.0.1 --port 9696 -- {config}"
            systemd.add_unit(f"{unit}.service", UNIT.format(name=unit, type=kind, path=path, command=command,
                                                             log=directory / f"{unit}.log"))
        (directory / "view").mkdir(parents=True, exist_ok=True)
        for part in ("etc.upper", "etc.work", "lib.upper", "lib.work"):
            (directory / "view" / part).mkdir(exist_ok=True)
        if self.nova:
            self._nova_units(systemd, name, path, directory)
        for unit in STAND_INS:
            if self.nova and unit.startswith("nova-"):
                continue
            systemd.add_unit(f"{unit}.service", STAND_IN_UNIT.format(name=unit, log=directory / f"{unit}.log"))
        relays = []
        for relay, port in NODE_PORTS.items():
            target = self.mysqld / "mysqld.sock" if relay == "mysql" else self.sockets / f"{relay}.sock"
            systemd.add_unit(f"lab-relay-{relay}.service", RELAY_UNIT.format(port=port, socket=target))
            relays.append(f"lab-relay-{relay}.service")
        systemd.add_unit("lab-expose-neutron-api.service",
                         EXPOSE_UNIT.format(port=9696, socket=self.sockets / "neutron-api.sock"))
        systemd.add_unit("lab-relays.target", "[Unit]\nDescription=lab relays\nWants=" + " ".join(relays) + "\n")
        systemd.lab_target_wants = ["lab-relays.target"]
        for part in ("etc.upper", "etc.work", "lib.upper", "lib.work"):
            (directory / "view" / part).mkdir(exist_ok=True)
        (directory / "view/etc.upper" / Path(LAB_CONF).name).write_text(LAB_TUNING)
        for sub in ("neutron", "nova", "openstack", "placement"):
            (root / "etc" / sub).mkdir(parents=True, exist_ok=True)
        # What the distribution package puts in /etc/neutron beside the files the guides edit.
        packaged = self.venv / "etc" / "neutron" / "api-paste.ini"
        if not (root / "etc/neutron/api-paste.ini").exists():
            shutil.copy(packaged, root / "etc/neutron/api-paste.ini")
        return systemd

    def _nova_units(self, systemd: "NodeSystemd", name: str, path: str, directory: Path) -> None:
        """Nova's units, its relays, and the node's ``/etc/nova-lab.conf``."""
        labnova.add_units(systemd, self.nova_venv, self.directory / "nova", path, directory)
        for service, port in labnova.CONTROLLER_PORTS.items():
            systemd.add_unit(f"lab-expose-{service}.service",
                             EXPOSE_UNIT.format(port=port, socket=self.sockets / f"{service}.sock"))
        for service, port in labnova.NODE_RELAYS.items():
            systemd.add_unit(f"lab-relay-{service}.service",
                             RELAY_UNIT.format(port=port, socket=self.sockets / f"{service}.sock"))
        password = escapes.rabbit_password(self.rabbit_password)
        transport = (f"rabbit://{escapes.url_userinfo(self.rabbit_user)}:{password}@controller:5672/"
                     f"{escapes.url_userinfo(self.rabbit_vhost)}")
        (directory / "view/etc.upper" / Path(labnova.LAB_NOVA_CONF).name).write_text(
            labnova.lab_conf(name, self.nova_secrets, transport))

    def start_nova_relays(self, systemd: "NodeSystemd", controller: bool) -> None:
        """With ``nova``: the controller offers its Nova, placement and Glance stub, other nodes reach them."""
        subprocess.run([*systemd.systemctl, "start", *labnova.relay_units(controller)], check=True,
                       capture_output=True, timeout=30)

    @property
    def service_path(self) -> str:
        """PATH in a node's view: the series' programs first (python3 with openstacksdk), then Nova's (nova-manage,
        placement-manage)."""
        venvs = f"{self.venv}/bin:{self.nova_venv}" if self.nova else self.venv
        return SERVICE_PATH.format(bin=self.bin, venv=venvs)

    def command_prefix(self, systemd: "NodeSystemd") -> str:
        """How a node's agent runs its command resources: in the node's view, with the series' programs."""
        path = self.service_path
        return f"nsenter -t {systemd.pid} -m -n -u -- env PATH={path}"

    def expose_neutron_api(self, systemd: "NodeSystemd") -> None:
        """Make the controller node's API reachable from the host at ``neutron_url``."""
        subprocess.run([*systemd.systemctl, "start", "lab-expose-neutron-api.service"], check=True,
                       capture_output=True, timeout=30)

    def clouds_yaml(self, path: Path) -> Path:
        """An openstack client configuration for the host (cloud 'lab'), network endpoint overridden."""
        path.write_text(json.dumps({"clouds": {"lab": {
            "auth": {"auth_url": self.keystone_url, "username": "admin", "password": self.admin_password,
                     "project_name": "admin", "user_domain_name": "Default", "project_domain_name": "Default"},
            "region_name": "RegionOne", "network_endpoint_override": self.neutron_url + "/v2.0/",
            **({"compute_endpoint_override": self.nova_url} if self.nova else {}),
            "identity_endpoint_override": self.keystone_url + "/"}}}))
        path.chmod(0o600)
        return path


class NodeSystemd(LabSystemd):
    """A lab systemd started inside a node's network namespace, with the node's mount view (``boot``)."""

    def __init__(self, directory: Path, netns: str, boot: str):
        super().__init__(directory)
        self.netns = netns
        self.boot = boot
        self.lab_target_wants: list[str] = []

    def boot_script(self) -> str:
        return self.boot

    def launcher(self) -> list[str]:
        return ["ip", "netns", "exec", self.netns]

    def target(self) -> str:
        return "[Unit]\nDescription=nodeagent-lab\nWants=" + " ".join(self.lab_target_wants) + "\n"


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return answer.status < 500
    except (urllib.error.URLError, OSError):
        return False
