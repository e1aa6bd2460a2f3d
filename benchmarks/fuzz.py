"""The long fuzz run: the properties of tests/fuzzing.py with many examples each, counting failures.

Unlike the short run in CI (tests/unit/test_fuzz.py, which stops at the first failure), every
example runs and every failure is counted, with the first few shown. Prints, per property, the
cases tried, the failures and what the cases came to, then one JSON line. Run as root from the
repository (no broker, no namespace needed):

    .venv/bin/python benchmarks/fuzz.py [EXAMPLES_PER_PROPERTY] [PROPERTY...]   # default 10000, all

Properties: documents, yaml_text, ini_text, rpc_payloads, reports.
"""

from __future__ import annotations

import collections
import json
import logging
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, settings, strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nodeagent.document.registry import DriverRegistry  # noqa: E402
from tests import fuzzing  # noqa: E402

SHOWN_FAILURES = 5


def run(name: str, strategy: st.SearchStrategy, check, examples: int) -> dict:
    outcomes: collections.Counter[str] = collections.Counter()
    failures: list[str] = []

    @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def property_(case):
        try:
            outcomes[check(case)] += 1
        except Exception as exc:  # counted, shown, and the run goes on
            outcomes["failure"] += 1
            if len(failures) < SHOWN_FAILURES:
                failures.append(f"{type(exc).__name__}: {str(exc)[:300]} <- {repr(case)[:300]}\n"
                                + "".join(traceback.format_tb(exc.__traceback__)[-2:]))

    started = time.monotonic()
    property_()
    seconds = time.monotonic() - started
    cases = sum(outcomes.values())
    print(f"{name}: {cases} cases, {outcomes['failure']} failures in {seconds:.0f} s "
          f"({', '.join(f'{n} {k}' for k, n in sorted(outcomes.items()) if k != 'failure')})")
    for failure in failures:
        print("  FAILURE " + failure.replace("\n", "\n    "))
    return {"cases": cases, "failures": outcomes["failure"], "seconds": round(seconds, 1),
            "outcomes": dict(outcomes)}


def main() -> int:
    logging.disable(logging.CRITICAL)  # refusals are logged by design; the figures say what happened
    examples = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    registry = DriverRegistry.from_entry_points()
    with tempfile.TemporaryDirectory() as scratch:
        scratch_dir = Path(scratch)
        roots = iter(range(10**9))

        def document(raw):
            root = scratch_dir / f"doc{next(roots)}"
            root.mkdir()
            try:
                return fuzzing.check_document(raw, registry, root)
            finally:
                shutil.rmtree(root, ignore_errors=True)

        rpc_dir = scratch_dir / "rpc"
        rpc_dir.mkdir()
        target = fuzzing.RpcTarget(rpc_dir)
        coordinator_dir = scratch_dir / "coordinator"
        coordinator_dir.mkdir()
        coordinator = fuzzing.CoordinatorTarget(coordinator_dir)
        ini = st.tuples(fuzzing.INI_TEXT, fuzzing.SECTION, fuzzing.INI_KEY, st.lists(fuzzing.INI_VALUE, max_size=3))
        properties = {
            "documents": ("documents", fuzzing.documents(), document),
            "yaml_text": ("yaml text", fuzzing.YAML_TEXT, fuzzing.check_yaml_text),
            "ini_text": ("ini text", ini, lambda case: fuzzing.check_ini_round_trip(*case)),
            "rpc_payloads": ("rpc payloads to the agent", fuzzing.rpc_payloads(), lambda case: target.check(*case)),
            "reports": ("reports to the coordinator", fuzzing.reports(), lambda case: coordinator.check(*case)),
        }
        chosen = sys.argv[2:] or list(properties)
        figures = {name: run(*properties[name], examples) for name in chosen}
    total = {"cases": sum(f["cases"] for f in figures.values()),
             "failures": sum(f["failures"] for f in figures.values())}
    print(f"total: {total['cases']} cases, {total['failures']} failures")
    print(json.dumps({"benchmark": "fuzz", "examples_per_property": examples, **total, "properties": figures}))
    return 1 if total["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
