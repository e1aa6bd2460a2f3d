"""Packets, not agent lists: stand-in instances prove that the network the roles built carries traffic.

"Every agent alive" and "port ACTIVE" were both true while no packet crossed the tunnel. So, as Neutron's
fullstack tests (and ``neutron-debug probe-create`` once) do, each probed node gets a throw-away port bound
to it, plugged into its br-int as os-vif plugs a VM (a veth with ``iface-id``, ``attached-mac``,
``iface-status``), with the VM's end in a namespace of its own. The stand-in asks DHCP for its address (busybox
udhcpc: the address Neutron gave the port, the MTU option the guide sets), then pings the DHCP port, its router
and the stand-in of every other probed node. Where the cloud has Nova (a compute service in the catalog) and the
network a router, it asks 169.254.169.254 as an instance does: the router's metadata proxy, the metadata agent
and nova-metadata, which checks the request's signature made with the shared secret (the stand-in is no server,
so Nova's "404 Not Found" is its answer). When a check fails the probe names the first broken hop on the way
(the br-int tag, br-tun's flows, OVS's tunnel route, the DHCP or router namespace, the metadata agent or
secret) and where to look.

A node is probed only when the operator says how to reach it (opt-in): the node variable ``probe_access`` is a
command prefix that runs a command in the node's view (``ssh root@compute1``; in the lab, ``nsenter ...``).
Everything made is named ``nodeagent-probe-*`` / ``naprobe*``: removed at the end, also when interrupted, and
a later probe sweeps what an earlier killed one left (so one probe runs at a time per cloud).

The stand-ins' ports are in a security group of the probe's own that lets ICMP in (what the guides' "launch an
instance" step adds to the default group): where the L2 agent enforces security groups on the port (the Linux
bridge agent's iptables driver does), the default group would drop the upstream router's ping of a floating IP.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
import shlex
import subprocess
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any, Callable

from nodeagent.fleet.inventory import Inventory

PREFIX = "nodeagent-probe"
NETNS_PREFIX = "naprobe"
PROBE_OWNER = "compute:nodeagent-probe"
METADATA = "169.254.169.254"
DHCP_WINDOW = 40  # seconds of DHCP rounds (about 20 s each) before a stand-in's DHCP check fails
UDHCPC_SCRIPT = """#!/bin/sh
# busybox udhcpc hands the lease over in the environment: say it, and configure the stand-in's NIC with it.
case "$1" in bound|renew)
  echo "lease ip=$ip mask=$mask mtu=$mtu router=$router"
  ip addr add "$ip/$mask" dev "$interface"
  [ -n "$mtu" ] && ip link set "$interface" mtu "$mtu"
  [ -n "$router" ] && ip route replace default via "${router%% *}" dev "$interface"
esac
exit 0
"""


@dataclass(frozen=True)
class TrafficCheck:
    """One check of one stand-in: what, towards what, passed or not, and the broken hop with a hint."""

    host: str
    check: str
    target: str
    ok: bool
    hop: str = ""
    hint: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class NodeShell:
    """Runs commands in a node's view through its ``probe_access`` prefix."""

    def __init__(self, host: str, access: str, mechanism: str = "openvswitch", timeout: float = 60):
        self.host = host
        self.prefix = shlex.split(access)
        self.mechanism = mechanism  # the node's L2 agent: how a VM's port is plugged there
        self.timeout = timeout

    def run(self, *command: str, stdin: str | None = None, timeout: float | None = None) -> subprocess.CompletedProcess:
        try:
            return subprocess.run([*self.prefix, *command], capture_output=True, text=True, input=stdin,
                                  timeout=timeout or self.timeout)
        except subprocess.TimeoutExpired as exc:
            return subprocess.CompletedProcess(exc.cmd, 124, "", f"timed out after {exc.timeout} s")

    def must(self, *command: str, stdin: str | None = None) -> str:
        done = self.run(*command, stdin=stdin)
        if done.returncode != 0:
            raise ProbeError(f"{self.host}: {' '.join(command[:4])} failed: {done.stderr.strip()[-300:]}")
        return done.stdout


class ProbeError(Exception):
    """The probe could not be set up (not a failed check: that is a row)."""


