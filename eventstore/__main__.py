"""`python -m eventstore`: the CLI."""

from eventstore.cli import console

console()
