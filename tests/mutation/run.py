"""mutmut's command line, with type errors mapped to mutants by `ast`.

Run it by its path, as the Makefile does (`python tests/mutation/run.py run ...`), never with
`-m` from the project root: that would put the root on `sys.path`, and the mutants' runs
would import the packages from there instead of mutmut's copies in `mutants/`.

With `type_check_command` set, mutmut runs mypy over the mutated copies and then finds the
mutant each error belongs to by parsing every file with an error with libcst and its
position metadata. Over this project's copies (`orders.py` alone is 293,000 lines) that
took about six minutes of every `make mutate`. Python's own parser gives the same line
spans in about twenty seconds. Everything else is mutmut's own.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Sequence
from pathlib import Path

import mutmut.__main__ as mutmut_main
from mutmut.configuration import config
from mutmut.mutation.file_mutation import (
    FailedTypeCheckMutant,
    MutatedMethodLocation,
    group_by_path,
)
from mutmut.type_checking import run_type_checker
from mutmut.utils.file_utils import change_cwd
from mutmut.utils.format_utils import get_mutant_name, is_mutated_method_name


def mutated_functions(path: Path, source: str) -> list[MutatedMethodLocation]:
    """The mutated functions of a module with their lines, as mutmut's libcst visitor finds
    them: the module's functions and its classes' methods, never a function's inner ones."""
    found: list[MutatedMethodLocation] = []

    def visit(body: Sequence[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.ClassDef):
                visit(node.body)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and (
                is_mutated_method_name(node.name)
            ):
                # from the `def` line (not a decorator's), as libcst's position metadata
                last = node.end_lineno or node.lineno
                found.append(MutatedMethodLocation(path, node.name, node.lineno, last))

    visit(ast.parse(source).body)
    return found


def filter_mutants_with_type_checker() -> dict[str, FailedTypeCheckMutant]:
    """mutmut's function of that name, with `mutated_functions` for its libcst visitor."""
    with change_cwd(Path("mutants")):
        errors = run_type_checker(config().type_check_command)
        caught: dict[str, FailedTypeCheckMutant] = {}
        for path, errors_of_file in group_by_path(errors).items():
            functions = mutated_functions(path, path.read_text("utf-8"))
            if not functions:
                continue  # an error outside the mutated modules: mutmut ignores it too
            for error in errors_of_file:
                function = next(
                    (
                        f
                        for f in functions
                        if f.line_number_start <= error.line_number <= f.line_number_end
                    ),
                    None,
                )
                if function is None:
                    raise RuntimeError(
                        f"no mutant holds the type error {error.file_path}:{error.line_number}"
                        f" ({error.error_description})"
                    )
                name = get_mutant_name(
                    path.relative_to(Path(".").absolute()), function.function_name
                )
                caught[name] = FailedTypeCheckMutant(
                    method_location=function, name=name, error=error
                )
        return caught


def main() -> None:
    """mutmut's `cli`, with the mapping above (refused with the project root on `sys.path`)."""
    root = Path(__file__).resolve().parents[2]
    if any(Path(entry or ".").resolve() == root for entry in sys.path):
        sys.exit(
            "run it as `python tests/mutation/run.py`: with the project root on sys.path, the"
            " mutants' runs would import the packages from there, not mutmut's copies"
        )
    # mutmut's `_run` calls the name it imported into its `__main__`
    mutmut_main.filter_mutants_with_type_checker = filter_mutants_with_type_checker  # type: ignore[attr-defined]
    sys.argv[0] = "mutmut"
    mutmut_main.cli()


if __name__ == "__main__":
    main()
