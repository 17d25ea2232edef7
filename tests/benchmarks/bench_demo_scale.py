"""`eventstore demo --report` wall time per change at 10x the data, against the same at 1x.

Each size runs `demo --report --json` (simulate, then capture the backlog, then
verify both hash chains) in a fresh interpreter, timed around the command
itself (interpreter start and imports excluded), and divided by the changes it
captured. The baseline is the small run (2,000 orders + 20,000 changes) of the
same benchmark run; the figure is the large one (20,000 + 200,000). A feed or
simulator whose per-write cost grew with the number of documents (as the feed's
full-collection scans once made it) shows as a ratio near 10. The same ratio of
CPU time per change is printed too: on a machine shared with other work, wall
time also measures the others.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time

from tests.benchmarks.harness import Row, ratio

SMALL = (2_000, 20_000)
LARGE = (20_000, 200_000)
TARGET = 1.3


def _timed(orders: int, changes: int) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds, changes captured) of one `demo --report` in this process."""
    from eventstore.cli import main

    out = io.StringIO()
    started, cpu_started = time.perf_counter(), time.process_time()
    code = main(
        ["demo", "--report", "--orders", str(orders), "--changes", str(changes), "--json"], out=out
    )
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    if code != 0:
        raise RuntimeError(f"demo --report exited {code}")
    summary = json.loads(out.getvalue())
    if not summary["verified"]:
        raise RuntimeError("demo --report: the hash chains did not verify")
    return seconds, cpu, int(summary["changes"])


def _per_change_us(size: tuple[int, int]) -> tuple[float, float]:
    """Microseconds of `demo --report` (wall, CPU) per captured change, in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.benchmarks.bench_demo_scale", str(size[0]), str(size[1])],
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    seconds, cpu, changes = json.loads(done.stdout.strip().splitlines()[-1])
    print(
        f"  demo --report --orders {size[0]} --changes {size[1]}: "
        f"{seconds:.1f} s ({cpu:.1f} s CPU) for {changes:,} changes",
        file=sys.stderr,
        flush=True,
    )
    return float(seconds) / int(changes) * 1e6, float(cpu) / int(changes) * 1e6


def run() -> list[Row]:
    """The small size first (the baseline), then the large one."""
    small, small_cpu = _per_change_us(SMALL)
    large, large_cpu = _per_change_us(LARGE)
    rows = []
    for what, value, baseline in (("wall", large, small), ("CPU", large_cpu, small_cpu)):
        r = ratio(value, baseline)
        rows.append(
            Row(
                f"demo --report {what} time per change, {LARGE[0]:,} orders + {LARGE[1]:,} changes",
                value,
                "µs",
                baseline,
                r,
                f"<= {TARGET}x the same at {SMALL[0]:,} + {SMALL[1]:,}",
                r is not None and r <= TARGET,
            )
        )
    return rows


if __name__ == "__main__":
    print(json.dumps(_timed(int(sys.argv[1]), int(sys.argv[2]))))