@dataclass
class StandIn:
    """A throw-away instance on one node: its Neutron port, its tap on br-int, its namespace."""

    shell: NodeShell
    port: Any
    tag: str
    address: str = ""
    mtu: int | None = None

    @property
    def host(self) -> str:
        return self.shell.host

    @property
    def netns(self) -> str:
        return f"{NETNS_PREFIX}{self.tag}"

    @property
    def tap(self) -> str:
        return f"tap{self.port.id[:11]}"

    def inside(self, *command: str, timeout: float | None = None) -> subprocess.CompletedProcess:
        return self.shell.run("ip", "netns", "exec", self.netns, *command, timeout=timeout)

    @property
    def bridge(self) -> str:
        """The Linux bridge agent's bridge of the port's network."""
        return f"brq{self.port.network_id[:11]}"

    def plug(self) -> None:
        """As os-vif plugs a VM's port: into br-int (the OVS agent then tags it and programs its flows), or with
        the Linux bridge agent into the network's brq bridge, which the agent makes once it sees the tap."""
        mac = self.port.mac_address
        shell = self.shell
        shell.must("ip", "netns", "add", self.netns)
        shell.must("ip", "link", "add", self.tap, "type", "veth", "peer", "name", "eth0", "netns", self.netns)
        shell.must("ip", "link", "set", self.tap, "up")
        if shell.mechanism == "linuxbridge":
            # not ready in time: the DHCP check fails and names the missing bridge as the broken hop
            _wait(lambda: shell.run("ip", "link", "set", self.tap, "master", self.bridge).returncode == 0, 60)
        else:
            self._plug_ovs(mac)
        for command in (("ip", "link", "set", "lo", "up"), ("ip", "link", "set", "eth0", "address", mac, "up")):
            done = self.inside(*command)
            if done.returncode != 0:
                raise ProbeError(f"{self.host}: {' '.join(command)} in the stand-in failed: {done.stderr.strip()}")
        # The userspace datapath reads the veth through AF_PACKET: TCP left with partial checksums otherwise.
        self.inside("ethtool", "-K", "eth0", "tx", "off")

    def _plug_ovs(self, mac: str) -> None:
        self.shell.must("ovs-vsctl", "--timeout=10", "--", "--may-exist", "add-port", "br-int", self.tap, "--", "set",
                   "Interface", self.tap, f"external_ids:iface-id={self.port.id}",
                   f"external_ids:attached-mac={mac}", "external_ids:iface-status=active",
                   f"external_ids:vm-uuid={self.port.device_id}", f"external_ids:{PREFIX}={self.tag}")

    def dhcp(self, attempts: int = 8) -> str:
        """Ask for a lease; returns udhcpc's output ('' when no lease came)."""
        script = f"/run/{self.netns}.udhcpc"
        self.shell.must("sh", "-c", f"cat > {script} && chmod 0755 {script}", stdin=UDHCPC_SCRIPT)
        done = self.inside("busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-t", str(attempts), "-T", "2",
                           "-O", "mtu", "-s", script, timeout=attempts * 3 + 20)
        for line in done.stdout.splitlines():
            if line.startswith("lease "):
                lease = dict(item.split("=", 1) for item in line.split()[1:] if "=" in item)
                self.address = lease.get("ip", "")
                self.mtu = int(lease["mtu"]) if lease.get("mtu", "").isdigit() else None
                return line
        return ""

    def http_status(self, url: str) -> int | None:
        """The HTTP status of a GET from the stand-in (busybox wget), None without an answer."""
        # no '-T': busybox 1.35's wget (Debian 12) crashes with it; the command's own timeout bounds the wait
        done = self.inside("busybox", "wget", "-S", "-O", "/dev/null", url, timeout=20)
        found = re.findall(r"HTTP/1\.\d (\d{3})", done.stdout + done.stderr)
        return int(found[-1]) if found else None

    def ping(self, target: str, count: int = 3) -> bool:
        return self.inside("ping", "-c", str(count), "-W", "2", "-i", "0.3", target, timeout=count * 3 + 10
                           ).returncode == 0

    def remove(self) -> None:
        """Everything of it on the node (the Neutron port is the probe's to delete)."""
        if self.shell.mechanism != "linuxbridge":
            self.shell.run("ovs-vsctl", "--timeout=10", "--if-exists", "del-port", "br-int", self.tap)
        self.shell.run("ip", "netns", "del", self.netns)  # and with it the veth pair
        self.shell.run("ip", "link", "del", self.tap)
        self.shell.run("rm", "-f", f"/run/{self.netns}.udhcpc")


