"""A fleet as operators run it, behind a real HAProxy (SC-012, FR-020): two instances of
`python -m backend --workers 2`, HAProxy checking `/health/ready`, PgBouncer in transaction mode
(Neon's `-pooler`) and PostgreSQL, a light load of checked requests through HAProxy. Each instance
restarted once as orchestrators do it: no client sees a failure. PostgreSQL restarted: clients get
the API's JSON 503 with `Retry-After`, never HAProxy's own 503, and service comes back with
nothing restarted. The short version of `python -m loadtests.fleet` (the same code).

Before (c12e880, checked with `/health` as its operator did): a restart cost 502s and resets, and
a database restart took both instances out of rotation (HAProxy's HTML 503s).
"""

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.haproxy import Checks
from loadtests import outcomes
from loadtests.fleet import DATABASE, ROLLING, Result, report, run
from loadtests.fleet_stack import Fleet, Layout, missing_tools, started
from tests.support.helpers import unavailable

DRAIN = 1.5
# Out of rotation within inter + fastinter = 0.7 s of the drain's start: well inside it.
CHECKS = Checks(inter=0.5, fastinter=0.2, downinter=0.25)
# When the last listener closes, a connection the kernel queued after the final accept sweep is
# reset: a race of the backend's (see the report of this change), within this of the drain's end.
CLOSE_RACE = 0.3
SHUTDOWN_TIMEOUT = 20.0


@pytest.fixture(scope="module")
def fleet_run() -> Iterator[tuple[Result, Fleet]]:
    """One run of both phases, shared by the tests that judge each."""
    missing = missing_tools()
    if missing:
        unavailable(f"{' and '.join(missing)} not installed (apt-get install {' '.join(missing)})")
    # Not under pytest's basetemp (0700): PostgreSQL and PgBouncer run as another user.
    workdir = Path(tempfile.mkdtemp(prefix="fleet-test-"))
    try:
        with started(Layout(drain=DRAIN, checks=CHECKS), workdir) as fleet:
            result = run(
                fleet,
                users=8,
                pause=0.02,
                steady=0,
                cycles=1,
                outage=1.0,
                record=workdir / "outcomes.tsv",
            )
            print(report(result, fleet))
            yield result, fleet
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.mark.spec("SC-012", "FR-020")
def test_a_rolling_restart_behind_haproxy_loses_no_request(
    fleet_run: tuple[Result, Fleet],
) -> None:
    result, fleet = fleet_run
    rolling = result.tallies[ROLLING]

    assert rolling.requests > 200
    assert rolling.failures == 0, report(result, fleet)
    # No connection HAProxy made to an instance was reset or closed unanswered.
    assert result.counters[ROLLING]["eresp"] == 0, report(result, fleet)
    assert result.none_in_rotation[ROLLING] == 0
    assert [restart.name for restart in result.restarts] == ["app1", "app2"]
    for restart in result.restarts:
        out = fleet.timeline.out_after(restart.name, restart.signalled)
        assert out is not None
        assert out < DRAIN  # the balancer stopped sending before the instance stopped serving
        assert restart.exit_code == 0
        assert restart.exited_after < SHUTDOWN_TIMEOUT
        # Late connections straight to the port: refused once the drain is over, never
        # accepted and reset (but for the close's instant, above).
        assert restart.late["refused"] > 0
        assert all(abs(at - DRAIN) < CLOSE_RACE for at in restart.resets_after), restart


@pytest.mark.spec("SC-012", "FR-020")
def test_a_database_restart_is_answered_by_the_api_not_the_balancer(
    fleet_run: tuple[Result, Fleet],
) -> None:
    result, fleet = fleet_run
    database = result.tallies[DATABASE]

    assert database.kinds[outcomes.API_503] > 0  # the outage was met, and answered by the API
    assert database.proxy_answers == 0, report(result, fleet)
    assert database.lost == 0, report(result, fleet)
    assert result.none_in_rotation[DATABASE] == 0  # readiness is not the database's health
    assert result.database is not None
    assert result.database.answered_after < 10
    # Back by itself: no instance was started again after the rolling restart.
    assert dict(fleet.instances.started) == {"app1": 2, "app2": 2}
