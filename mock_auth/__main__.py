"""Entry point for `python -m mock_auth`."""

import sys

from mock_auth.cli import main

sys.exit(main())