def sweep_node(shell: NodeShell) -> None:
    """What an earlier probe that was killed left on a node: its br-int ports and namespaces."""
    if shell.mechanism != "linuxbridge":
        listed = shell.run("ovs-vsctl", "--timeout=10", "--columns=name", "--bare", "find", "Interface",
                           f'external_ids:{PREFIX}!=""')
        for name in listed.stdout.split():
            shell.run("ovs-vsctl", "--timeout=10", "--if-exists", "del-port", "br-int", name)
    for line in shell.run("ip", "netns", "list").stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        if name.startswith(NETNS_PREFIX):
            shell.run("ip", "netns", "del", name)
            shell.run("rm", "-f", f"/run/{name}.udhcpc")


class TrafficProbe:
    """Stand-ins on the probed nodes of one network, their checks, and everything removed afterwards.

    ``network``: the name or id of a self-service network to probe; None makes a throw-away network, subnet
    (``cidr``) and router of its own. ``shells``: the probed nodes (host → NodeShell); ``all_shells`` also the
    nodes only looked at for a diagnosis (the DHCP and router namespaces' node). ``mtu``: the MTU the guide's
    DHCP option gives instances (None: not checked). ``external``: the provider network the throw-away router's
    gateway goes to (None: the one external network, if there is exactly one); with a gateway, every stand-in
    pings the router's gateway and the provider subnet's gateway (the upstream router: SNAT); with ``outside``
    (a NodeShell on a host of the provider network) each stand-in gets a floating IP that host must reach.
    """

    def __init__(self, neutron: Any, shells: dict[str, NodeShell], all_shells: dict[str, NodeShell] | None = None,
                 network: str | None = None, cidr: str = "198.19.254.0/24", mtu: int | None = None,
                 external: str | None = None, outside: NodeShell | None = None,
                 progress: Callable[[str], None] = lambda _: None, metadata: bool | None = None):
        self.api = neutron.connection.network
        # metadata: whether to ask 169.254.169.254 (None: where the catalog has Nova)
        self.metadata = _has_compute(neutron.connection) if metadata is None else metadata
        self.shells = shells
        self.all_shells = {**shells, **(all_shells or {})}
        self.network_name = network
        self.cidr = cidr
        self.mtu = mtu
        self.external_name = external
        self.outside = outside
        self.progress = progress
        self.tag = secrets.token_hex(3)
        self.made: list[tuple[str, Any]] = []  # Neutron objects this probe made, to delete in reverse order
        self.stand_ins: list[StandIn] = []

    # --- the run ---------------------------------------------------------------------------------------

    def run(self) -> list[TrafficCheck]:
        try:
            self.sweep()
            network, subnet, router = self._network()
            group = self._security_group()
            for host, shell in sorted(self.shells.items()):
                port = self.api.create_port(network_id=network.id, name=f"{PREFIX}-{host}-{self.tag}",
                                            device_owner=PROBE_OWNER, device_id=str(uuid.uuid4()),
                                            binding_host_id=host, security_group_ids=[group.id])
                self.made.append(("port", port))
                stand_in = StandIn(shell, port, f"{self.tag}{len(self.stand_ins)}")
                self.stand_ins.append(stand_in)
                stand_in.plug()
            self.progress(f"{len(self.stand_ins)} stand-in instance(s) plugged on {', '.join(sorted(self.shells))}")
            return self._checks(network, subnet, router)
        finally:
            self.clean()

    def _checks(self, network: Any, subnet: Any, router: Any) -> list[TrafficCheck]:
        checks: list[TrafficCheck] = []
        for stand_in in self.stand_ins:
            wanted = stand_in.port.fixed_ips[0]["ip_address"]
            # the OVS agent binds the port within seconds; a new network's dnsmasq starts in about as long
            _wait(lambda: self.api.get_port(stand_in.port.id).status == "ACTIVE", 60)
            _wait(lambda: any(p.status == "ACTIVE" for p in self.api.ports(network_id=network.id,
                                                                            device_owner="network:dhcp")), 60)
            # asked again while the window lasts: on a loaded node the DHCP agent may give dnsmasq the new port's
            # host entry, or the L2 agent its overlay forwarding entries, after the first round of requests
            lease = _wait(stand_in.dhcp, DHCP_WINDOW, step=1)
            if not lease:
                dhcp_ports = list(self.api.ports(network_id=network.id, device_owner="network:dhcp"))
                hop, hint = self.diagnose(stand_in, network, dhcp_ports, "dhcp")
                checks.append(TrafficCheck(stand_in.host, "dhcp", wanted, False, hop, hint))
                continue
            problems = []
            if stand_in.address != wanted:
                problems.append(f"got {stand_in.address}, Neutron gave the port {wanted}")
            if self.mtu is not None and stand_in.mtu != self.mtu:
                problems.append(f"MTU option {stand_in.mtu}, the guide's is {self.mtu} (dnsmasq-neutron.conf)")
            shown = f"{stand_in.address} mtu {stand_in.mtu}"
            checks.append(TrafficCheck(stand_in.host, "dhcp", shown, not problems, "dhcp" if problems else "",
                                       "; ".join(problems)))
        dhcp_ports = list(self.api.ports(network_id=network.id, device_owner="network:dhcp"))
        dhcp_ip = dhcp_ports[0].fixed_ips[0]["ip_address"] if dhcp_ports else ""
        for stand_in in self.stand_ins:
            if not stand_in.address:
                continue
            targets = [("ping dhcp port", dhcp_ip, "dhcp")] if dhcp_ip else []
            if router is not None and subnet.gateway_ip:
                targets.append(("ping router", subnet.gateway_ip, "router"))
            targets += [(f"ping {other.host}'s instance", other.address, "peer") for other in self.stand_ins
                        if other is not stand_in and other.address]
            targets += self._outside_targets(router)
            for check, target, kind in targets:
                # a new router's namespace and a peer's flows may need a few seconds more than the lease did
                if _wait(lambda: stand_in.ping(target), 60, step=0):
                    checks.append(TrafficCheck(stand_in.host, check, target, True))
                else:
                    hop, hint = self.diagnose(stand_in, network, dhcp_ports, kind, router)
                    checks.append(TrafficCheck(stand_in.host, check, target, False, hop, hint))
        if self.metadata and router is not None:
            checks += [self._metadata(stand_in, router) for stand_in in self.stand_ins if stand_in.address]
        if self.outside is not None and router is not None and router.external_gateway_info:
            checks += self._floating_ips(network, dhcp_ports, router)
        return checks

    def _metadata(self, stand_in: StandIn, router: Any) -> TrafficCheck:
        """The metadata request of an instance: Nova's answer (200, or 404 for a stand-in that is no server)
        means the proxy, the agent and the shared secret all worked."""
        # a new router's proxy starts with its namespace, and a metadata agent just restarted answers late on a
        # loaded machine: asked again for a while when it has no answer yet
        deadline = time.monotonic() + 60
        while True:
            status = stand_in.http_status(f"http://{METADATA}/openstack")
            if status in (200, 403, 404) or time.monotonic() > deadline:
                break
            time.sleep(2)
        target = f"{METADATA} (HTTP {status or 'no answer'})"
        hop, hint = metadata_hop(status, router.id, self._remote_host("router", [], router))
        return TrafficCheck(stand_in.host, "metadata", target, not hop, hop, hint)

    def _outside_targets(self, router: Any) -> list[tuple[str, str, str]]:
        """The router's gateway and, behind it, the provider subnet's gateway (the upstream router: SNAT)."""
        gateway = (router.external_gateway_info or {}) if router is not None else {}
        targets = [("ping router gateway", fixed["ip_address"], "outside")
                   for fixed in gateway.get("external_fixed_ips", [])[:1]]
        for fixed in gateway.get("external_fixed_ips", [])[:1]:
            upstream = self.api.get_subnet(fixed["subnet_id"]).gateway_ip
            if upstream:
                targets.append(("ping outside (SNAT)", upstream, "outside"))
        return targets

    def _floating_ips(self, network: Any, dhcp_ports: list[Any], router: Any) -> list[TrafficCheck]:
        checks = []
        external_id = router.external_gateway_info["network_id"]
        for stand_in in self.stand_ins:
            if not stand_in.address:
                continue
            floating = self.api.create_ip(floating_network_id=external_id, port_id=stand_in.port.id,
                                          description=f"{PREFIX}-{self.tag}")
            self.made.append(("floating", floating))
            address = floating.floating_ip_address
            check = f"floating ip from {self.outside.host}"
            ok = _wait(lambda: self.outside.run("ping", "-c", "2", "-W", "2", "-i", "0.3", address,
                                                timeout=20).returncode == 0, 60, step=0)
            hop, hint = ("", "") if ok else self.diagnose(stand_in, network, dhcp_ports, "outside", router)
            checks.append(TrafficCheck(stand_in.host, check, f"{address} -> {stand_in.address}", bool(ok), hop, hint))
        return checks

    # --- where it broke --------------------------------------------------------------------------------

    def diagnose(self, stand_in: StandIn, network: Any, dhcp_ports: list[Any], kind: str,
                 router: Any = None) -> tuple[str, str]:
        """The first broken hop from the stand-in towards ``kind`` (dhcp, router, peer), with where to look."""
        shell, host = stand_in.shell, stand_in.host
        if shell.mechanism == "linuxbridge":
            return (self._diagnose_linuxbridge(stand_in, network, dhcp_ports, kind, router)
                    or self._far_end(stand_in, network, dhcp_ports, kind, router))
        tag = shell.run("ovs-vsctl", "--timeout=10", "get", "Port", stand_in.tap, "tag").stdout.strip()
        if not tag.isdigit():
            port = self.api.get_port(stand_in.port.id)
            return "br-int tag", (f"the OVS agent on {host} gave port {port.id} no local VLAN (port {port.status}, "
                                  f"binding {port.binding_vif_type}): neutron-openvswitch-agent's log on {host}")
        segment = getattr(network, "provider_segmentation_id", None)
        remote = self._remote_host(kind, dhcp_ports, router)
        if network.provider_network_type in ("gre", "vxlan", "geneve") and remote not in (None, host):
            flows = shell.run("ovs-ofctl", "-O", "OpenFlow13", "dump-flows", "br-tun").stdout
            sends = [line for line in flows.splitlines() if f"dl_vlan={tag}" in line
                     and (f"0x{segment:x}->tun_id" in line or f"set_tunnel:0x{segment:x}" in line)]
            if segment is not None and not sends:
                return "br-tun flows", (f"no flow on {host}'s br-tun sends local VLAN {tag} into tunnel id "
                                        f"0x{segment:x}: 'ovs-ofctl -O OpenFlow13 dump-flows br-tun' on {host}; "
                                        f"restarting neutron-openvswitch-agent reprograms them")
            trace = self._trace(stand_in)
            via = re.search(r"tunneling to (\S+) via (\S+)", trace)
            # The userspace datapath sends a tunnel packet out of the OVS bridge that holds the route to the far
            # end; a route through a plain interface fails, or ends in that interface's bridge, dropped.
            if "native tunnel routing failed" in trace or (via and shell.run(
                    "ovs-vsctl", "--timeout=10", "br-exists", via.group(2)).returncode != 0):
                where = f"leaves via {via.group(2)}, which is not an OVS bridge" if via else "has no route"
                return "tunnel route", (f"the tunnel from {host} {where}: on the userspace datapath local_ip must "
                                        "sit on an OVS bridge (overlay_bridge); 'ovs-appctl ovs/route/show' and "
                                        f"'ovs-appctl ofproto/trace' on {host}")
        return self._far_end(stand_in, network, dhcp_ports, kind, router)

    def _diagnose_linuxbridge(self, stand_in: StandIn, network: Any, dhcp_ports: list[Any], kind: str,
                              router: Any) -> tuple[str, str] | None:
        shell, host = stand_in.shell, stand_in.host
        master = shell.run("cat", f"/sys/class/net/{stand_in.tap}/master/uevent").stdout
        if f"INTERFACE={stand_in.bridge}" not in master:
            return "brq bridge", (f"the Linux bridge agent on {host} made no bridge {stand_in.bridge} for port "
                                  f"{stand_in.port.id}: neutron-linuxbridge-agent's log on {host}")
        segment = getattr(network, "provider_segmentation_id", None)
        remote = self._remote_host(kind, dhcp_ports, router)
        if network.provider_network_type == "vxlan" and remote not in (None, host) and segment is not None:
            ports = shell.run("ls", f"/sys/class/net/{stand_in.bridge}/brif").stdout.split()
            if f"vxlan-{segment}" not in ports:
                return "vxlan interface", (f"{stand_in.bridge} on {host} has no vxlan-{segment} (ports: "
                                           f"{', '.join(ports)}): [vxlan] local_ip and l2_population of "
                                           f"linuxbridge_agent.ini, neutron-linuxbridge-agent's log on {host}")
        return None

    def _far_end(self, stand_in: StandIn, network: Any, dhcp_ports: list[Any], kind: str,
                 router: Any) -> tuple[str, str]:
        """The hops beyond the stand-in's node: the DHCP or router namespace, br-ex."""
        host = stand_in.host
        remote = self._remote_host(kind, dhcp_ports, router)
        if kind == "dhcp":
            return "dhcp namespace", self._namespace_hint(remote, f"qdhcp-{network.id}", "neutron-dhcp-agent")
        if kind in ("router", "outside") and router is not None:
            namespace = f"qrouter-{router.id}"
            shell_there = self.all_shells.get(remote or "")
            if kind == "outside" and shell_there is not None and namespace in shell_there.run(
                    "ip", "netns", "list").stdout:
                if shell_there.mechanism == "linuxbridge":  # the provider network's brq, with the provider NIC
                    bridge = f"brq{(router.external_gateway_info or {}).get('network_id', '')[:11]}"
                    ports = shell_there.run("ls", f"/sys/class/net/{bridge}/brif").stdout.split()
                    hop, what = "provider bridge", "physical_interface_mappings' provider interface"
                else:
                    bridge = "br-ex"
                    ports = shell_there.run("ovs-vsctl", "--timeout=10", "list-ports", bridge).stdout.split()
                    hop, what = "br-ex", "external interface, GRO off,"
                return hop, (
                    f"{namespace} on {remote} has its gateway; {bridge} there has ports {', '.join(ports) or 'none'}: "
                    f"the {what} must be one of them, the upstream router must answer ARP on the provider network, "
                    "and the instance's security group must let the reply in")
            return "router namespace", self._namespace_hint(remote, namespace, "neutron-l3-agent")
        tool = ("'ovs-appctl ofproto/trace br-int in_port=" + stand_in.tap + ",...'"
                if stand_in.shell.mechanism != "linuxbridge" else f"'tcpdump -i {stand_in.tap}'")
        return "unknown", f"every hop checked on {host} looks right: {tool} on {host}, then the far end's"

    def _remote_host(self, kind: str, dhcp_ports: list[Any], router: Any) -> str | None:
        if kind == "dhcp":
            return dhcp_ports[0].binding_host_id if dhcp_ports else None
        if kind in ("router", "outside") and router is not None:
            ports = list(self.api.ports(device_id=router.id, device_owner="network:router_interface"))
            return ports[0].binding_host_id if ports else None
        return None

    def _namespace_hint(self, host: str | None, namespace: str, agent: str) -> str:
        shell = self.all_shells.get(host or "")
        if shell is None:
            return f"{namespace} on {host or 'no host (Neutron bound no port)'}: {agent}'s log there"
        if namespace not in shell.run("ip", "netns", "list").stdout:
            return f"{namespace} is missing on {host}: {agent}'s log on {host}"
        return f"{namespace} exists on {host}, no answer from it: 'ip netns exec {namespace} ip addr' on {host}"

    @staticmethod
    def _trace(stand_in: StandIn) -> str:
        flow = (f"in_port={stand_in.tap},udp,dl_src={stand_in.port.mac_address},dl_dst=ff:ff:ff:ff:ff:ff,"
                "nw_src=0.0.0.0,nw_dst=255.255.255.255,udp_src=68,udp_dst=67")
        script = ('t=$(ls /run/openvswitch/ovs-vswitchd*.ctl 2>/dev/null | head -n 1); '
                  'ovs-appctl ${t:+-t "$t"} ofproto/trace br-int "$1"')
        done = stand_in.shell.run("sh", "-c", script, "trace", flow)
        return done.stdout + done.stderr

    # --- the network and the clean-up ------------------------------------------------------------------

    def _network(self) -> tuple[Any, Any, Any]:
        if self.network_name:
            network = self.api.find_network(self.network_name, ignore_missing=False)
            subnet = self.api.get_subnet(network.subnet_ids[0])
            interfaces = list(self.api.ports(network_id=network.id, device_owner="network:router_interface"))
            router = self.api.get_router(interfaces[0].device_id) if interfaces else None
            return network, subnet, router
        network = self.api.create_network(name=f"{PREFIX}-{self.tag}")
        self.made.append(("network", network))
        subnet = self.api.create_subnet(network_id=network.id, ip_version=4, cidr=self.cidr,
                                        name=f"{PREFIX}-{self.tag}")
        router = self.api.create_router(name=f"{PREFIX}-{self.tag}")
        self.made.append(("router", router))
        self.api.add_interface_to_router(router, subnet_id=subnet.id)
        self.made.append(("interface", (router, subnet)))
        external = self._external()
        if external is not None:
            router = self.api.update_router(router, external_gateway_info={"network_id": external.id})
        network = self.api.get_network(network.id)  # with its segmentation id
        return network, subnet, router

    def _security_group(self) -> Any:
        """The stand-ins' group: the default egress rules, and ICMP in from anywhere (pings of a floating IP)."""
        group = self.api.create_security_group(name=f"{PREFIX}-{self.tag}",
                                               description="nodeagent verify --traffic: its stand-ins' ports")
        self.made.append(("security group", group))
        self.api.create_security_group_rule(security_group_id=group.id, direction="ingress", ethertype="IPv4",
                                            protocol="icmp", remote_ip_prefix="0.0.0.0/0")
        return group

    def _external(self) -> Any:
        if self.external_name:
            return self.api.find_network(self.external_name, ignore_missing=False)
        found = list(self.api.networks(is_router_external=True))
        return found[0] if len(found) == 1 else None

    def clean(self) -> None:
        """Remove what this probe made, newest first; keeps going past what fails."""
        for stand_in in self.stand_ins:
            stand_in.remove()
        for kind, thing in reversed(self.made):
            try:
                if kind == "floating":
                    self.api.delete_ip(thing, ignore_missing=True)
                elif kind == "port":
                    self.api.delete_port(thing, ignore_missing=True)
                elif kind == "interface":
                    self.api.remove_interface_from_router(thing[0], subnet_id=thing[1].id)
                elif kind == "router":
                    self.api.delete_router(thing, ignore_missing=True)
                elif kind == "network":
                    self.api.delete_network(thing, ignore_missing=True)
                elif kind == "security group":
                    self.api.delete_security_group(thing, ignore_missing=True)
            except Exception:  # noqa: BLE001 - the rest must still go; sweep() catches it next time
                continue
        try:
            self._remove_unnoted()
        except Exception:  # noqa: BLE001 - sweep() catches it next time
            pass
        self.made.clear()
        self.stand_ins.clear()

    def _remove_unnoted(self) -> None:
        """What this probe made but had not noted when it was interrupted (a port whose creation was under way
        as Ctrl-C came, and so the network that still holds it): each name carries the probe's tag."""
        mine = f"-{self.tag}"
        for port in list(self.api.ports(device_owner=PROBE_OWNER)):
            if (port.name or "").endswith(mine):
                self.api.delete_port(port, ignore_missing=True)
        for router in list(self.api.routers()):
            if router.name == f"{PREFIX}{mine}":
                self._delete_router(router)
        for network in list(self.api.networks()):
            if network.name == f"{PREFIX}{mine}":
                self.api.delete_network(network, ignore_missing=True)
        for group in list(self.api.security_groups(name=f"{PREFIX}{mine}")):
            self.api.delete_security_group(group, ignore_missing=True)

    def _delete_router(self, router: Any) -> None:
        for port in list(self.api.ports(device_id=router.id, device_owner="network:router_interface")):
            for fixed in port.fixed_ips:
                self.api.remove_interface_from_router(router, subnet_id=fixed["subnet_id"])
        self.api.delete_router(router, ignore_missing=True)

    def sweep(self) -> None:
        """What a probe that was killed left: its ports, routers and networks in Neutron, its stand-ins on nodes."""
        for shell in self.shells.values():
            sweep_node(shell)
        for floating in list(self.api.ips()):
            if (floating.description or "").startswith(PREFIX):
                self.api.delete_ip(floating, ignore_missing=True)
        for port in list(self.api.ports(device_owner=PROBE_OWNER)):
            self.api.delete_port(port, ignore_missing=True)
        for router in list(self.api.routers()):
            if router.name.startswith(PREFIX):
                self._delete_router(router)
        for network in list(self.api.networks()):
            if network.name.startswith(PREFIX):
                self.api.delete_network(network, ignore_missing=True)
        for group in list(self.api.security_groups()):
            if (group.name or "").startswith(PREFIX):
                self.api.delete_security_group(group, ignore_missing=True)


