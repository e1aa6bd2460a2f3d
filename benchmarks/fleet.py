"""Fleet figures: push-to-converged latency, heartbeats the coordinator absorbs, the agent's idle cost.

* push → converged: the coordinator stores and pushes a new generation of a small
  document to one agent; the clock stops when the agent's report of that generation
  is in the inventory. Median and p99 over PUSHES pushes, beside its floor: a message
  there and back through the broker with bare kombu (a push and its report cross it
  twice), without anything either end does.
* heartbeats/s: THREADS senders call report_state as SENDERS distinct enrolled nodes.
* idle RSS and CPU of the agent daemon over IDLE seconds, beside a bare kombu consumer
  (what oslo.messaging costs on top of the broker client).

Run as root with RabbitMQ up:  .venv/bin/python benchmarks/fleet.py [--pushes 100] [--idle 30]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
import psutil  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from nodeagent.cli import config  # noqa: E402

from nodeagent.wire import rpc as messaging, trust
from nodeagent.fleet.coordinator import Coordinator  # noqa: E402
from nodeagent.testing.lab import Fleet  # noqa: E402
from nodeagent.testing.waiting import wait_until  # noqa: E402

KOMBU_IDLE = """
import kombu, time
with kombu.Connection("amqp://guest:guest@127.0.0.1:5672//") as connection:
    queue = kombu.Queue("nodeagent-bench-idle", auto_delete=True)
    with connection.Consumer(queue, callbacks=[lambda body, message: message.ack()]):
        end = time.time() + 3600
        while time.time() < end:
            try:
                connection.drain_events(timeout=1)
            except TimeoutError:
                pass
