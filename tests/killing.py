"""SIGKILL of a real agent (``nodeagent run``) at random points while it applies, shared by the short
run in CI (tests/functional/test_agent_faults.py) and the long one (benchmarks/sigkill.py).

Each round caches a new generation that rewrites every managed file (contents A and B alternate),
starts the agent, kills it with SIGKILL after a random delay inside the apply window, and looks:
every managed file must be wholly A or wholly B (never torn). A last start must converge: every file
as wanted, no temporary file left anywhere under the root, the status written.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from nodeagent.wire import trust
from nodeagent.kit.files import TEMPORARY_SUFFIX
from nodeagent.testing.waiting import wait_until

FILES, INIS = 30, 3


@dataclass
class KillFigures:
    kills: int = 0
    mid_apply: int = 0      # killed with some files at the new content and some at the old
    torn: list[str] = field(default_factory=list)
    leftovers_after_kill: int = 0
    converged: bool = False
    leftovers_at_end: list[str] = field(default_factory=list)
    apply_window: tuple[float, float] = (0.0, 0.0)


class KilledAgent:
    """An agent's configuration, cache and scratch root under ``directory``; no broker is reachable."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.root = directory / "root"
        self.state = directory / "state"
        self.root.mkdir(parents=True)
        self.state.mkdir(mode=0o700)
        self.key = Ed25519PrivateKey.generate()
        (directory / "coordinator.pub").write_text(trust.public_text(self.key.public_key()))
        self.conf = directory / "agent.conf"
        self.conf.write_text("\n".join([
            "[DEFAULT]", "host = n1", f"state_dir = {self.state}", f"root = {self.root}",
            f"coordinator_public_key = {directory / 'coordinator.pub'}",
            "transport_url = rabbit://guest:guest@127.0.0.1:1/",  # nothing listens: the agent works alone
            "report_interval = 3600", "resync_interval = 3600", ""]))
        self.generation = 0

    def wanted(self, variant: str) -> dict[Path, bytes]:
        found = {self.root / f"etc/neutron/f{i}.conf": (f"{variant}{i}\n" * 25000).encode() for i in range(FILES)}
        for i in range(INIS):
            found[self.root / f"etc/neutron/i{i}.ini"] = ("[DEFAULT]\n" + "".join(
                f"k{j} = {variant}{j}\n" for j in range(50))).encode()
        return found

    def cache(self, variant: str) -> None:
        """Store the next generation (all files at ``variant``) as the agent's accepted document."""
        self.generation += 1
        resources = [{"id": f"f{i}", "driver": "file", "path": f"/etc/neutron/f{i}.conf", "permissions": "0640",
                      "content": f"{variant}{i}\n" * 25000} for i in range(FILES)]
        resources += [{"id": f"i{i}", "driver": "ini", "path": f"/etc/neutron/i{i}.ini",
                       "settings": {"DEFAULT": {f"k{j}": f"{variant}{j}" for j in range(50)}}} for i in range(INIS)]
        document = {"node": "n1", "generation": self.generation, "resources": resources}
        sealed = trust.seal({"kind": "document", "document": document}, self.key)
        temporary = self.state / "document.json.test"
        temporary.write_text(json.dumps(sealed))
        os.replace(temporary, self.state / "document.json")

    def start(self) -> subprocess.Popen:
        program = Path(sys.executable).parent / "nodeagent"
        return subprocess.Popen([str(program), "--config-file", str(self.conf), "run"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def variants(self) -> dict[Path, str]:
        """Which variant each managed file holds: 'A', 'B', 'absent' or 'TORN'."""
        found = {}
        a, b = self.wanted("A"), self.wanted("B")
        for path in a:
            try:
                content = path.read_bytes()
            except FileNotFoundError:
                found[path] = "absent"
                continue
            found[path] = "A" if content == a[path] else "B" if content == b[path] else "TORN"
        return found

    def leftovers(self) -> list[str]:
        return [str(p) for p in self.root.rglob("*") if p.name.endswith(TEMPORARY_SUFFIX)
                or p.name.endswith(f"{TEMPORARY_SUFFIX}-link")]

    def status_generation(self) -> int | None:
        try:
            return json.loads((self.state / "status.json").read_text()).get("generation")
        except (OSError, ValueError):
            return None

    def converge(self, variant: str, timeout: float) -> tuple[bool, float, float]:
        """Start, wait until every file is ``variant``; (converged, first change seen, done) in seconds."""
        self.cache(variant)
        before = self.variants()
        started = time.monotonic()
        first_change = done = None
        agent = self.start()
        try:
            while time.monotonic() - started < timeout:
                now = self.variants()
                if first_change is None and now != before:
                    first_change = time.monotonic() - started
                if all(v == variant for v in now.values()) and self.status_generation() == self.generation:
                    done = time.monotonic() - started
                    break
                time.sleep(0.02)
        finally:
            agent.send_signal(signal.SIGTERM)
            try:
                agent.wait(20)
            except subprocess.TimeoutExpired:
                agent.kill()
                agent.wait()
        return done is not None, first_change or 0.0, done or timeout


def run_kills(directory: Path, kills: int, seed: int | None = None, timeout: float = 120) -> KillFigures:
    rng = random.Random(seed)
    agent = KilledAgent(directory)
    figures = KillFigures()
    ok, first, done = agent.converge("A", timeout)  # also measures where the apply happens
    assert ok, "the agent did not apply its cached document at all"
    figures.apply_window = (round(first, 2), round(done, 2))
    variant = "A"
    for _ in range(kills):
        variant = "B" if variant == "A" else "A"
        agent.cache(variant)
        before = agent.variants()
        process = agent.start()
        # Killed at a random point of the apply, timed from its first write (a loaded machine may take
        # seconds more to start the agent than the first run did); now and then just after the apply.
        wait_until(lambda: agent.variants() != before or process.poll() is not None, timeout,
                   "the agent's first write of the new document", step=0.005)
        time.sleep(rng.uniform(0.0, done - first + 0.1))
        process.send_signal(signal.SIGKILL)
        process.wait()
        figures.kills += 1
        seen = agent.variants()
        figures.torn += [str(p) for p, v in seen.items() if v == "TORN"]
        if len(set(seen.values())) > 1:
            figures.mid_apply += 1
        figures.leftovers_after_kill += len(agent.leftovers())
    final = "B" if variant == "A" else "A"
    figures.converged, _, _ = agent.converge(final, timeout)
    figures.leftovers_at_end = agent.leftovers()
    return figures