def metadata_hop(status: int | None, router_id: str, host: str | None) -> tuple[str, str]:
    """The broken hop of an instance's metadata request from its HTTP status ('', '' when it worked): Nova
    answers 200, or 404 for a port of no server; 403 when the signature made with the shared secret is wrong."""
    if status in (200, 404):
        return "", ""
    if status == 403:
        return "metadata secret", ("nova-metadata refused the request's signature: metadata_proxy_shared_secret "
                                   f"differs between metadata_agent.ini on {host} and nova.conf [neutron] on the "
                                   "controller")
    if status is None:
        return "router namespace", (f"no HTTP answer from {METADATA}: the metadata proxy (haproxy) in "
                                    f"qrouter-{router_id} on {host}, neutron-l3-agent's log there")
    return "metadata agent", (f"the metadata agent on {host} answered {status}: does it reach nova-metadata at "
                              f"nova_metadata_host:8775 (metadata_agent.ini)? neutron-metadata-agent's log on {host}")


def for_fleet(inventory: Inventory, neutron: Callable[[], Any], host: str | None = None, network: str | None = None,
              cidr: str = "198.19.254.0/24", external: str | None = None, outside: str | None = None
              ) -> TrafficProbe:
    """The probe of the coordinator's fleet (its accepted nodes with roles, see ``choose_nodes``); ``neutron``
    makes the client, asked only once there is something to probe."""
    nodes = [(n.name, list(n.roles), inventory.variables(n.name)) for n in inventory.nodes()
             if n.roles and n.enrolment == "accepted"]
    probed, looked_at, mtu = choose_nodes(nodes, host, network, cidr)
    mechanisms = {name: str(values.get("mechanism") or "openvswitch") for name, _, values in nodes}
    shells = {name: NodeShell(name, access, mechanisms[name]) for name, access in looked_at.items()}
    return TrafficProbe(neutron(), {name: shells[name] for name in probed}, shells, network, cidr, mtu, external,
                        NodeShell("the outside", outside) if outside else None)


