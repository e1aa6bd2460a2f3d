"""Nova with its fake virt driver on a lab cloud: the service that reads the guides' nova.conf edits.

Without Nova nothing ever read what the roles write for it (nova.conf's ``[neutron]`` credentials and metadata
proxy secret, neutron.conf's ``[nova]`` notifier). With ``LabCloud(nova=True)`` the controller node runs
placement-api, nova-api (the compute API on 8774 and the metadata API on 8775, in one process as the guide's
``enabled_apis = osapi_compute,metadata``), nova-conductor and nova-scheduler, and every compute node runs
nova-compute with ``compute_driver = fake.FakeDriverWithoutFakeNodes``: nova's fake driver with a node UUID
kept in ``state_path`` (the plain ``fake.FakeDriver`` draws one per process and cannot restart). Its servers
plug nothing: a test plugs the server's port as os-vif would (``trafficprobe.StandIn``).

The units run the programs of their own venv (``.venvs/nova-2025.2``, ``scripts/setup-openstack.sh``). Each
reads the node's ``/etc/nova/nova.conf`` (the roles' file) first, then ``/etc/nova-lab.conf``: what the Nova
guide configures that nodeagent does not (keystone_authtoken, [placement], [service_user]; the compute nodes'
transport_url and driver). The roles (``manage_nova``) make the databases, schemas, cells and Keystone entries.
Glance is a stub serving one image and the real image schema (all nova-api checks at boot). The API processes
run on native threads (``OS_NOVA_DISABLE_EVENTLET_PATCHING``: eventlet's patching hangs a threaded wsgiref
server). Relays (socat, unix sockets) give the other nodes the controller's 8778, 8775 and 9696 on their
127.0.0.1; the host reaches the compute API at ``LabCloud.nova_url``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from nodeagent.fleet import escapes
from nodeagent.testing.lab import LabSystemd

NOVA_VENV = "nova-2025.2"
LAB_NOVA_CONF = "/etc/nova-lab.conf"
GLANCE_PORT = 9292
IMAGE_ID = "6d0a4f1e-0000-4000-8000-000000000001"  # the stub's one image
# the controller's services that other nodes (and the host) reach: name -> port
CONTROLLER_PORTS = {"nova-api": 8774, "nova-metadata": 8775, "placement": 8778}
# what a non-controller node reaches on its own 127.0.0.1 (nova-compute: placement and Neutron; the metadata
# agent: nova-metadata), through the host's socket of that name
NODE_RELAYS = {"placement": 8778, "nova-metadata": 8775, "neutron-api": 9696}
COMPUTE_DRIVER = "fake.FakeDriverWithoutFakeNodes"

UNIT = """[Unit]
Description=OpenStack {name} (lab unit: nova {venv})
After=lab-relays.target
[Service]
Type=simple
Environment=PATH={path}
{environment}ExecStart={command}
StandardOutput=append:{log}
StandardError=inherit
Restart=on-failure
RestartSec=3
TimeoutStartSec=90
TimeoutStopSec=5
KillMode=mixed
[Install]
WantedBy=multi-user.target
"""
# Serves WSGI applications (PORT=MODULE or PORT=MODULE:FACTORY) from one process, a thread each.
SERVE = """import importlib, sys, threading
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
pairs = [argument.split("=", 1) for argument in sys.argv[1:]]
sys.argv = sys.argv[:1]  # nova and placement parse sys.argv with oslo.config
class Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
class Handler(WSGIRequestHandler):
    def log_message(self, format, *args):
        sys.stderr.write("%s %s\\n" % (self.address_string(), format % args))
servers = []
for port, target in pairs:
    module, _, factory = target.partition(":")
    loaded = importlib.import_module(module)
    application = getattr(loaded, factory)() if factory else loaded.application
    servers.append(make_server("127.0.0.1", int(port), application, server_class=Server, handler_class=Handler))
for server in servers[1:]:
    threading.Thread(target=server.serve_forever, daemon=True).start()
servers[0].serve_forever()
"""
GLANCE_STUB = """import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from glanceclient.v2.image_schema import _BASE_SCHEMA  # the schema Glance serves: nova-api reads it at boot
ID = "%(image)s"
IMAGE = {"id": ID, "name": "lab-fake-image", "status": "active", "disk_format": "raw", "container_format": "bare",
         "min_disk": 0, "min_ram": 0, "size": 1048576, "visibility": "public", "protected": False, "owner": "admin",
         "os_hidden": False, "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z", "tags": [],
         "file": f"/v2/images/{ID}/file", "schema": "/v2/schemas/image", "self": f"/v2/images/{ID}"}
