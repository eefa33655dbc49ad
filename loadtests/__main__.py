"""Entry point for `python -m loadtests` (what `nox -s load` calls)."""

import sys

from loadtests.run import main

sys.exit(main())