"""


BROKER = "amqp://guest:guest@127.0.0.1:5672//"


def broker_round_trips(count: int) -> list[float]:
    """Seconds for a small message to go through the broker to a consumer and its answer back, bare kombu."""
    import kombu

    name = f"nodeagent-bench-rtt-{os.getpid()}"
    there, back = kombu.Queue(f"{name}-there", auto_delete=True), kombu.Queue(f"{name}-back", auto_delete=True)
    stop = threading.Event()

    def echo(connection: kombu.Connection) -> None:
        producer = connection.Producer()

        def answer(body, message) -> None:
            message.ack()
            producer.publish(body, routing_key=back.name, declare=[back])

        with connection.Consumer(there, callbacks=[answer]):
            while not stop.is_set():
                try:
                    connection.drain_events(timeout=0.2)
                except TimeoutError:
                    pass

    samples: list[float] = []
    with kombu.Connection(BROKER) as asking, kombu.Connection(BROKER) as answering:
        got = threading.Event()
        echoer = threading.Thread(target=echo, args=(answering,), daemon=True)
        with asking.Consumer(back, callbacks=[lambda body, message: (message.ack(), got.set())]):
            echoer.start()
            producer = asking.Producer()
            for index in range(count + 5):  # the first five warm the queues up
                got.clear()
                start = time.perf_counter()
                producer.publish({"n": index}, routing_key=there.name, declare=[there])
                while not got.is_set():
                    asking.drain_events(timeout=5)
                if index >= 5:
                    samples.append(time.perf_counter() - start)
        stop.set()
        echoer.join(5)
    return samples


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def wait(check, timeout: float = 30) -> None:
    """The benchmark polls every 2 ms: the figures are latencies."""
    wait_until(check, timeout, step=0.002)


def idle_cost(pid: int, seconds: float) -> tuple[float, float]:
    process = psutil.Process(pid)
    cpu_before = sum(process.cpu_times()[:2])
    time.sleep(seconds)
    cpu = sum(process.cpu_times()[:2]) - cpu_before
    rss = process.memory_info().rss + sum(c.memory_info().rss for c in process.children(recursive=True))
    return rss / 2 ** 20, 100 * cpu / seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pushes", type=int, default=100)
    parser.add_argument("--senders", type=int, default=20)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--idle", type=float, default=30)
    args = parser.parse_args()

    fleet = Fleet(Path(tempfile.mkdtemp(prefix="nodeagent-bench.")), report_interval=5, auto_accept=True)
    try:
        fleet.add_node("bench1", ["eth2"])
        fleet.start("coordinator")
        fleet.start("bench1")
        coordinator = Coordinator(config.make_conf([str(fleet.coordinator_conf)], with_messaging=True))
        wait(lambda: coordinator.inventory.node("bench1") is not None, 60)

        latencies = []
        for index in range(args.pushes):
            document = {"resources": [{"id": "f", "driver": "file", "path": "/etc/neutron/bench.conf",
                                       "content": f"push {index}\n"}]}
            start = time.perf_counter()
            generation = coordinator.desired.set_state("bench1", document)
            wait(lambda: coordinator.inventory.node("bench1").observed_generation >= generation)
            latencies.append(time.perf_counter() - start)

        round_trips = broker_round_trips(args.pushes)

        client = messaging.CoordinatorAPI(coordinator.transport(), timeout=30)
        keys = [Ed25519PrivateKey.generate() for _ in range(args.senders)]
        sequence = itertools.count(1)  # reports carry a rising sequence (replay protection)
        for number, key in enumerate(keys):
            client.report_state(trust.seal({"node": f"sender{number}", "status": {}, "seq": next(sequence)}, key))
        done = [0] * args.threads
        stop = time.monotonic() + args.seconds

        def send(slot: int) -> None:
            number = slot
            while time.monotonic() < stop:
                key = keys[number % len(keys)]
                client.report_state(trust.seal({"node": f"sender{number % len(keys)}", "status": {},
                                                "seq": next(sequence)}, key))
                done[slot] += 1
                number += args.threads
        threads = [threading.Thread(target=send, args=(slot,)) for slot in range(args.threads)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        heartbeats = sum(done) / (time.monotonic() - started)

        agent_rss, agent_cpu = idle_cost(fleet.processes["bench1"].pid, args.idle)
        kombu = subprocess.Popen([sys.executable, "-c", KOMBU_IDLE])
        time.sleep(3)
        kombu_rss, kombu_cpu = idle_cost(kombu.pid, min(args.idle, 10))
        kombu.terminate()
        kombu.wait()
    finally:
        fleet.close()

    print(f"push → converged, one node, {args.pushes} pushes: median {statistics.median(latencies) * 1000:.1f} ms, "
          f"p99 {percentile(latencies, 0.99) * 1000:.1f} ms (goal: median ≤ 20 ms); floor, a message there and back "
          f"through the broker: median {statistics.median(round_trips) * 1000:.1f} ms")
    print(f"heartbeats absorbed by the coordinator: {heartbeats:.0f}/s ({args.threads} threads, "
          f"{args.senders} nodes, {args.seconds:.0f} s)")
    print(f"agent daemon idle: {agent_rss:.0f} MiB RSS, {agent_cpu:.2f} % CPU over {args.idle:.0f} s; "
          f"bare kombu consumer: {kombu_rss:.0f} MiB RSS, {kombu_cpu:.2f} % CPU")
    print(json.dumps({"benchmark": "fleet", "pushes": args.pushes,
                      "push_median_ms": round(statistics.median(latencies) * 1000, 2),
                      "push_p99_ms": round(percentile(latencies, 0.99) * 1000, 2), "goal_push_median_ms": 20,
                      "floor_broker_round_trip_median_ms": round(statistics.median(round_trips) * 1000, 2),
                      "load_average": round(os.getloadavg()[0], 2),
                      "heartbeats_per_s": round(heartbeats, 1), "agent_idle_rss_mib": round(agent_rss, 1),
                      "agent_idle_cpu_percent": round(agent_cpu, 3), "kombu_idle_rss_mib": round(kombu_rss, 1),
                      "kombu_idle_cpu_percent": round(kombu_cpu, 3)}))


if __name__ == "__main__":
    main()