class Handler(BaseHTTPRequestHandler):
    def reply(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def do_GET(self):
        path = self.path.split("?")[0].rstrip("/")
        if path in ("", "/versions"):
            self.reply(200, {"versions": [{"id": "v2.9", "status": "CURRENT",
                                           "links": [{"rel": "self", "href": "http://127.0.0.1:%(port)d/v2/"}]}]})
        elif path == "/v2/images":
            self.reply(200, {"images": [IMAGE]})
        elif path == f"/v2/images/{ID}":
            self.reply(200, IMAGE)
        elif path.startswith("/v2/schemas/"):
            self.reply(200, _BASE_SCHEMA)
        else:
            self.reply(404, {"message": "not found"})
ThreadingHTTPServer(("127.0.0.1", %(port)d), Handler).serve_forever()
""" % {"image": IMAGE_ID, "port": GLANCE_PORT}
GLANCE_UNIT = """[Unit]
Description=lab stub of Glance's image API (one image, the real schema)
[Service]
ExecStart={python} {script}
StandardOutput=append:{log}
StandardError=inherit
"""


def venv(venvs: Path) -> Path:
    """The Nova venv, or a clear error saying how to make it."""
    path = venvs / NOVA_VENV
    if not (path / ".installed").exists():
        raise RuntimeError(f"no Nova at {path}: run scripts/setup-openstack.sh")
    return path


def add_units(systemd: LabSystemd, nova: Path, files: Path, path: str, directory: Path) -> None:
    """Every node gets every unit: the roles start the services of its roles, the lab the relays
    (``relay_units``)."""
    files.mkdir(parents=True, exist_ok=True)
    (files / "serve.py").write_text(SERVE)
    (files / "glance-stub.py").write_text(GLANCE_STUB)
    python = nova / "bin" / "python"
    nova_conf = f"--config-file=/etc/nova/nova.conf --config-file={LAB_NOVA_CONF}"
    api_environment = {"OS_NOVA_DISABLE_EVENTLET_PATCHING": "true", "OS_NOVA_CONFIG_DIR": f"{nova}/etc/nova",
                       "OS_NOVA_CONFIG_FILES": f"api-paste.ini;/etc/nova/nova.conf;{LAB_NOVA_CONF}"}
    services = {
        "placement-api": (f"{python} {files / 'serve.py'} 8778=placement.wsgi:init_application",
                          {"OS_PLACEMENT_CONFIG_DIR": "/etc/placement"}),
        "nova-api": (f"{python} {files / 'serve.py'} 8774=nova.wsgi.osapi_compute 8775=nova.wsgi.metadata",
                     api_environment),
        "nova-conductor": (f"{nova}/bin/nova-conductor {nova_conf}", {}),
        "nova-scheduler": (f"{nova}/bin/nova-scheduler {nova_conf}", {}),
        "nova-compute": (f"{nova}/bin/nova-compute {nova_conf}", {}),
    }
    for name, (command, environment) in services.items():
        lines = "".join(f'Environment="{key}={value}"\n' for key, value in environment.items())
        systemd.add_unit(f"{name}.service", UNIT.format(name=name, venv=nova.name, path=path, environment=lines,
                                                        command=command, log=directory / f"{name}.log"))
    systemd.add_unit("lab-glance-stub.service", GLANCE_UNIT.format(python=python, script=files / "glance-stub.py",
                                                                  log=directory / "glance-stub.log"))


def relay_units(controller: bool) -> list[str]:
    """The lab's relays a node starts: the controller offers its services, the others reach them."""
    if controller:
        return ["lab-glance-stub.service", *(f"lab-expose-{name}.service" for name in CONTROLLER_PORTS)]
    return [f"lab-relay-{name}.service" for name in NODE_RELAYS]


def lab_conf(host: str, secrets: dict[str, str], transport_url: str) -> str:
    """``/etc/nova-lab.conf`` of a node: what the Nova guide sets that the roles do not (read after nova.conf)."""
    def auth(user: str, password: str) -> str:
        return ("auth_url = http://controller:5000/v3\nauth_type = password\nproject_domain_name = Default\n"
                f"user_domain_name = Default\nproject_name = service\nusername = {user}\n"
                f"password = {escapes.ini(password)}\n")
    nova = auth("nova", secrets["NOVA_PASS"])
    # periodic_fuzzy_delay 0: a (re)started service reports itself within seconds, not up to a minute later (lab)
    text = (f"[DEFAULT]\nhost = {host}\nstate_path = /var/lib/nova\nperiodic_fuzzy_delay = 0\n"
            f"[oslo_concurrency]\nlock_path = /var/lib/nova/tmp\n"
            f"[placement]\nregion_name = RegionOne\n{auth('placement', secrets['PLACEMENT_PASS'])}"
            f"[service_user]\nsend_service_user_token = true\n{nova}"
            f"[glance]\napi_servers = http://127.0.0.1:{GLANCE_PORT}\n")
    if host == "controller":
        return text + ("[api]\nauth_strategy = keystone\n"
                       "[keystone_authtoken]\nwww_authenticate_uri = http://controller:5000/\n"
                       f"memcached_servers = controller:11211\n{nova}"
                       "[scheduler]\ndiscover_hosts_in_cells_interval = 10\nworkers = 1\n[conductor]\nworkers = 1\n")
    # the roles write no transport_url into a compute node's nova.conf (the Nova guide does)
    return text.replace("[DEFAULT]\n", f"[DEFAULT]\ntransport_url = {escapes.ini(transport_url)}\n"
                                       f"compute_driver = {COMPUTE_DRIVER}\n", 1)


def flavor(connection: Any, name: str = "lab-tiny") -> Any:
    """The smallest flavor the fake driver needs (64 MB, 1 vCPU, 1 GB), made once."""
    return connection.compute.find_flavor(name) or connection.compute.create_flavor(name=name, ram=64, vcpus=1,
                                                                                   disk=1)


def boot(connection: Any, network_id: str, name: str, timeout: float = 180) -> tuple[Any, float]:
    """A server of the stub's image on ``network_id``, once ACTIVE (or a clear error), and the seconds it took."""
    started = time.monotonic()
    server = connection.compute.create_server(name=name, image_id=IMAGE_ID, flavor_id=flavor(connection).id,
                                              networks=[{"uuid": network_id}])
    server = connection.compute.wait_for_server(server, status="ACTIVE", failures=["ERROR"], interval=0.5,
                                                wait=timeout)
    return server, time.monotonic() - started
