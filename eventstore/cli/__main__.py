"""`python -m eventstore.cli`: the CLI."""

from eventstore.cli.main import console

console()
