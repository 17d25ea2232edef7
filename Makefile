# Two commands matter: `make demo` and `make test`. Both create the virtual
# environment and install what they need; both can run twice in a row.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck bench clean install mutate

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/eventstore demo

lint: $(STAMP)
	$(BIN)/ruff check eventstore projections api migrations tests
	$(BIN)/ruff format --check eventstore projections api migrations tests
	$(BIN)/lint-imports --no-cache

typecheck: $(STAMP)
	$(BIN)/mypy

# Two test processes (pytest-xdist), each taking whole files: a module's fixtures are built
# once, and the suite takes about 60% of one process's time on a 2-core machine.
test: lint typecheck
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

bench: $(STAMP)
	$(BIN)/python -m tests.benchmarks

# Mutation testing (tests/mutation/README.md), not part of `make test`: a fresh mutmut run over
# the guarantee-bearing modules of pyproject.toml's [tool.mutmut], or MODULES="a.py b.py" only,
# then the per-module report (exit 1 below the target). The mutants EQUIVALENT.md lists are
# not run (each would run every test reaching its function); EQUIVALENTS=1 runs them too.
MODULES ?=
EQUIVALENTS ?=
MUTANT_GLOBS := $(foreach m,$(MODULES),$(subst /,.,$(m:.py=)).*)

# Two mutmut runs: the first writes the mutants and the test stats, then stops on a name that
# matches no mutant (the expected end); the second runs the chosen mutants.
mutate: $(STAMP)  # the test extra installs mutmut
	rm -rf mutants
	@set -f; start=$$(date +%s); export HYPOTHESIS_PROFILE=mutation; \
	export PATH="$(abspath $(BIN)):$$PATH"; \
	MUTMUT_TYPECHECK=skip $(BIN)/python tests/mutation/run.py run 'no.mutant.has.this.name' > mutants.log 2>&1; \
	grep -q 'nothing matches' mutants.log || { tail -c 4000 mutants.log; exit 1; }; \
	if [ -n "$(EQUIVALENTS)" ]; then names="$(MUTANT_GLOBS)"; \
	else names=$$($(BIN)/python -m tests.mutation.report --to-run $(MODULES)) || exit 1; fi; \
	echo "mutmut: mutants written, stats taken in $$(( $$(date +%s) - start )) s; running $$(echo $$names | wc -w) mutants"; \
	$(BIN)/python tests/mutation/run.py run $$names >> mutants.log 2>&1 || { tail -c 4000 mutants.log; exit 1; }; \
	echo "mutmut run: $$(( $$(date +%s) - start )) s wall (log: mutants.log)"
	$(BIN)/python -m tests.mutation.report $(MODULES)

clean:
	rm -rf $(VENV) build *.egg-info mutants mutants.log
