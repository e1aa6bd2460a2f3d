#!/usr/bin/env bash
# Install the real OpenStack services the lab runs, once: one virtualenv per OpenStack series (and Nova), each with its
# series' upper-constraints (etc/constraints). Called by scripts/setup.sh, which installs the Debian packages
# they call. (python-memcached: what the distribution's packages pull for keystonemiddleware's cache.)
#   .venvs/openstack-2025.2   neutron 27 (neutron-api + neutron-rpc-server), keystone 28, openstack client
#   .venvs/openstack-2024.2   neutron 25 (neutron-server, the Linux bridge agent), openstack client
#   .venvs/nova-2025.2        nova 32 + placement 14 (the lab's Nova with the fake virt driver), apart from the
#                             neutron venvs so that adding it never rebuilds theirs
# Idempotent: a venv whose stamp names the same packages and the same constraints (by content, not mtime: a fresh
# checkout or worktree has new mtimes) is kept.
set -euo pipefail
cd "$(dirname "$0")/.."

# venv name -> its series (the constraints) and packages
declare -A VENV=(
    [openstack-2025.2]="2025.2 neutron==27.0.4 keystone==28.1.0 python-openstackclient pymysql python-memcached"
    [openstack-2024.2]="2024.2 neutron==25.2.3 python-openstackclient pymysql python-memcached"
    [nova-2025.2]="2025.2 nova==32.2.1 openstack-placement==14.0.0 pymysql python-memcached"
)
say() { printf '==> %s\n' "$*" >&2; }

install_venv() {
    # The venv's real place (through a symlinked .venvs, as worktrees have it): its programs' first line names
    # it, so a venv made through a worktree's symlink breaks when that worktree is removed.
    local name=$1 venv series=${VENV[$1]%% *} packages=${VENV[$1]#* }
    venv=$(realpath -m ".venvs/$1")
    local constraints=etc/constraints/upper-constraints-$series.txt stamp=$venv/.installed want
    want="$packages $(sha256sum <"$constraints" | cut -c1-16)"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        # kept as it is (it may be shared), but said when its programs name an interpreter that is gone
        local first
        first=$(head -n 1 "$venv/bin/pip" 2>/dev/null)
        [ -x "${first#\#!}" ] || say "WARNING: $venv's programs start with '$first', which does not exist: remove $venv and run this again"
        return 0
    fi
    say "installing OpenStack $series ($packages) into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    # The machine-wide pip constraint file (if any) must not fight the series' own pins.
    PIP_CONSTRAINT= "$venv/bin/pip" install -q --disable-pip-version-check -c "$constraints" $packages \
        >"$venv.log" 2>&1 || { tail -30 "$venv.log" >&2; echo "pip install of OpenStack $series failed" >&2; return 1; }
    echo "$want" > "$stamp"
}

mkdir -p .venvs
pids=()
for name in "${!VENV[@]}"; do
    install_venv "$name" & pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
[ "$status" = 0 ] && say "OpenStack services ready: $(ls -d .venvs/*/ | tr "\n" " ")"
exit "$status"
