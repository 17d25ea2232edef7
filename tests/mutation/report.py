"""Per-module summary of a mutmut run: `python -m tests.mutation.report [MODULE.py ...]`.

Reads mutmut's results in `mutants/` (no mutmut import: the files are JSON and
Python), matches surviving mutants against `tests/mutation/EQUIVALENT.md`, and
prints per module the counts and the score:

    score = detected / (mutants - equivalent), detected = killed + timeout

(a mutant whose tests hang is noticed). A mutant is named stably by its module,
its function (`Class.method` or `function`) and the text of its mutated line,
since mutmut's numbering shifts as code changes. Exit status 1 when a module is
below the target or a mutant is unaccounted for by a test or EQUIVALENT.md.
"""

from __future__ import annotations

import difflib
import json
import re
import sys
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parents[2]
MUTANTS: Final = ROOT / "mutants"
EQUIVALENT: Final = Path(__file__).with_name("EQUIVALENT.md")
TARGET: Final = 95.0

# mutmut 3's exit codes of a mutant's test run (mutmut/stats.py); anything else is suspicious.
STATUS: Final = {
    1: "killed",
    3: "killed",
    37: "type error",  # rejected by `mypy --strict` (type_check_command): never runs its tests
    0: "survived",
    5: "no tests",
    33: "no tests",
    34: "skipped",
    2: "interrupted",
    36: "timeout",
    24: "timeout",
    -24: "timeout",
    152: "timeout",
    255: "timeout",
    -11: "segfault",
    -9: "segfault",
}
DETECTED: Final = ("killed", "type error", "timeout")
COLUMNS: Final = (
    "killed",
    "type error",
    "timeout",
    "survived",
    "no tests",
    "suspicious",
    "not checked",
)
# An EQUIVALENT.md entry: - `function`: `mutated line` — why it cannot change behaviour
ENTRY: Final = re.compile(r"^- `(?P<function>[^`]+)`: `(?P<line>.+)` — (?P<why>.+)$")


@dataclass(frozen=True)
class Mutant:
    """One mutant: where it is, what it changed, how its tests ended."""

    name: str
    module: str
    function: str
    line: str
    status: str


@dataclass
class ModuleResult:
    """The mutants of one module and which of them are listed as equivalent."""

    module: str
    mutants: list[Mutant] = field(default_factory=list)
    equivalent: list[Mutant] = field(default_factory=list)

    def counts(self) -> Counter[str]:
        """Mutants per status, the equivalent ones not among the survivors."""
        c = Counter(m.status for m in self.mutants)
        for m in self.equivalent:
            c[m.status] -= 1
        c["equivalent"] = len(self.equivalent)
        return c

    def score(self) -> float:
        """Percent of the non-equivalent mutants detected (100 when there are none)."""
        c = self.counts()
        denominator = len(self.mutants) - len(self.equivalent)
        detected = sum(c[status] for status in DETECTED)
        return 100.0 * detected / denominator if denominator else 100.0

    def unaccounted(self) -> list[Mutant]:
        """Mutants neither detected nor listed as equivalent."""
        listed = {m.name for m in self.equivalent}
        return [m for m in self.mutants if m.status not in DETECTED and m.name not in listed]


def configured_modules() -> list[str]:
    """The modules `[tool.mutmut] only_mutate` names in pyproject.toml."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    return list(config["tool"]["mutmut"]["only_mutate"])


def function_of(mangled: str) -> str:
    """`x_verify_entity` -> `verify_entity`; `xǁLogVerifierǁfeed` -> `LogVerifier.feed`."""
    if mangled.startswith("xǁ"):
        return ".".join(mangled[2:].split("ǁ"))
    return mangled.removeprefix("x_")


def mutated_line(mutated_file: list[str], spans: dict[str, list[int]], generated: str) -> str:
    """The text of the line(s) a mutant changed, stripped (several joined with ' / ').

    A mutant that only removes lines (an argument on a line of its own, a `case`
    of a `match`) has no new text: it is named `deleted: ` and the removed lines.
    """
    base = generated.rsplit("__mutmut_", 1)[0]

    def body(name: str) -> list[str]:
        start, end = spans[name]
        lines = mutated_file[start - 1 : end]
        return [line.replace(name, "FUNCTION") for line in lines]

    diff = list(difflib.ndiff(body(base + "__mutmut_orig"), body(generated)))
    changed = [d[2:].strip() for d in diff if d.startswith("+ ")]
    if changed:
        return " / ".join(changed)
    removed = [d[2:].strip() for d in diff if d.startswith("- ")]
    return "deleted: " + " / ".join(removed)


def load_module(module: str) -> list[Mutant]:
    """The mutants of `module` (a path like eventstore/chain.py) with their results."""
    meta_path = MUTANTS / (module + ".meta")
    if not meta_path.exists():
        return []
    meta = json.loads(meta_path.read_text("utf-8"))
    spans = json.loads((MUTANTS / (module + ".spans")).read_text("utf-8"))["spans"]
    source = (MUTANTS / module).read_text("utf-8").splitlines()
    out = []
    seen: Counter[tuple[str, str]] = Counter()
    for name, code in sorted(meta["exit_code_by_key"].items(), key=lambda kv: _order(kv[0])):
        generated = name.rsplit(".", 1)[1]
        function = function_of(generated.rsplit("__mutmut_", 1)[0])
        line = mutated_line(source, spans, generated)
        # the same text made twice in one function (`return True` for two returns): numbered
        seen[(function, line)] += 1
        if seen[(function, line)] > 1:
            line = f"{line} ({seen[(function, line)]})"
        status = "not checked" if code is None else STATUS.get(code, "suspicious")
        out.append(Mutant(name=name, module=module, function=function, line=line, status=status))
    return out


def _order(name: str) -> tuple[str, int]:
    """mutmut's order: by function, then by mutant number (which follows the source)."""
    base, _, number = name.rpartition("__mutmut_")
    return base, int(number)


