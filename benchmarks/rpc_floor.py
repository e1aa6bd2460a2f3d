"""oslo.messaging's own cost per RPC call, the floor under the coordinator's CPU per heartbeat.

A server process with one endpoint that answers at once (no verification, no database), served the way the
coordinator serves its topic (nodeagent.wire.rpc, RabbitMQ, the threading executor), and a client process
calling it from several threads, as agents do. With ``--cast``: heartbeats cast as agents now send them, taken
by the coordinator's batch listener (``wire.rpc.heartbeat_listener``, 32 at a time), nothing answered. Printed: the server's CPU per call (user + system, medians of
ROUNDS rounds of CALLS calls, and
beyond what the idle server spends), beside the whole coordinator's figure from ``benchmarks/scale.py``.

Run as root with RabbitMQ up:  .venv/bin/python benchmarks/rpc_floor.py [--calls 2000] [--rounds 3] [--cast]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
import psutil  # noqa: E402

from nodeagent.cli import config  # noqa: E402
from nodeagent.testing.coordinators import TRANSPORT_URL  # noqa: E402
from nodeagent.wire import rpc  # noqa: E402

SERVER = """
import sys, threading
from nodeagent.cli import config
from nodeagent.wire import rpc

class Echo:
    target = rpc.Target(version="1.0")

    @rpc.expose
    def report_state(self, context, sealed):
        return {"status": "alive", "desired_generation": 3}


class Intake:  # what the heartbeat listener hands a batch to: takes them all, asks nobody
    taken = 0

    def take_heartbeats(self, batch):
        Intake.taken += len(batch)
        return []


conf = config.make_conf([sys.argv[1]], with_messaging=True)
if sys.argv[2] == "cast":
    rpc.coordinator_defaults(conf)
    server = rpc.heartbeat_listener(rpc.heartbeat_transport(conf), Intake(), None, rpc.COORDINATOR_PREFETCH)
else:
    server = rpc.rpc_server(rpc.rpc_transport(conf), rpc.Target(topic=sys.argv[2], server="floor"), [Echo()])
server.start()
print("ready", flush=True)
for _ in sys.stdin:  # until the benchmark closes it: each line asks how many heartbeats were taken
    print(Intake.taken, flush=True)
server.stop()
server.wait()
"""
# About the size of an agent's signed heartbeat.
SEALED = {"payload": {"node": "sim0001", "seq": 1, "status": {"generation": 3, "counts": {"in_sync": 14}},
                      "health": {"load": [0.5, 0.4, 0.3]}, "events": []}, "signature": "s" * 88, "key": "k" * 44}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=8, help="client threads calling at once")
    parser.add_argument("--idle", type=float, default=10, help="seconds the idle server is measured")
    parser.add_argument("--rate", type=float, default=0, help="calls per second (0: as fast as answered)")
    parser.add_argument("--cast", action="store_true", help="heartbeats cast to the batch listener, not called")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rpc-floor-") as scratch:
        conf_file = Path(scratch) / "floor.conf"
        conf_file.write_text(f"[DEFAULT]\ntransport_url = {TRANSPORT_URL}\n"
                             f"control_exchange = floor{uuid.uuid4().hex[:8]}\n")
        topic = "floor"
        server = subprocess.Popen([sys.executable, "-c", SERVER, str(conf_file), "cast" if args.cast else topic],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

        def taken() -> int:
            server.stdin.write("?\n")
            server.stdin.flush()
            return int(server.stdout.readline())

        try:
            assert server.stdout.readline().strip() == "ready"
            conf = config.make_conf([str(conf_file)], with_messaging=True)
            if args.cast:
                cast = rpc.heartbeat_sender(rpc.heartbeat_transport(conf), "sim0001")
                send = lambda: cast(SEALED)  # noqa: E731
            else:
                client = rpc.oslo_messaging.get_rpc_client(rpc.rpc_transport(conf), rpc.Target(topic=topic,
                                                                                              version="1.0"))
                send = lambda: client.call({}, "report_state", sealed=SEALED)  # noqa: E731
            process = psutil.Process(server.pid)
            with ThreadPoolExecutor(args.threads) as pool:
                list(pool.map(lambda _: send(), range(200)))  # warm
                idle_before = sum(process.cpu_times()[:2])
                time.sleep(args.idle)
                idle = (sum(process.cpu_times()[:2]) - idle_before) / args.idle  # CPU seconds per second
                per_call, marginal, rates = [], [], []
                for _ in range(args.rounds):
                    before, started, done = sum(process.cpu_times()[:2]), time.monotonic(), taken()

                    def call(number: int, started: float = started) -> None:
                        if args.rate:  # paced as a fleet reports: each call at its slot
                            time.sleep(max(0.0, started + number / args.rate - time.monotonic()))
                        send()
                    list(pool.map(call, range(args.calls)))
                    while args.cast and taken() < done + args.calls:  # cast: until the listener took them all
                        time.sleep(0.01)
                    elapsed = time.monotonic() - started
                    spent = sum(process.cpu_times()[:2]) - before
                    per_call.append(spent / args.calls)
                    marginal.append((spent - idle * elapsed) / args.calls)
                    rates.append(args.calls / elapsed)
        finally:
            server.stdin.close()
            server.wait(timeout=30)
    figures = {"mode": "cast, in batches" if args.cast else "call", "rate": args.rate or "max",
               "server_cpu_ms_per_call": round(1000 * statistics.median(per_call), 3),
               "marginal_cpu_ms_per_call": round(1000 * statistics.median(marginal), 3),
               "idle_cpu_percent": round(100 * idle, 2), "calls_per_s": round(statistics.median(rates), 1)}
    print(f"oslo.messaging floor ({figures['mode']}): {figures['server_cpu_ms_per_call']} ms of server CPU per "
          f"heartbeat ({figures['calls_per_s']}/s, asked {figures['rate']}, from {args.threads} threads; median of "
          f"{args.rounds} rounds of {args.calls}); {figures['marginal_cpu_ms_per_call']} ms beyond the idle "
          f"server's {figures['idle_cpu_percent']} % of a core")
    print(json.dumps({"benchmark": "rpc_floor", **figures, "calls": args.calls, "rounds": args.rounds}))


if __name__ == "__main__":
    main()
