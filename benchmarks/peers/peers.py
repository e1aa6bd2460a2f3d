"""The network-node example applied by nodeagent, Salt (``salt-call --local``) and Ansible (``ansible-playbook -c
local``) side by side: first apply and no-change apply (wall, CPU, peak memory of the largest process), paired run
by run, medians and ratios to nodeagent.

Salt's and Ansible's inputs are made from the example document itself, resource by resource, with each tool's
own modules where it has them (Salt: ini.options_present/absent, file.managed, file.symlink, sysctl.present;
Ansible: community.general.ini_file, copy, file, ansible.posix.sysctl) and a guarded command where it has none
(Salt 3008 and the ansible 12 package ship no Open vSwitch states or modules any more; neither has one for
offload features). Every tool runs in the lab node's namespace with its private Open vSwitch and writes under
its own scratch root. Neither peer watches for drift: each notices one at its next run.

Each tool comes from a virtualenv made on demand under /var/tmp/nodeagent-peers (PyPI: salt, ansible). Not a test,
and not in run_all's quick set. Run as root:

    .venv/bin/python benchmarks/peers/peers.py [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(REPO))
from nodeagent.testing.lab import LabNode  # noqa: E402

EXAMPLE = REPO / "etc/examples/network-node.yaml"
VENVS = Path("/var/tmp/nodeagent-peers")
PACKAGES = {"salt": "salt==3008.4", "ansible": "ansible==12.3.0"}


def venv(tool: str) -> Path:
    """The tool's virtualenv, made and installed the first time."""
    home = VENVS / tool
    if not (home / "bin" / ("salt-call" if tool == "salt" else "ansible-playbook")).exists():
        subprocess.run([sys._base_executable, "-m", "venv", str(home)], check=True)
        subprocess.run([str(home / "bin/pip"), "install", "-q", PACKAGES[tool]], check=True)
    return home


def text(value) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def salt_states(document: dict, root: Path) -> dict:
    states: dict = {}
    for r in document["resources"]:
        rid, driver = r["id"], r["driver"]
        path = str(root) + r.get("path", "")
        if driver == "ini":
            states[f"{rid}-dir"] = {"file.directory": [{"name": str(Path(path).parent)}, {"makedirs": True}]}
            states[rid] = {"ini.options_present": [{"name": path}, {"sections": {
                s: {k: text(v) for k, v in o.items()} for s, o in r["settings"].items()}}]}
            if r.get("absent"):
                states[f"{rid}-absent"] = {"ini.options_absent": [{"name": path}, {"sections": r["absent"]}]}
            if r.get("permissions"):
                states[f"{rid}-mode"] = {"file.managed": [{"name": path}, {"replace": False},
                                                          {"mode": r["permissions"]}]}
        elif driver == "file":
            states[rid] = {"file.managed": [{"name": path}, {"contents": r["content"].rstrip("\n")},
                                            {"mode": r.get("permissions", "0644")}, {"makedirs": True}]}
        elif driver == "symlink":
            states[rid] = {"file.symlink": [{"name": path}, {"target": r["target"]}, {"makedirs": True}]}
        elif driver == "sysctl":
            for key, value in r["settings"].items():
                states[f"{rid}-{key}"] = {"sysctl.present": [{"name": key}, {"value": value},
                                                             {"config": str(root) + r["persist"]}]}
        elif driver == "ovs_bridge":
            name = r["name"]
            states[rid] = {"cmd.run": [
                {"name": f"ovs-vsctl --may-exist add-br {name} -- set Bridge {name} "
                         f"datapath_type={r.get('datapath_type', 'system')}"},
                {"unless": f"ovs-vsctl br-exists {name}"}]}
            for port in r.get("ports", []):
                states[f"{rid}-{port}"] = {"cmd.run": [{"name": f"ovs-vsctl --may-exist add-port {name} {port}"},
                                                       {"unless": f"ovs-vsctl list-ports {name} | grep -qx {port}"}]}
        elif driver == "ethtool":
            states[rid] = {"cmd.run": [{"name": f"ethtool -K {r['interface']} gro off"},
                                       {"unless": f"ethtool -k {r['interface']} | "
                                                  "grep -q 'generic-receive-offload: off'"}]}
    return states


def ansible_play(document: dict, root: Path) -> list:
    tasks: list = []
    for r in document["resources"]:
        driver = r["driver"]
        path = str(root) + r.get("path", "")
        if driver == "ini":
            tasks.append({"file": {"path": str(Path(path).parent), "state": "directory"}})
            for section, options in r["settings"].items():
                for key, value in options.items():
                    tasks.append({"community.general.ini_file": {
                        "path": path, "section": section, "option": key, "value": text(value),
                        **({"mode": r["permissions"]} if r.get("permissions") else {})}})
            for section, keys in (r.get("absent") or {}).items():
                for key in keys:
                    tasks.append({"community.general.ini_file": {"path": path, "section": section, "option": key,
                                                                  "state": "absent"}})
        elif driver == "file":
            tasks.append({"copy": {"dest": path, "content": r["content"], "mode": r.get("permissions", "0644")}})
        elif driver == "symlink":
            tasks.append({"file": {"path": path, "src": r["target"], "state": "link", "force": True}})
        elif driver == "sysctl":
            tasks.append({"file": {"path": str(root) + str(Path(r["persist"]).parent), "state": "directory"}})
            for key, value in r["settings"].items():
                tasks.append({"ansible.posix.sysctl": {"name": key, "value": str(value), "reload": True,
                                                       "sysctl_file": str(root) + r["persist"]}})
        elif driver == "ovs_bridge":
            name = r["name"]
            tasks.append({"shell": f"ovs-vsctl br-exists {name} || {{ ovs-vsctl add-br {name} -- set Bridge {name} "
                                   f"datapath_type={r.get('datapath_type', 'system')}; echo changed; }}",
                          "register": "br", "changed_when": "'changed' in br.stdout"})
            for port in r.get("ports", []):
                tasks.append({"shell": f"ovs-vsctl list-ports {name} | grep -qx {port} || "
                                       f"{{ ovs-vsctl add-port {name} {port}; echo changed; }}",
                              "register": "port", "changed_when": "'changed' in port.stdout"})
        elif driver == "ethtool":
            iface = r["interface"]
            tasks.append({"shell": f"ethtool -k {iface} | grep -q 'generic-receive-offload: off' || "
                                   f"{{ ethtool -K {iface} gro off; echo changed; }}",
                          "register": "gro", "changed_when": "'changed' in gro.stdout"})
    return [{"hosts": "localhost", "connection": "local", "gather_facts": False, "tasks": tasks}]


