"""The composition root and the `eventstore` command.

`bootstrap` builds the running service from settings (store, source, workers, app);
a module per command group sits on top of it (`capture`, `demo`, `history`,
`projections`, `run`, `serve`). This package is the only place that imports every
layer (core, projections, api); import-linter keeps it so (pyproject.toml).
"""

from eventstore.cli.main import console, main

__all__ = ["console", "main"]
