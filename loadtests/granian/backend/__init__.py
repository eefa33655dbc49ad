"""This checkout's backend, served by granian instead of `python -m backend` (issue 18's choice).

A shim laid out as a checkout for `python -m loadtests --app-dir loadtests/granian`: only
`backend.__main__` is its own; every other `backend.*` module is this checkout's (the package
path goes on to `../../../backend`), so the app measured is exactly the one shipped.
"""

from pathlib import Path

__path__.append(str(Path(__file__).resolve().parents[3] / "backend"))
