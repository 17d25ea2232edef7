"""The import-linter contracts of pyproject.toml hold, and fail on a violation.

Each test lints a copy of the four packages (in a temporary directory, first on
`sys.path`) with the project's own contracts; the violating tests add one import
to the copy and expect a failed run that reports that contract broken (an import
may break others too: the core importing the root is also a cycle).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("eventstore", "api", "projections", "migrations")
LINT = (
    "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(no_cache=True))"
)


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """The four packages and pyproject.toml, copied (without bytecode) into a temporary directory."""
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def lint(where: Path) -> tuple[int, str]:
    """Run import-linter in `where` (its packages shadow the installed ones): (exit code, output)."""
    done = subprocess.run(
        [sys.executable, "-c", LINT],
        cwd=where,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(where), "PATH": "/usr/bin:/bin", "NO_COLOR": "1", "COLUMNS": "200"},
    )
    return done.returncode, done.stdout + done.stderr


def add_import(copy: Path, module: str, line: str) -> None:
    """Append one import line to a module of the copy."""
    path = copy / (module.replace(".", "/") + ".py")
    path.write_text(path.read_text(encoding="utf-8") + f"\n{line}\n", encoding="utf-8")


def test_the_contracts_hold_for_the_code_as_it_is(copy: Path) -> None:
    code, output = lint(copy)
    assert code == 0, output
    assert "5 kept, 0 broken" in output


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        # the core importing the API
        ("eventstore.history", "import api.problems", "The core imports neither"),
        # the core importing a projection
        ("eventstore.fold", "import projections.orders", "The core imports neither"),
        # the core reaching for the composition root
        ("eventstore.ingester", "import eventstore.cli.bootstrap", "Only the composition root"),
        # the projections reaching up into the API
        ("projections.runner", "import api.services", "The API sits above the projections"),
        # a migration importing the API
        ("migrations.m0001_create_events_collection", "import api", "Migrations import pymongo"),
        # a migration reaching past the store's definitions into the core
        (
            "migrations.m0002_create_event_indexes",
            "import eventstore.ingester",
            "Migrations import pymongo",
        ),
        # a cycle: model is imported by history, and now imports it back
        ("eventstore.model", "import eventstore.history", "No import cycles"),
    ],
)
def test_a_violation_fails_the_lint_naming_its_contract(
    copy: Path, module: str, line: str, contract: str
) -> None:
    add_import(copy, module, line)
    code, output = lint(copy)
    assert code != 0, output
    broken = output.split("Broken contracts", 1)[-1]
    assert contract in broken, output
    assert " 0 broken" not in output
