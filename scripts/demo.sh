#!/usr/bin/env bash
# The main job, local mode: two lab nodes (a network namespace each, with its own Open vSwitch
# and veth stand-ins for the NICs), the three-node guide's network node and the two-node
# guide's compute node applied to them, applied again (nothing to do), then hand-made drift
# shown by plan and put back by apply. The host's own /etc, interfaces and sysctls are never
# touched. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PY=.venv/bin/python
NA=.venv/bin/nodeagent
WORK=$(mktemp -d /tmp/nodeagent-demo.XXXXXX)
NET="na-demo-net-$$"
CMP="na-demo-cmp-$$"
cleanup() {
    $PY -m nodeagent.lab down "$NET" "$WORK/net/ovs" || true
    $PY -m nodeagent.lab down "$CMP" "$WORK/cmp/ovs" || true
    echo "(files written are kept under $WORK)"
}
trap cleanup EXIT
NET_DB=$($PY -m nodeagent.lab up "$NET" "$WORK/net/ovs" --veth eth2)
CMP_DB=$($PY -m nodeagent.lab up "$CMP" "$WORK/cmp/ovs" --veth eth1 --veth eth2)
ip netns exec "$NET" ethtool -K eth2 gro on   # so that turning it off shows
net() { $NA "$1" etc/examples/network-node.yaml --root "$WORK/net/root" --netns "$NET" --ovsdb "$NET_DB" "${@:2}"; }
cmp() { $NA "$1" etc/examples/compute-node.yaml --root "$WORK/cmp/root" --netns "$CMP" --ovsdb "$CMP_DB" "${@:2}"; }

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
step "network node ($NET): plan"
net plan -c Resource -c Driver -c Status || [ $? -eq 2 ]
step "network node: apply"
net apply -c Resource -c Status -c Details
step "compute node ($CMP): apply"
cmp apply -c Resource -c Status -c "Duration (ms)"
step "both again: nothing to do"
net apply -f value -c Status | sort | uniq -c
cmp apply -f value -c Status | sort | uniq -c
step "someone edits ml2_conf.ini, sets ip_forward=0, removes eth2 from br-ex and turns GRO back on"
sed -i 's/^tenant_network_types = gre/tenant_network_types = vxlan/' "$WORK/net/root/etc/neutron/plugins/ml2/ml2_conf.ini"
ip netns exec "$NET" sysctl -qw net.ipv4.ip_forward=0
ip netns exec "$NET" ovs-vsctl --db="$NET_DB" del-port br-ex eth2
ip netns exec "$NET" ethtool -K eth2 gro on
step "plan shows exactly that (exit 2: changes pending)"
net plan -c Resource -c Status -c Details || [ $? -eq 2 ]
step "apply puts it back"
net apply -c Resource -c Status -c Details
step "what the network node looks like now"
ip netns exec "$NET" ovs-vsctl --db="$NET_DB" show
ip -n "$CMP" -br link show master brq-provider
