"""The benchmark table: every figure next to a floor or baseline measured in the same run."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from typing import TextIO


@dataclass(frozen=True)
class Row:
    """One figure: `ratio` is value / baseline; `target` says what passes, `ok` whether it did."""

    metric: str
    value: float
    unit: str
    baseline: float | None
    ratio: float | None
    target: str
    ok: bool | None


def ratio(value: float, baseline: float | None) -> float | None:
    """value / baseline, or None without a baseline."""
    if baseline is None or baseline == 0:
        return None
    return value / baseline


def print_table(rows: list[Row], out: TextIO) -> None:
    """A plain table: metric, value, baseline, ratio, target, verdict."""
    head = ("metric", "value", "unit", "baseline", "ratio", "target", "ok")
    cells = [head] + [
        (
            r.metric,
            _fmt(r.value),
            r.unit,
            "-" if r.baseline is None else _fmt(r.baseline),
            "-" if r.ratio is None else f"{r.ratio:.3f}",
            r.target,
            "-" if r.ok is None else ("yes" if r.ok else "NO"),
        )
        for r in rows
    ]
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    for n, c in enumerate(cells):
        print("  ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)), file=out)
        if n == 0:
            print("  ".join("-" * w for w in widths), file=out)


def write_json(rows: list[Row]) -> None:
    """When BENCH_JSON names a file, append one JSON object per figure."""
    path = os.environ.get("BENCH_JSON")
    if not path:
        return
    with open(path, "a", encoding="utf-8") as f:
        for r in rows:
            d = asdict(r)
            f.write(
                json.dumps(
                    {k: d[k] for k in ("metric", "value", "unit", "baseline", "ratio", "target")}
                )
                + "\n"
            )


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 1:
        return f"{v:.2f}"
    return f"{v:.4f}"
