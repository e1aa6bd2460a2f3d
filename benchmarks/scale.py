"""Scale figures: a simulated fleet of N real agents against 1 or 3 coordinators on SQLite, MariaDB or PostgreSQL.

Per run (a private RabbitMQ node with a high file limit, a private database server, K simulator processes of
at most --per-process agents each):

* start: all N agents started and listed by the coordinators;
* first role: ``node assign 'sim*' tunnel`` (one change) → the last node converged;
* change: ``var set tag`` (one change re-rendering every node) → the last node converged (goal: < 10 s at 1,000),
  and the CPU the change itself took (the command renders, stores and pushes);
* heartbeats: over --window idle seconds, reports processed per second, coordinator CPU per report
  (goal ≤ 0.5 ms): all of it, and beyond what the coordinators spend with no agent (measured for IDLE_WINDOW s
  before the fleet starts: their ticks, broker heartbeats); the processing time's p50/p99 (from the
  coordinators' Prometheus histograms, which count called reports and cast heartbeats alike);
* survive (--survive, 3 coordinators or more): one coordinator SIGKILLed (then started again), then another
  SIGSTOPped (hung), a change while each is out → the last node converged, and how many nodes were marked down
  meanwhile (goal: none);
* down: one simulator process SIGKILLed → each of its nodes marked down (agent_down_time = 3 × interval);
* memory: RSS per simulated agent and per coordinator.

Run as root with nothing else heavy running:
    .venv/bin/python benchmarks/scale.py --agents 100,500,1000 --databases sqlite --coordinators 1
    .venv/bin/python benchmarks/scale.py --agents 300 --databases sqlite,mariadb,postgresql --coordinators 1,3
    .venv/bin/python benchmarks/scale.py --agents 1000 --databases postgresql --coordinators 3 --survive
Prints one line per run and a JSON line with every figure.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import resource
import signal
import statistics
import sys
import tempfile
import time
import urllib.request
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
import psutil  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from nodeagent.testing.coordinators import TUNNEL_ROLE, Coordinators  # noqa: E402
from nodeagent.testing.rabbitcluster import RabbitCluster  # noqa: E402
from nodeagent.testing.simulator import SimulatedFleet  # noqa: E402
from nodeagent.testing.sqlserver import SERVERS  # noqa: E402


IDLE_WINDOW = 10  # seconds
REPORTS, CAST = "nodeagent_report_processing_seconds", "nodeagent_heartbeats_cast_total"


def counts(engine) -> dict[str, int]:
    """Nodes listed, alive, and converged (desired generation received and reconciled), straight from SQL."""
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT alive, desired_generation, observed_generation, status, held "
                                       "FROM nodes")).all()
    converged = 0
    for alive, desired, observed, status, held in rows:
        status = json.loads(status) if isinstance(status, str) else status or {}
        if desired and observed >= desired and status.get("reconciled_generation", 0) >= desired \
                and not status.get("failed") and not held:
            converged += 1
    return {"listed": len(rows), "alive": sum(1 for r in rows if r[0]), "converged": converged}


def alive_among(engine, hosts: list[str]) -> int:
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT name FROM nodes WHERE alive")).scalars().all()
    return len(set(rows) & set(hosts))


def wait_for(predicate, timeout: float, what: str, step: float = 0.25) -> float:
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"{what} not within {timeout:.0f} s")
        time.sleep(step)
    return time.monotonic() - started


def scrape(urls: list[str]) -> list[str]:
    """The coordinators' metrics pages, read one after another (a killed coordinator's left out)."""
    bodies = []
    for url in urls:
        try:
            bodies.append(urllib.request.urlopen(url, timeout=5).read().decode())
        except OSError:
            continue
    return bodies


def histogram(bodies: list[str], name: str) -> dict[float, float]:
    """Cumulative bucket counts (le → count) of one histogram, summed over the coordinators' pages."""
    buckets: dict[float, float] = {}
    for body in bodies:
        for match in re.finditer(rf'^{name}_bucket{{le="([^"]+)"}} ([0-9.e+]+)$', body, re.M):
            bound = math.inf if match.group(1) == "+Inf" else float(match.group(1))
            buckets[bound] = buckets.get(bound, 0) + float(match.group(2))
    return buckets


