"""`python -m eventstore.cli`: the CLI."""

import sys

from eventstore.cli.main import main

sys.exit(main())
