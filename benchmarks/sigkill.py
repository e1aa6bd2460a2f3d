"""The long SIGKILL run: a real agent killed at random points while it applies, many times.

Prints the kills, how many landed mid-apply (some files new, some old), torn files (must be 0),
temporary files found right after a kill (removed by the next start), whether the last start
converged with no leftover, then one JSON line. Run as root from the repository (no broker needed):

    .venv/bin/python benchmarks/sigkill.py [KILLS] [SEED]     # default 300 kills
"""

from __future__ import annotations

import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.killing import run_kills  # noqa: E402


def main() -> int:
    kills = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else None
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as scratch:
        figures = run_kills(Path(scratch), kills, seed)
    print(f"apply window after start: {figures.apply_window[0]:.2f} s to {figures.apply_window[1]:.2f} s")
    print(f"kills: {figures.kills}, mid-apply: {figures.mid_apply}, torn files: {len(figures.torn)}, "
          f"temporary files right after a kill: {figures.leftovers_after_kill}")
    print(f"last start converged: {figures.converged}, leftovers at the end: {len(figures.leftovers_at_end)}")
    print(json.dumps({"benchmark": "sigkill", **dataclasses.asdict(figures), "torn": len(figures.torn),
                      "leftovers_at_end": len(figures.leftovers_at_end),
                      "seconds": round(time.monotonic() - started, 1)}))
    ok = not figures.torn and figures.converged and not figures.leftovers_at_end
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
