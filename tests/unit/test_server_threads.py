"""The RPC server's threads (``rpc.ServerThreads``): every submitted call runs, at most ``max_workers`` at once,
idle threads are reused, and a shutdown ends them after the work queued before it."""

from __future__ import annotations

import threading

from nodeagent.testing.waiting import wait_until
from nodeagent.wire.rpc import ServerThreads


def test_every_call_runs_on_at_most_max_workers_daemon_threads_and_shutdown_ends_them():
    pool = ServerThreads(max_workers=2)
    release = threading.Event()
    ran: list[tuple[int, str]] = []
    lock = threading.Lock()

    def work(number: int) -> None:
        release.wait(10)
        with lock:
            ran.append((number, threading.current_thread().name))
    before = set(threading.enumerate())
    for number in range(6):
        pool.submit(work, number)
    running = list(set(threading.enumerate()) - before)
    assert len(running) == 2 and all(t.daemon for t in running)
    release.set()
    pool.shutdown(wait=True)
    assert sorted(number for number, _ in ran) == list(range(6))
    assert {name for _, name in ran} <= {"rpc 0", "rpc 1"}
    assert not any(t.is_alive() for t in running)


def test_an_idle_thread_is_reused_and_a_failing_call_does_not_end_it():
    pool = ServerThreads(max_workers=4)
    done = threading.Event()
    names: list[str] = []

    def fail() -> None:
        names.append(threading.current_thread().name)
        done.set()
        raise RuntimeError("a handler's bug")
    pool.submit(fail)
    assert done.wait(10)
    wait_until(lambda: pool._idle._value == 1, timeout=10, what="the thread idle again after the failure")
    done.clear()
    pool.submit(lambda: (names.append(threading.current_thread().name), done.set()))
    assert done.wait(10)
    pool.shutdown(wait=True)
    assert names == ["rpc 0", "rpc 0"]
