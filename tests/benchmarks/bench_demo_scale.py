"""`eventstore demo --report` wall time per change at 10x the data, against the same at 1x.

Each size runs `demo --report --json` (simulate, then capture the backlog, then
verify both hash chains) in a fresh interpreter, timed around the command
itself (interpreter start and imports excluded), and divided by the changes it
captured. The baseline is the small run (2,000 orders + 20,000 changes) of the
same benchmark run; the figure is the large one (20,000 + 200,000). A feed or
simulator whose per-write cost grew with the number of documents (as the feed's
full-collection scans once made it) shows as a ratio near 10.
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


def _timed(orders: int, changes: int) -> tuple[float, int]:
    """(wall seconds, changes captured) of one `demo --report` in this process."""
    from eventstore.cli import main

    out = io.StringIO()
    started = time.perf_counter()
    code = main(
        ["demo", "--report", "--orders", str(orders), "--changes", str(changes), "--json"], out=out
    )
    seconds = time.perf_counter() - started
    if code != 0:
        raise RuntimeError(f"demo --report exited {code}")
    summary = json.loads(out.getvalue())
    if not summary["verified"]:
        raise RuntimeError("demo --report: the hash chains did not verify")
    return seconds, int(summary["changes"])


def _per_change_us(size: tuple[int, int]) -> float:
    """Microseconds of `demo --report` wall time per captured change, in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.benchmarks.bench_demo_scale", str(size[0]), str(size[1])],
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    seconds, changes = json.loads(done.stdout.strip().splitlines()[-1])
    print(
        f"  demo --report --orders {size[0]} --changes {size[1]}: "
        f"{seconds:.1f} s for {changes:,} changes",
        file=sys.stderr,
        flush=True,
    )
    return float(seconds) / int(changes) * 1e6


def run() -> list[Row]:
    """The small size first (the baseline), then the large one."""
    small = _per_change_us(SMALL)
    large = _per_change_us(LARGE)
    r = ratio(large, small)
    return [
        Row(
            f"demo --report wall time per change, {LARGE[0]:,} orders + {LARGE[1]:,} changes",
            large,
            "µs",
            small,
            r,
            f"<= {TARGET}x the same at {SMALL[0]:,} + {SMALL[1]:,}",
            r is not None and r <= TARGET,
        )
    ]


if __name__ == "__main__":
    print(json.dumps(_timed(int(sys.argv[1]), int(sys.argv[2]))))