def choose_nodes(nodes: list[tuple[str, list[str], dict[str, Any]]], host: str | None, network: str | None,
                 cidr: str) -> tuple[list[str], dict[str, str], int | None]:
    """From (name, roles, variables) of each node: the nodes that get a stand-in (br-int: roles network or
    compute, and ``probe_access``; only ``host`` if given), every node's access (for a diagnosis on the DHCP and
    router node), and the MTU the guide's DHCP option gives instances (checked on a throw-away network only).
    Raises ProbeError, naming what to set, when there is nothing to probe or ``cidr`` is no IPv4 network."""
    access: dict[str, str] = {}
    probed: list[str] = []
    mtu = None
    for name, roles, values in sorted(nodes, key=lambda node: node[0]):
        if values.get("probe_access"):
            access[name] = str(values["probe_access"])
            if set(roles) & {"network", "compute"} and host in (None, name):
                probed.append(name)
        if "network" in roles and network is None:
            mtu = int(values.get("instance_mtu") or (1454 if values.get("overlay") == "gre" else 1450))
    if host is not None and host not in probed:
        raise ProbeError(f"node '{host}' cannot be probed: it needs the role network or compute and the variable "
                         f"probe_access (nodeagentctl var set --node {host} probe_access 'ssh root@{host}')")
    if not probed:
        raise ProbeError("no node to probe: set probe_access on the nodes to probe, a command prefix that runs a "
                         "command there as root (nodeagentctl var set --node compute1 probe_access "
                         "'ssh root@compute1')")
    try:
        ipaddress.IPv4Network(cidr)
    except ValueError:
        raise ProbeError(f"--cidr must be an IPv4 network such as 198.19.254.0/24, got {cidr!r}") from None
    return probed, access, mtu


def _has_compute(connection: Any) -> bool:
    """Whether the cloud's catalog lists Nova (read from the token's catalog: openstacksdk's has_service warns
    'Keystone catalog entry not found' on the operator's terminal when it does not)."""
    session = connection.session
    catalog = session.auth.get_access(session).service_catalog
    return bool(catalog.get_endpoints(service_type="compute").get("compute"))


def _wait(predicate: Callable[[], Any], timeout: float, step: float = 1.0) -> Any:
    """``predicate()`` once it is true, or its last value at the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)
