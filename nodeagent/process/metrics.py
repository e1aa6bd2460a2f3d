"""Prometheus metrics of the agent and of the coordinator, each on its own registry and address."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, start_http_server

RECONCILE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


def serve(registry: CollectorRegistry, address: str) -> None:
    """Expose ``registry`` on ``host:port`` (an empty address exposes nothing)."""
    if not address:
        return
    host, _, port = address.rpartition(":")
    start_http_server(int(port), addr=host or "127.0.0.1", registry=registry)


class AgentMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.reconcile_seconds = Histogram("nodeagent_reconcile_duration_seconds", "Duration of reconciles",
                                           ["trigger"], buckets=RECONCILE_BUCKETS, registry=self.registry)
        self.resources = Gauge("nodeagent_resources", "Resources by status after the last reconcile",
                               ["status"], registry=self.registry)
        self.drift_events = Counter("nodeagent_drift_events_total", "Drift events found by this agent",
                                    ["driver", "state"], registry=self.registry)
        # The writer's unit only: its pid and command line would be a new series for every change.
        self.drift_by_unit = Counter("nodeagent_drift_by_unit_total",
                                     "Drift events by the systemd unit of the process that made the change "
                                     "('' when no unit, or no writer, was named)", ["unit"], registry=self.registry)
        self.apply_failures = Counter("nodeagent_apply_failures_total", "Resources that failed to apply",
                                      ["driver"], registry=self.registry)
        self.generation = Gauge("nodeagent_generation", "Generation of the document enforced",
                                registry=self.registry)
        self.spooled = Gauge("nodeagent_spooled_events", "Events waiting for the coordinator",
                             registry=self.registry)
        self.rollbacks = Counter("nodeagent_rollbacks_total", "Network changes rolled back, by the probe that failed",
                                 ["probe"], registry=self.registry)


class CoordinatorMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)  # process_cpu_seconds_total: CPU per report on the dashboard
        self.nodes = Gauge("nodeagent_nodes", "Nodes by status (up, down, pending)", ["status"],
                           registry=self.registry)
        self.drift_events = Counter("nodeagent_node_drift_events_total", "Drift events reported",
                                    ["node", "driver", "state"], registry=self.registry)
        self.apply_failures = Counter("nodeagent_node_apply_failures_total", "Failed applies reported",
                                      ["node"], registry=self.registry)
        self.rollbacks = Counter("nodeagent_node_rollbacks_total", "Network changes the nodes rolled back",
                                 ["node"], registry=self.registry)
        self.heartbeat_age = Gauge("nodeagent_node_heartbeat_age_seconds", "Seconds since the last heartbeat",
                                   ["node"], registry=self.registry)
        self.in_sync = Gauge("nodeagent_node_resources_in_sync", "Resources in sync at the last report",
                             ["node"], registry=self.registry)
        self.webhook_failures = Counter("nodeagent_webhook_dead_letters_total", "Alerts no webhook took",
                                        ["url"], registry=self.registry)
        self.report_seconds = Histogram("nodeagent_report_processing_seconds",
                                        "Time to verify and store one agent report", registry=self.registry,
                                        buckets=(.001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2, 5, 10))
        self.heartbeats_cast = Counter("nodeagent_heartbeats_cast_total",
                                       "Heartbeats agents cast, taken in batches (the rest of the reports are called)",
                                       registry=self.registry)
        self.heartbeats_dropped = Counter("nodeagent_heartbeats_dropped_total",
                                          "Cast heartbeats dropped: superseded (a later report of the node was "
                                          "taken first, or the broker delivered it again), stale (queued longer "
                                          "than the down time)", ["reason"], registry=self.registry)
        self.converge_seconds = Histogram("nodeagent_converge_duration_seconds",
                                          "Time to render, check and store the fleet's documents for one change",
                                          registry=self.registry,
                                          buckets=(.1, .25, .5, 1, 2.5, 5, 10, 25, 60, 120))
        self.down_detection_seconds = Histogram("nodeagent_node_down_detection_seconds",
                                                "Silence of a node when it was marked down (agent_down_time + tick)",
                                                registry=self.registry,
                                                buckets=(15, 30, 45, 60, 90, 120, 180, 300, 600))
        self.held_nodes = Gauge("nodeagent_nodes_held", "Nodes whose roles do not render now", registry=self.registry)
        self.rollouts = Gauge("nodeagent_rollouts", "Rollouts by state (running, paused, failed, aborted, "
                              "completed)", ["state"], registry=self.registry)
        self.rollout_failures = Counter("nodeagent_rollout_failures_total",
                                        "Rollouts stopped by a failing node", registry=self.registry)
