"""The mutation report names each mutant by the text it changed, and matches EQUIVALENT.md."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.mutation import report, typecheck


def _file(*functions: tuple[str, list[str]]) -> tuple[list[str], dict[str, list[int]]]:
    """A mutated module's lines and the 1-based (start, end) span of each generated function."""
    lines: list[str] = []
    spans: dict[str, list[int]] = {}
    for name, body in functions:
        start = len(lines) + 1
        lines.append(f"def {name}(a, b):")
        lines.extend(body)
        spans[name] = [start, len(lines)]
    return lines, spans


ORIGINAL = ["    return call(", "        a,", "        b,", "    )"]


def test_a_changed_line_is_named_by_its_new_text() -> None:
    lines, spans = _file(
        ("x_f__mutmut_orig", ORIGINAL),
        ("x_f__mutmut_1", ["    return call(", "        None,", "        b,", "    )"]),
    )
    assert report.mutated_line(lines, spans, "x_f__mutmut_1") == "None,"


def test_a_mutant_that_only_deletes_lines_is_named_by_what_it_deleted() -> None:
    lines, spans = _file(
        ("x_f__mutmut_orig", ORIGINAL),
        ("x_f__mutmut_2", ["    return call(", "        a,", "    )"]),
        ("x_f__mutmut_3", ["    return call(", "    )"]),
    )
    assert report.mutated_line(lines, spans, "x_f__mutmut_2") == "deleted: b,"
    assert report.mutated_line(lines, spans, "x_f__mutmut_3") == "deleted: a, / b,"


def test_function_names_are_unmangled() -> None:
    assert report.function_of("x_verify_entity") == "verify_entity"
    assert report.function_of("xǁLogVerifierǁfeed") == "LogVerifier.feed"


def test_equivalent_entries_are_read_per_module_section() -> None:
    text = "\n".join(
        [
            "# Equivalent mutants",
            "    - `function`: `mutated line` — the format, not an entry",
            "## eventstore/a.py",
            "- `f`: `deleted: b,` — why",
            "## `eventstore/b.py`",
            "- `C.m`: `return None` — why",
            "- not an entry",
        ]
    )
    assert report.equivalent_entries(text) == {
        "eventstore/a.py": [("f", "deleted: b,")],
        "eventstore/b.py": [("C.m", "return None")],
    }


def test_equivalent_mutants_leave_the_score_and_the_rest_need_a_test() -> None:
    mutants = [
        report.Mutant("m.x_f__mutmut_1", "m.py", "f", "a", "survived"),
        report.Mutant("m.x_f__mutmut_2", "m.py", "f", "b", "killed"),
        report.Mutant("m.x_f__mutmut_3", "m.py", "f", "c", "survived"),
        report.Mutant("m.x_f__mutmut_4", "m.py", "f", "d", "killed"),
    ]
    result = report.ModuleResult("m.py", mutants)
    result.equivalent.append(mutants[0])
    counts = result.counts()
    assert (counts["killed"], counts["survived"], counts["equivalent"]) == (2, 1, 1)
    assert result.score() == 100.0 * 2 / 3
    assert [m.name for m in result.unaccounted()] == ["m.x_f__mutmut_3"]


def test_a_mutant_mypy_rejects_is_detected_in_a_column_of_its_own() -> None:
    assert report.STATUS[37] == "type error"  # mutmut's exit code for a type-check rejection
    mutants = [
        report.Mutant("m.x_f__mutmut_1", "m.py", "f", "a", "type error"),
        report.Mutant("m.x_f__mutmut_2", "m.py", "f", "b", "killed"),
        report.Mutant("m.x_f__mutmut_3", "m.py", "f", "c", "survived"),
    ]
    result = report.ModuleResult("m.py", mutants)
    counts = result.counts()
    assert (counts["type error"], counts["killed"], counts["survived"]) == (1, 1, 1)
    assert result.score() == 100.0 * 2 / 3
    assert [m.name for m in result.unaccounted()] == ["m.x_f__mutmut_3"]


