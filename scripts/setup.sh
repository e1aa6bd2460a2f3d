#!/usr/bin/env bash
# Set up a Debian 12 machine for nodeagent: system packages, RabbitMQ and Open vSwitch
# running, and the project installed with its test extras in .venv. Run as root.
# Idempotent: a second run only checks and returns quickly.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(rabbitmq-server openvswitch-switch ethtool iproute2 libsystemd-dev pkg-config python3-venv python3-dev gcc
          mariadb-server systemd util-linux procps kmod
          # what the real Neutron agents call, and the lab cloud's memcached; busybox (udhcpc) and ping for the
          # stand-in VMs
          dnsmasq-base iptables ipset conntrack iputils-arping haproxy keepalived socat mariadb-client curl
          memcached busybox iputils-ping postgresql
          # tooz's Redis backend: coordinators' locks as leases a hung coordinator cannot keep (private servers)
          redis-server)

say() { printf '==> %s\n' "$*" >&2; }

# The L3 agent's radvd (IPv6 routers), the DHCP agent's dhcp_release (dnsmasq-utils), the Linux bridge agent's
# ebtables: what the roles' package resources ask for (a lab node reads the host's package database).
PACKAGES+=(radvd dnsmasq-utils ebtables)
# The package driver's tests: tiny .deb and .rpm repositories, real apt and dnf on a scratch root.
PACKAGES+=(dpkg-dev rpm createrepo-c dnf dnf-plugins-core)
# The web view's tests: a real browser, Debian's (Selenium drives it through chromium-driver; no browser download).
PACKAGES+=(chromium chromium-driver)

if [ "$(id -u)" != 0 ]; then
    echo "scripts/setup.sh must run as root (it installs packages and starts RabbitMQ and Open vSwitch)" >&2
    exit 1
fi

missing=()
for package in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# No systemd as PID 1 here: apt does not start the services, so start them by hand.
if ! rabbitmqctl -q status >/dev/null 2>&1; then
    say "starting RabbitMQ"
    # Each agent holds one or more connections: the broker needs file descriptors well past the shell's
    # default 1024 (at 832 sockets it crashed and lost its tables; see README "Scale").
    # Debian's rabbitmq-server wrapper switches user with su, whose PAM session puts the limit back to 1,024:
    # the server is started as its user by setpriv instead, which keeps the limit raised here.
    (cd /var/lib/rabbitmq && ulimit -n "$(ulimit -Hn)" 2>/dev/null; \
     setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups env HOME=/var/lib/rabbitmq \
         /usr/lib/rabbitmq/bin/rabbitmq-server -detached >/dev/null 2>&1) || true
    for _ in $(seq 1 60); do
        rabbitmqctl -q status >/dev/null 2>&1 && break
        sleep 1
    done
    rabbitmqctl -q status >/dev/null 2>&1 || { echo "RabbitMQ did not start" >&2; exit 1; }
fi
if ! ovs-vsctl --timeout=2 show >/dev/null 2>&1; then
    say "starting Open vSwitch (userspace datapath)"
    /usr/share/openvswitch/scripts/ovs-ctl --system-id=random --no-monitor start >/dev/null 2>&1
    ovs-vsctl --timeout=5 show >/dev/null
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    say "creating .venv"
    "$PYTHON" -m venv .venv
fi
stamp=.venv/.nodeagent-installed
if [ ! -f "$stamp" ] || [ setup.py -nt "$stamp" ]; then
    say "installing nodeagent and its test extras into .venv"
    .venv/bin/pip install -q --disable-pip-version-check -e '.[test]' >.venv/pip.log 2>&1 \
        || { cat .venv/pip.log >&2; echo "pip install failed (log above)" >&2; exit 1; }
    touch "$stamp"
fi
# The real OpenStack services the lab runs (tests judge the roles by them): once, about 1-4 minutes.
bash scripts/setup-openstack.sh
say "ready: $(.venv/bin/nodeagent --version 2>&1)"
