#!/usr/bin/env bash
# The main job, local mode: plan, apply and apply again the network-node example under a
# scratch root and inside a test network namespace, then show that nothing is left to do.
# The host's own /etc and sysctls are never touched. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
NA=.venv/bin/nodeagent
NS="na-demo-$$"
ROOT=$(mktemp -d /tmp/nodeagent-demo.XXXXXX)
cleanup() { ip netns del "$NS" 2>/dev/null || true; echo "(scratch root kept in $ROOT)"; }
trap cleanup EXIT
ip netns add "$NS"
EXAMPLE=etc/examples/network-node.yaml

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
step "plan: what would change on node network1 (namespace $NS, root $ROOT)"
$NA plan "$EXAMPLE" --root "$ROOT" --netns "$NS" || [ $? -eq 2 ]
step "apply"
$NA apply "$EXAMPLE" --root "$ROOT" --netns "$NS" -c Resource -c Driver -c Status -c "Duration (ms)"
step "apply again: nothing to do"
$NA apply "$EXAMPLE" --root "$ROOT" --netns "$NS" -c Resource -c Status
step "someone edits ml2_conf.ini and sets ip_forward=0 by hand"
sed -i 's/^tenant_network_types = gre/tenant_network_types = vxlan/' "$ROOT/etc/neutron/plugins/ml2/ml2_conf.ini"
ip netns exec "$NS" sysctl -qw net.ipv4.ip_forward=0
step "plan shows exactly that (exit 2: changes pending)"
$NA plan "$EXAMPLE" --root "$ROOT" --netns "$NS" || [ $? -eq 2 ]
step "apply puts it back"
$NA apply "$EXAMPLE" --root "$ROOT" --netns "$NS" -c Resource -c Status -c Details
step "the files written"
(cd "$ROOT" && find etc -type f -o -type l | sort)