def counter(bodies: list[str], name: str) -> float:
    """A counter's value, summed over the coordinators' pages."""
    return sum(float(m.group(1)) for body in bodies for m in re.finditer(rf'^{name} ([0-9.e+]+)$', body, re.M))


def quantile(before: dict[float, float], after: dict[float, float], q: float) -> float:
    """The upper bound of the bucket holding quantile q of what was observed between two scrapes."""
    total = after.get(math.inf, 0) - before.get(math.inf, 0)
    for bound in sorted(after):
        if after[bound] - before.get(bound, 0) >= q * total:
            return bound
    return math.inf


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def process_tree(pid: int) -> list[int]:
    """A process and all its descendants (a broker node: the shell script, beam.smp and its helpers)."""
    try:
        root = psutil.Process(pid)
        return [pid] + [child.pid for child in root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def rss_mib(pids: list[int]) -> list[float]:
    return [psutil.Process(pid).memory_info().rss / 2**20 for pid in pids if psutil.pid_exists(pid)]


def phases(said: str) -> dict[str, float]:
    """The phases of a change from the command's summary line (rendered and checked, stored, sent)."""
    found = re.search(r"rendered and checked in ([0-9.]+) s, stored in ([0-9.]+) s, sent to their nodes in "
                      r"([0-9.]+) s", said)
    return dict(zip(("render", "store", "push"), map(float, found.groups()))) if found else {}


def children_cpu() -> float:
    """CPU seconds (user + system) of this process's children that ended so far (the ``nodeagentctl`` runs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def node_down_events(engine, kind: str = "node.down") -> int:
    """Events of ``kind`` so far (report.stale: heartbeats dropped because they queued past the down time,
    recorded once per node and refusal window)."""
    with engine.connect() as connection:
        return connection.execute(text("SELECT count(*) FROM events WHERE type = :kind"), {"kind": kind}).scalar()


def survive(group: Coordinators, engine, agents: int) -> dict:
    """Any one coordinator's death or hang: one SIGKILLed (and started again), then another SIGSTOPped (hung:
    connected, answering nothing); a change while each is out still reaches every node, and the nodes marked
    down meanwhile are counted (goal: none)."""
    figures = {}

    def change(tag: str) -> float:
        started = time.monotonic()
        # As an operator would: a change refused because a hung coordinator's transaction holds rows it needs
        # (InventoryBusy, until the server ends that transaction) is made again.
        while "try again" in group.ctl("var", "set", "tag", tag, timeout=900, check=False).stderr:
            figures[f"{tag}_refused_busy"] = figures.get(f"{tag}_refused_busy", 0) + 1
            time.sleep(5)
        return round(time.monotonic() - started + wait_for(lambda: counts(engine)["converged"] >= agents, 600,
                                                           f"every node converged on {tag}"), 2)
    down_before, stale_before = node_down_events(engine), node_down_events(engine, "report.stale")
    group.processes[0].kill()
    group.processes[0].wait()
    figures["killed_one_change_converged_s"] = change("killed")
    figures["killed_one_nodes_marked_down"] = node_down_events(engine) - down_before
    figures["killed_one_stale_events"] = node_down_events(engine, "report.stale") - stale_before
    group.restart(0)
    down_before, stale_before = node_down_events(engine), node_down_events(engine, "report.stale")
    os.kill(group.processes[1].pid, signal.SIGSTOP)
    try:
        figures["hung_one_change_converged_s"] = change("hung")
    finally:
        os.kill(group.processes[1].pid, signal.SIGCONT)
    figures["hung_one_nodes_marked_down"] = node_down_events(engine) - down_before
    figures["hung_one_stale_events"] = node_down_events(engine, "report.stale") - stale_before
    return figures


def run(agents: int, database: str, coordinators_count: int, args: argparse.Namespace, scratch: Path) -> dict:
    directory = scratch / f"{database}-{agents}-{coordinators_count}"
    directory.mkdir(parents=True)
    figures: dict = {"agents": agents, "database": database, "coordinators": coordinators_count}
    server = SERVERS[database](directory / database).start() if database != "sqlite" else None
    broker = RabbitCluster(directory / "rabbit", nodes=1).start()
    group = fleet = None
    try:
        url = server.create_database("inventory") if server else None
        group = Coordinators(directory / "fleet", url, coordinators_count, {"tunnel": TUNNEL_ROLE},
                             transport_url=broker.url(), report_interval=args.interval, down_time=3 * args.interval,
                             metrics=True)
        engine = create_engine(url or f"sqlite:///{directory / 'fleet/state/coordinator.db'}")
        group.start()
        pids = [p.pid for p in group.processes]
        time.sleep(IDLE_WINDOW / 2)  # settled: the start's imports and set-up are not idle
        idle_before = cpu_seconds(pids)
        time.sleep(IDLE_WINDOW)  # the coordinators' own ticks, with no agent yet: what a report does not cost
        idle_per_s = (cpu_seconds(pids) - idle_before) / IDLE_WINDOW
        processes = math.ceil(agents / args.per_process)
        fleet = SimulatedFleet(directory / "fleet/agents", group.agent_base, agents, processes=processes,
                               start_rate=args.start_rate)
        started = time.monotonic()
        fleet.start(timeout=agents)
        figures["start_s"] = round(time.monotonic() - started, 1)
        figures["listed_s"] = round(figures["start_s"] + wait_for(lambda: counts(engine)["listed"] >= agents,
                                                                  300, "every agent listed"), 1)
        group.ctl("var", "set", "tag", "red")
        started = time.monotonic()
        group.ctl("node", "assign", "sim*", "tunnel", timeout=900)
        figures["first_role_cli_s"] = round(time.monotonic() - started, 2)
        figures["first_role_converged_s"] = round(figures["first_role_cli_s"] + wait_for(
            lambda: counts(engine)["converged"] >= agents, 600, "every node converged"), 2)

        # Timed from the end of one scrape to the end of the other: on a saturated machine a scrape takes seconds.
        pages, cpu_before = scrape(group.metrics_urls), cpu_seconds(pids)
        started = time.monotonic()
        before, cast_before = histogram(pages, REPORTS), counter(pages, CAST)
        time.sleep(args.window)
        pages, cpu_after = scrape(group.metrics_urls), cpu_seconds(pids)
        window = time.monotonic() - started
        after, cast = histogram(pages, REPORTS), counter(pages, CAST) - cast_before
        reports = after.get(math.inf, 0) - before.get(math.inf, 0)
        figures["reports_cast_percent"] = round(100 * cast / max(reports, 1), 1)
        figures["reports_per_s"] = round(reports / window, 1)
        figures["expected_reports_per_s"] = round(agents / args.interval, 1)
        figures["coordinator_cpu_ms_per_report"] = round(1000 * (cpu_after - cpu_before) / max(reports, 1), 2)
        figures["coordinator_idle_cpu_percent"] = round(100 * idle_per_s / len(pids), 2)
        figures["coordinator_marginal_cpu_ms_per_report"] = round(
            1000 * (cpu_after - cpu_before - idle_per_s * window) / max(reports, 1), 2)
        figures["report_p50_s"], figures["report_p99_s"] = quantile(before, after, .5), quantile(before, after, .99)

        changes, spent = [], []
        # Who spends the CPU of a change, from the command's start to the last node converged: on this machine
        # the simulated agents, the broker and the coordinators share its two cores with the command.
        broker_pids = [pid for node in broker.nodes for pid in process_tree(node.process.pid)]
        parties = {"agents": fleet.pids(), "broker": broker_pids, "coordinators": pids}
        for tag in ("blue", "green", "red")[:args.changes]:
            before = {party: cpu_seconds(members) for party, members in parties.items()}
            started, cpu_started = time.monotonic(), children_cpu()
            said = group.ctl("var", "set", "tag", tag, timeout=900).stdout
            cli, cli_cpu = time.monotonic() - started, children_cpu() - cpu_started
            changes.append((cli, cli + wait_for(lambda: counts(engine)["converged"] >= agents, 600,
                                                f"every node converged on {tag}"), cli_cpu, phases(said)))
            spent.append({party: cpu_seconds(members) - before[party] for party, members in parties.items()})
        for party in parties:
            figures[f"change_cpu_{party}_s"] = round(statistics.median(s[party] for s in spent), 2)
        figures["change_cli_s"] = round(statistics.median(c[0] for c in changes), 2)
        # The change's own CPU (render, checks, store, every push: the command does them), apart from the
        # waiting for a core that the simulated agents make on this machine.
        figures["change_cli_cpu_s"] = round(statistics.median(c[2] for c in changes), 2)
        figures["change_converged_s"] = round(statistics.median(c[1] for c in changes), 2)
        for phase in ("render", "store", "push"):  # the command's own summary line
            figures[f"change_{phase}_s"] = round(statistics.median(c[3].get(phase, math.nan) for c in changes), 2)

        if args.survive and coordinators_count >= 3:
            figures.update(survive(group, engine, agents))

        figures["rss_mib_per_agent"] = round(sum(rss_mib(fleet.pids())) / agents, 2)
        figures["rss_mib_per_coordinator"] = round(statistics.median(rss_mib(pids)), 1)

        victim, (first, length) = fleet.children[0], fleet.slices()[0]
        silenced = fleet.hosts[first:first + length]
        os.killpg(victim.pid, signal.SIGKILL)
        figures["down_detected_s"] = round(wait_for(lambda: alive_among(engine, silenced) == 0,
                                                    10 * args.interval + 60, "the killed process's nodes down"), 1)
        figures["agent_down_time_s"] = 3 * args.interval
    finally:
        if fleet is not None:
            fleet.stop()
        if group is not None:
            group.stop()
        broker.stop()
        if server is not None:
            server.stop()
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", default="100,500", help="fleet sizes, comma-separated")
    parser.add_argument("--databases", default="sqlite", help="sqlite, mariadb, postgresql (comma-separated)")
    parser.add_argument("--coordinators", default="1", help="coordinator counts, comma-separated")
    parser.add_argument("--per-process", type=int, default=125, help="agents per simulator process")
    parser.add_argument("--interval", type=int, default=10, help="report_interval of the agents (s)")
    parser.add_argument("--window", type=int, default=30, help="idle seconds over which heartbeats are measured")
    parser.add_argument("--changes", type=int, default=3, help="changes timed (median quoted), at most 3")
    parser.add_argument("--survive", action="store_true",
                        help="with 3 coordinators or more: kill one, hang another, a change after each")
    parser.add_argument("--start-rate", type=float, default=50, help="agents started per second")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="nodeagent-scale-") as scratch:
        for agents in map(int, args.agents.split(",")):
            for database in args.databases.split(","):
                for count in map(int, args.coordinators.split(",")):
                    try:
                        figures = run(agents, database, count, args, Path(scratch))
                    except Exception as exc:  # say where it stopped scaling, and go on with the next run
                        figures = {"agents": agents, "database": database, "coordinators": count,
                                   "failed": f"{type(exc).__name__}: {exc}"}
                    results.append(figures)
                    print(" ".join(f"{k}={v}" for k, v in figures.items()), flush=True)
    print(json.dumps({"benchmark": "scale", "machine_cpus": os.cpu_count(), "runs": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
