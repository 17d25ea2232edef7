"""`make bench`: run every benchmark and print one table (BENCH_JSON: also JSON lines)."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import pkgutil
import sys

from tests import benchmarks
from tests.benchmarks.harness import Row, print_table, write_json


def main() -> int:
    """Run the bench_* modules in name order."""
    rows: list[Row] = []
    for info in sorted(pkgutil.iter_modules(benchmarks.__path__), key=lambda m: m.name):
        if not info.name.startswith("bench_"):
            continue
        module = importlib.import_module(f"tests.benchmarks.{info.name}")
        print(f"running {info.name} ...", file=sys.stderr, flush=True)
        result = module.run()
        if inspect.isawaitable(result):
            result = asyncio.run(result)
        rows.extend(result)
    print_table(rows, sys.stdout)
    write_json(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
