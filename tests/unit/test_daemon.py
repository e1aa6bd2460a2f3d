"""What a process hosting agents owns: its signals (as values, never a forked child's) and log lines that
name the host they are about."""

from __future__ import annotations

import logging
import os
import signal
import threading

from nodeagent.process.daemon import HostFilter, HostLogger, Signals, bind_host


def test_signals_are_read_as_values_in_the_order_they_came():
    signals = Signals(signal.SIGHUP, signal.SIGUSR1)
    try:
        assert signals.wait(timeout=0) is None
        os.kill(os.getpid(), signal.SIGHUP)
        os.kill(os.getpid(), signal.SIGUSR1)
        assert signals.wait(timeout=5) == signal.SIGHUP
        assert signals.wait(timeout=5) == signal.SIGUSR1
        assert signals.wait(timeout=0) is None
    finally:
        signals.close()
    assert signal.getsignal(signal.SIGHUP) == signal.SIG_DFL


def test_a_wake_from_another_thread_ends_a_wait_with_no_signal_and_is_harmless_after_close():
    signals = Signals(signal.SIGUSR2)
    try:
        threading.Timer(0.2, signals.wake).start()
        assert signals.wait() is None  # no timeout: only the wake ends it
        os.kill(os.getpid(), signal.SIGUSR2)
        assert signals.wait(timeout=5) == signal.SIGUSR2  # signals still read after a wake
    finally:
        signals.close()
    signals.wake()  # the agent's stop may come after the process closed its signals: nothing is written


def test_a_signal_to_a_forked_child_is_not_the_parents():
    """pyroute2's namespace helper is a fork of the agent; its parent stops it with SIGTERM."""
    signals = Signals(signal.SIGUSR1)
    try:
        child = os.fork()
        if child == 0:
            os.kill(os.getpid(), signal.SIGUSR1)  # the inherited handler: nothing for the parent to read
            os._exit(0)
        _, status = os.waitpid(child, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert signals.wait(timeout=0.2) is None  # the child has exited: whatever it wrote would be here
        os.kill(os.getpid(), signal.SIGUSR1)
        assert signals.wait(timeout=5) == signal.SIGUSR1
    finally:
        signals.close()


class Hosts(logging.Handler):
    def __init__(self):
        super().__init__()
        self.addFilter(HostFilter("process"))
        self.hosts: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.hosts.append((record.host, record.getMessage()))


def test_log_records_name_the_host_of_their_logger_or_thread_else_the_process():
    logger = logging.getLogger("test_daemon.hosts")
    handler = Hosts()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        logger.info("unbound")
        HostLogger(logger, "node-a").info("through the adapter")

        def bound():
            bind_host("node-b")
            logger.info("from a bound thread")
            HostLogger(logger, "node-c").info("the adapter wins")
        thread = threading.Thread(target=bound)
        thread.start()
        thread.join()
        logger.info("unbound again")  # the binding was the other thread's only
    finally:
        logger.removeHandler(handler)
    assert handler.hosts == [("process", "unbound"), ("node-a", "through the adapter"),
                             ("node-b", "from a bound thread"), ("node-c", "the adapter wins"),
                             ("process", "unbound again")]
