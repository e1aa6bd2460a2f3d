"""The Grafana dashboard and the Prometheus rules ask only for metrics the agent or the coordinator exposes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client import generate_latest

from nodeagent.process.metrics import AgentMetrics, CoordinatorMetrics

ETC = Path(__file__).resolve().parents[2] / "etc"
SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created")


def exposed() -> set[str]:
    coordinator = CoordinatorMetrics()
    coordinator.drift_events.labels("n", "ini", "corrected").inc()  # labelled families show once used
    coordinator.apply_failures.labels("n").inc()
    coordinator.rollbacks.labels("n").inc()
    coordinator.webhook_failures.labels("u").inc()
    coordinator.heartbeat_age.labels("n").set(1)
    coordinator.in_sync.labels("n").set(1)
    coordinator.nodes.labels("up").set(1)
    coordinator.rollouts.labels("failed").set(1)
    text = generate_latest(coordinator.registry).decode() + generate_latest(AgentMetrics().registry).decode()
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}


def asked(expression: str) -> set[str]:
    return set(re.findall(r"\b((?:nodeagent|process)_[a-z_]+)", expression))


def test_every_metric_the_dashboard_and_the_alerts_use_is_exposed():
    names = exposed()
    dashboard = json.loads((ETC / "grafana/nodeagent-fleet.json").read_text())
    expressions = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    rules = yaml.safe_load((ETC / "prometheus/nodeagent-alerts.yaml").read_text())
    expressions += [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    assert expressions
    missing = {name for e in expressions for name in asked(e)
               if name not in names and not any(name.endswith(s) and name[:-len(s)] in
                                                {n[:-len(t)] if n.endswith(t) else n for n in names for t in SUFFIXES}
                                                for s in SUFFIXES)}
    assert missing == set()
