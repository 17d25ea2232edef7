"""`make bench`: run every benchmark and print one table (BENCH_JSON: also JSON lines).

Each bench_* module runs in a fresh interpreter, so one benchmark's heap, threads
or garbage never slow the next; the rows come back as JSON on stdout.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import inspect
import json
import pkgutil
import subprocess
import sys

from tests import benchmarks
from tests.benchmarks.harness import Row, print_table, write_json

_ROWS_MARK = "BENCH_ROWS "


def run_one(name: str) -> list[Row]:
    """Run one bench module here and return its rows."""
    module = importlib.import_module(f"tests.benchmarks.{name}")
    result = module.run()
    if inspect.iscoroutine(result):
        result = asyncio.run(result)
    return list(result)


def main(argv: list[str]) -> int:
    """Run the bench_* modules in name order, each in its own process (or `--one NAME` here)."""
    if argv[:1] == ["--one"]:
        mine = run_one(argv[1])
        print(_ROWS_MARK + json.dumps([dataclasses.asdict(r) for r in mine]), flush=True)
        return 0
    rows: list[Row] = []
    for info in sorted(pkgutil.iter_modules(benchmarks.__path__), key=lambda m: m.name):
        if not info.name.startswith("bench_"):
            continue
        print(f"running {info.name} ...", file=sys.stderr, flush=True)
        done = subprocess.run(
            [sys.executable, "-m", "tests.benchmarks", "--one", info.name],
            stdout=subprocess.PIPE,
            text=True,
            check=False,
        )
        marked = [line for line in done.stdout.splitlines() if line.startswith(_ROWS_MARK)]
        if done.returncode != 0 or not marked:
            print(f"{info.name} failed (exit {done.returncode})", file=sys.stderr)
            return 1
        rows.extend(Row(**r) for r in json.loads(marked[-1].removeprefix(_ROWS_MARK)))
    print_table(rows, sys.stdout)
    write_json(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