def measure(command: list[str], env: dict) -> dict:
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{command[5]} failed ({code}):\n{output.decode(errors='replace')[-3000:]}")
    return {"wall": time.perf_counter() - start, "cpu": usage.ru_utime + usage.ru_stime,
            "rss": usage.ru_maxrss / 1024}


def reset(node: LabNode, roots: list[Path]) -> None:
    node.vsctl("--if-exists", "del-br", "br-int")
    node.vsctl("--if-exists", "del-br", "br-ex")
    node.exec("ethtool", "-K", "eth2", "gro", "on")
    node.exec("sysctl", "-qw", "net.ipv4.ip_forward=0")
    for root in roots:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    document = yaml.safe_load(EXAMPLE.read_text())
    salt, ansible = venv("salt"), venv("ansible")
    nodeagent = str(Path(sys.executable).parent / "nodeagent")
    with tempfile.TemporaryDirectory(prefix="nodeagent-peers.") as scratch:
        work = Path(scratch)
        node = LabNode(f"na-peers-{os.getpid()}", work / "ovs", ["eth2"]).up()
        roots = {tool: work / f"root-{tool}" for tool in ("nodeagent", "salt", "ansible")}
        (work / "salt/tree").mkdir(parents=True)
        (work / "salt/tree/network.sls").write_text(yaml.safe_dump(salt_states(document, roots["salt"]), sort_keys=False))
        (work / "salt/minion").write_text(yaml.safe_dump({"file_client": "local", "root_dir": str(work / "salt/run"),
                                                          "file_roots": {"base": [str(work / "salt/tree")]}}))
        (work / "play.yml").write_text(yaml.safe_dump(ansible_play(document, roots["ansible"]), sort_keys=False))
        inside = ["ip", "netns", "exec", node.name, "env", f"OVS_RUNDIR={node.directory}"]
        commands = {
            "nodeagent": [*inside, nodeagent, "apply", str(EXAMPLE), "--root", str(roots["nodeagent"]),
                          "--netns", node.name, "--ovsdb", node.ovsdb],
            "salt": [*inside, str(salt / "bin/salt-call"), "--local", "--config-dir", str(work / "salt"),
                     "--retcode-passthrough", "-l", "quiet", "--out", "quiet", "state.apply", "network"],
            "ansible": [*inside, str(ansible / "bin/ansible-playbook"), "-i", "localhost,", "-c", "local",
                        "-e", f"ansible_python_interpreter={ansible / 'bin/python'}", str(work / "play.yml")],
        }
        env = {**os.environ, "ANSIBLE_LOCAL_TEMP": str(work / "ansible-tmp"), "ANSIBLE_NOCOLOR": "1",
               "ANSIBLE_HOME": str(work / "ansible-home")}
        samples = {tool: {"first": [], "again": []} for tool in commands}
        try:
            for run in range(args.runs + 1):  # the first round warms caches and is not counted
                for tool, command in commands.items():
                    reset(node, [roots[tool]])
                    first, again = measure(command, env), measure(command, env)
                    if run:
                        samples[tool]["first"].append(first)
                        samples[tool]["again"].append(again)
                assert node.vsctl("br-exists", "br-ex").returncode == 0
        finally:
            node.down()
    load = os.getloadavg()
    print(f"network-node example, {args.runs} paired runs, medians (load average {load[0]:.2f}, "
          f"{os.cpu_count()} cores); ratio = tool / nodeagent")
    base = {kind: statistics.median(s["wall"] for s in samples["nodeagent"][kind]) for kind in ("first", "again")}
    lines = []
    for tool, kinds in samples.items():
        figures = {}
        for kind, runs in kinds.items():
            figures[f"{kind}_wall_s"] = round(statistics.median(r["wall"] for r in runs), 3)
            figures[f"{kind}_cpu_s"] = round(statistics.median(r["cpu"] for r in runs), 3)
            figures[f"{kind}_peak_rss_mib"] = round(statistics.median(r["rss"] for r in runs), 1)
            figures[f"{kind}_wall_ratio"] = round(figures[f"{kind}_wall_s"] / base[kind], 2)
        drift = "seen as it happens (benchmarks/drift.py)" if tool == "nodeagent" else "at its next run (no watch)"
        print(f"  {tool:10s} first apply {figures['first_wall_s']:6.2f} s ({figures['first_wall_ratio']:5.2f}x) "
              f"CPU {figures['first_cpu_s']:5.2f} s  no-change {figures['again_wall_s']:6.2f} s "
              f"({figures['again_wall_ratio']:5.2f}x)  peak {figures['first_peak_rss_mib']:6.1f} MiB  drift: {drift}")
        lines.append({"benchmark": "peers", "tool": tool, "runs": args.runs, **figures,
                      "load_average": round(load[0], 2)})
    for line in lines:
        print(json.dumps(line))


if __name__ == "__main__":
    main()
