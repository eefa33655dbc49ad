"""The fleet scenario's Locust users: the saturation mix, every outcome written down.

`FleetUser` is `SaturationUser` (every answer checked against what the user did), optionally
paced (`LOADTEST_PAUSE_SECONDS` between requests, for a light load), and every request's outcome,
classified by `loadtests.outcomes`, is appended to the file `LOADTEST_RECORD` names, one line as
it ends, so that `loadtests.fleet` can count each phase of the run (steady, rolling restart,
database restart) apart.
"""

import os
from typing import Any

from locust import constant, events
from locust.contrib.fasthttp import LocustBadStatusCode

from loadtests import outcomes
from loadtests.locustfile import SaturationUser

# Line-buffered, each line written as its request ends; open for the process's whole life (requests
# still ending while Locust quits are written down too).
_record = open(os.environ["LOADTEST_RECORD"], "a", buffering=1)  # noqa: SIM115


class FleetUser(SaturationUser):
    """The saturation user, with the pause between requests the run asks for."""

    wait_time = constant(float(os.environ.get("LOADTEST_PAUSE_SECONDS", "0")))


def _write_down(
    request_type: str,
    name: str,
    response_time: float,
    response: Any,
    exception: BaseException | None,
    start_time: float,
    **_: Any,
) -> None:
    error = getattr(response, "error", None)
    if isinstance(error, LocustBadStatusCode):
        error = None  # an answer, with a status Locust does not take for a success: judged below
    status = int(getattr(response, "status_code", 0) or 0)
    headers = getattr(response, "headers", None) or {}  # none when the transport failed
    body = "" if error is not None else str(getattr(response, "text", "") or "")
    kind = outcomes.classify(
        status,
        str(headers.get("content-type", "")),
        headers.get("retry-after"),
        body,
        error,
        exception is not None,
    )
    if kind == outcomes.OK:
        detail = ""
    elif error is not None:
        detail = f"{type(error).__name__}: {error}"
    else:
        detail = str(exception)
    record = outcomes.Record(start_time, response_time, kind, f"{request_type} {name}", detail)
    _record.write(record.line())


events.request.add_listener(_write_down)  # type: ignore[no-untyped-call]