def test_the_type_check_is_skipped_in_the_first_run_and_passed_through_in_the_second(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MUTMUT_TYPECHECK", "skip")
    assert typecheck.main(["mypy", "eventstore"]) == 0
    assert capsys.readouterr().out == "\n"  # mypy's "no errors": a lone newline
    monkeypatch.delenv("MUTMUT_TYPECHECK")
    # any module's output and exit code come through as they are (`platform` prints one line)
    assert typecheck.main(["platform"]) == 0
    assert capsys.readouterr().out.strip() != ""


def test_the_mutants_to_run_leave_out_those_listed_as_equivalent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--to-run` names every mutant of the modules except the equivalent ones, not yet run."""
    lines, spans = _file(
        ("x_f__mutmut_orig", ["    return a < b"]),
        ("x_f__mutmut_1", ["    return a <= b"]),
        ("x_f__mutmut_2", ["    return a > b"]),
        ("x_f__mutmut_3", ["    return None"]),
    )
    module = tmp_path / "pkg" / "m.py"
    module.parent.mkdir()
    module.write_text("\n".join(lines), "utf-8")
    (tmp_path / "pkg" / "m.py.spans").write_text(json.dumps({"spans": spans}), "utf-8")
    codes = {f"pkg.m.x_f__mutmut_{n}": None for n in (1, 2, 3)}
    (tmp_path / "pkg" / "m.py.meta").write_text(json.dumps({"exit_code_by_key": codes}), "utf-8")
    monkeypatch.setattr(report, "MUTANTS", tmp_path)
    equivalents = {"pkg/m.py": [("f", "return a <= b")], "pkg/other.py": [("f", "return None")]}
    assert report.to_run(["pkg/m.py"], equivalents) == [
        "pkg.m.x_f__mutmut_2",
        "pkg.m.x_f__mutmut_3",
    ]
    assert len(report.to_run(["pkg/m.py"], {})) == 3
    # a listed mutant left unrun counts as equivalent, not as unchecked, and is not stale
    results, stale = report.build(["pkg/m.py"], equivalents)
    assert (results[0].counts()["equivalent"], results[0].counts()["not checked"]) == (1, 2)
    assert stale == []


def test_a_mutants_killer_is_noted_for_the_other_mutants_of_its_function(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from types import SimpleNamespace

    from tests import conftest

    monkeypatch.setattr(conftest, "_ROOT", tmp_path)
    monkeypatch.setenv("MUTANT_UNDER_TEST", "pkg.m.x_f__mutmut_3")
    failed = SimpleNamespace(failed=True, nodeid="tests/t.py::test_kills")
    passed = SimpleNamespace(failed=False, nodeid="tests/t.py::test_passes")
    for report_ in (passed, failed):
        conftest.pytest_runtest_logreport(report_)  # type: ignore[arg-type]
    assert conftest._killers_of("pkg.m.x_f") == {"tests/t.py::test_kills"}
    assert conftest._killers_of("pkg.m.x_g") == set()
    monkeypatch.delenv("MUTANT_UNDER_TEST")  # outside a mutmut child: nothing is noted
    conftest.pytest_runtest_logreport(failed)  # type: ignore[arg-type]
    assert (tmp_path / "mutmut-killers" / "pkg.m.x_f").read_text() == "tests/t.py::test_kills\n"


def test_a_mutants_test_may_take_five_times_its_stats_time_and_never_less_than_three_seconds(
    request: pytest.FixtureRequest,
) -> None:
    from tests import conftest

    assert conftest.mutant_time_limit(None) == 3.0  # not in the stats run
    assert conftest.mutant_time_limit(0.1) == 3.0
    assert conftest.mutant_time_limit(1.5) == 7.5
    item = request.node
    conftest._limit_to(item, 4.0)
    assert item.get_closest_marker("timeout").args == (4.0,)
    conftest._limit_to(item, 9.0)  # a shorter limit already set stays
    assert item.get_closest_marker("timeout").args == (4.0,)
    conftest._limit_to(item, 2.5)
    assert item.get_closest_marker("timeout").args == (2.5,)


@pytest.mark.parametrize(("runs_for", "exits"), [(0.0, []), (0.3, [36])])
def test_a_mutants_test_still_running_at_twice_its_limit_ends_the_run_as_a_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runs_for: float, exits: list[int]
) -> None:
    """pytest-timeout's failure can be swallowed (a supervised worker retries it): a
    watchdog ends the mutant's run with mutmut's timeout code, its test noted as killer."""
    import time
    from types import SimpleNamespace

    from tests import conftest

    monkeypatch.setattr(conftest, "_ROOT", tmp_path)
    monkeypatch.setenv("MUTANT_UNDER_TEST", "pkg.m.x_f__mutmut_3")
    exited: list[int] = []
    monkeypatch.setattr(os, "_exit", exited.append)
    limit = pytest.mark.timeout(0.05).mark
    item = SimpleNamespace(nodeid="tests/t.py::test_hangs", get_closest_marker=lambda _: limit)
    protocol = conftest.pytest_runtest_protocol(item, None)  # type: ignore[arg-type]
    next(protocol)  # type: ignore[call-overload]
    time.sleep(runs_for)
    with pytest.raises(StopIteration):
        protocol.send(True)  # type: ignore[attr-defined]
    time.sleep(0.15)  # a cancelled watchdog stays quiet
    assert exited == exits
    assert conftest._killers_of("pkg.m.x_f") == ({"tests/t.py::test_hangs"} if exits else set())


MUTATED = """
import functools

def x_f__mutmut_orig(a):
    def inner__mutmut_1():  # a function's inner ones are not mutants of their own
        return 1
    return a

def x_f__mutmut_1(a):
    return (
        a + 1
    )

class C:
    @functools.cache
    def xǁCǁm__mutmut_1(self):
        return 2

    async def xǁCǁn__mutmut_2(self):
        return 3

def plain():
    return 4
"""


def test_type_errors_are_mapped_to_the_same_mutants_as_mutmuts_own_visitor() -> None:
    import libcst as cst
    from mutmut.mutation.file_mutation import MutatedMethodsCollector

    from tests.mutation import run

    path = Path("eventstore/m.py")
    visitor = MutatedMethodsCollector(path)
    cst.MetadataWrapper(cst.parse_module(MUTATED)).visit(visitor)
    assert run.mutated_functions(path, MUTATED) == visitor.found_mutants
    assert [
        (f.function_name, f.line_number_start, f.line_number_end) for f in visitor.found_mutants
    ] == [
        ("x_f__mutmut_orig", 4, 7),
        ("x_f__mutmut_1", 9, 12),
        ("xǁCǁm__mutmut_1", 16, 17),
        ("xǁCǁn__mutmut_2", 19, 20),
    ]


def test_mutmut_runs_by_the_scripts_path_never_with_the_project_root_on_sys_path() -> None:
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    by_path = [sys.executable, "tests/mutation/run.py", "--help"]
    done = subprocess.run(by_path, cwd=root, capture_output=True, text=True, check=False)
    assert (done.returncode, done.stdout.splitlines()[0]) == (
        0,
        "Usage: mutmut [OPTIONS] COMMAND [ARGS]...",
    )
    as_module = [sys.executable, "-m", "tests.mutation.run", "--help"]
    done = subprocess.run(as_module, cwd=root, capture_output=True, text=True, check=False)
    assert done.returncode == 1 and "run it as `python tests/mutation/run.py`" in done.stderr
