"""What a long-running nodeagent process shares, agent and coordinator alike: logging per host, systemd's
notify and watchdog, signals, and Prometheus metrics."""
