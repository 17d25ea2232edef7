"""mutmut's `type_check_command`: `mypy` over the mutated copies, in mutmut's JSON format.

`make mutate` runs mutmut twice (tests/mutation/README.md): the first run only writes the
mutants and the stats, so it sets `MUTMUT_TYPECHECK=skip` and this reports no type errors at
once (mutmut would otherwise spend minutes matching errors to mutants it does not run).
The second run type-checks for real: every mutant `mypy --strict` rejects is reported
`type error` without running its tests.

Usage (from `mutants/`): python -m tests.mutation.typecheck mypy ARGS...
"""

from __future__ import annotations

import os
import subprocess
import sys


def main(argv: list[str]) -> int:
    """Print mypy's JSON lines for `argv` (which starts with `mypy`), or none when skipped."""
    if os.environ.get("MUTMUT_TYPECHECK") == "skip":
        print()  # mypy's own "no errors" output: a lone newline
        return 0
    done = subprocess.run([sys.executable, "-m", *argv], capture_output=True, text=True)
    sys.stdout.write(done.stdout)
    sys.stderr.write(done.stderr)
    return done.returncode


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