def equivalent_entries(text: str) -> dict[str, list[tuple[str, str]]]:
    """(function, mutated line) pairs per module section (`## path.py`) of EQUIVALENT.md."""
    entries: dict[str, list[tuple[str, str]]] = {}
    section: str | None = None
    for raw in text.splitlines():
        if raw.startswith("## "):
            section = raw[3:].strip().strip("`")
            entries.setdefault(section, [])
        elif section is not None and (match := ENTRY.match(raw.strip())):
            entries[section].append((match["function"], match["line"]))
    return entries


def build(
    modules: list[str], equivalents: dict[str, list[tuple[str, str]]]
) -> tuple[list[ModuleResult], list[str]]:
    """Each module's mutants with its equivalent ones marked, and the entries matching none."""
    results = []
    stale: list[str] = []
    for module in modules:
        result = ModuleResult(module, load_module(module))
        for function, line in equivalents.get(module, []):
            hits = [
                m
                for m in result.mutants
                if (m.function, m.line) == (function, line) and m.status not in DETECTED
            ]
            if result.mutants and not hits:
                stale.append(f"{module}: `{function}`: `{line}`")
            result.equivalent.extend(hits)
        results.append(result)
    return results, stale


def render(results: list[ModuleResult], stale: list[str]) -> str:
    """One row per module, then every mutant needing a test, then stale entries."""
    head = ("module", "mutants", *COLUMNS, "equivalent", "score")
    rows: list[tuple[str, ...]] = [head]
    for r in results:
        c = r.counts()
        score = f"{r.score():.1f}%" if r.mutants else "no results"
        counts = (str(c[k]) for k in COLUMNS)
        rows.append((r.module, str(len(r.mutants)), *counts, str(c["equivalent"]), score))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.append(f"target: >= {TARGET:.0f}% of the non-equivalent mutants detected in each module")
    for r in results:
        lines.extend(
            f"{m.status}: {m.module}: `{m.function}`: `{m.line}`  ({m.name})"
            for m in r.unaccounted()
        )
        if not r.mutants:
            lines.append(f"{r.module}: no results in mutants/ (make mutate MODULES={r.module})")
    lines.extend(f"in EQUIVALENT.md but not a surviving mutant: {s}" for s in stale)
    return "\n".join(lines)


def to_run(modules: list[str], equivalents: dict[str, list[tuple[str, str]]]) -> list[str]:
    """The mutants of `modules` that EQUIVALENT.md does not list, for `mutmut run NAME ...`.

    A listed mutant survives by definition and would run every test that reaches its
    function (in the hot functions, the whole selection): skipping them is what keeps a
    full run short. `make mutate EQUIVALENTS=1` runs them too, which shows stale lines.
    """
    names: list[str] = []
    for module in modules:
        listed = set(equivalents.get(module, []))
        names.extend(m.name for m in load_module(module) if (m.function, m.line) not in listed)
    return names


def main(argv: list[str]) -> int:
    """Print the report for the modules named (default: all configured); 1 below target.

    With `--to-run` first, print instead the names of the mutants to run, one per line.
    """
    listing = argv[:1] == ["--to-run"]
    modules = argv[1:] if listing else argv
    modules = modules or configured_modules()
    equivalents = equivalent_entries(EQUIVALENT.read_text("utf-8"))
    if listing:
        print("\n".join(to_run(modules, equivalents)))
        return 0
    results, stale = build(modules, equivalents)
    print(render(results, stale))
    return 0 if all(r.mutants and r.score() >= TARGET for r in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
