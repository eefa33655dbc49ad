"""`python -m loadtests.fleet`: a rolling restart and a database restart of a fleet behind a real
HAProxy, under load, every outcome counted (issue 20; SC-012, FR-020).

It starts (`loadtests.fleet_stack`, all on 127.0.0.1, all stopped by PID however the run ends) an
embedded PostgreSQL, PgBouncer in transaction mode in front of it, `--instances` of
`python -m backend --workers N` through PgBouncer, HAProxy checking `--check-path`, and Locust's
saturation users through HAProxy, each answer checked and classified (`loadtests.outcomes`).
Then, under load: a steady window; `--cycles` rolling restarts (each instance in turn: SIGTERM to
its parent, wait for its exit, a new one on the same port, wait until HAProxy has it back); and a
PostgreSQL restart. One table per phase.

Exit status: 0 when no client saw a failure during the rolling restart and none got HAProxy's own
answer (or no answer) during the database restart (the API's JSON 503 + `Retry-After` is the
right answer then); 1 otherwise; 2 when the run could not be made.
"""

import argparse
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from devtools.haproxy import Checks
from loadtests import outcomes
from loadtests.fleet_stack import (
    DatabaseRestart,
    Fleet,
    Layout,
    Restart,
    keep_logs,
    load,
    started,
)

ROOT = Path(__file__).resolve().parent.parent
STEADY, ROLLING, DATABASE = "steady", "rolling restart", "database restart"
# A request counts in the phase it started in: each phase acts only after this much load of its
# own (so that requests in flight when it acts are its own), and lasts this much after it acted.
LEAD = 1.0
SETTLE = 2.0
# Records before the load counts as running: each user's 10 seed creates, and more.
RECORDS_PER_USER = 12
# What Locust logs when a listener (the outcome recorder) raised: that request went uncounted.
HANDLER_FAILED = "Uncaught exception in event handler"
# HAProxy's counters shown per phase: connection errors, response errors, retries, redispatches.
COUNTERS = {"econ": "conn errors", "eresp": "resp errors", "wretr": "retries", "wredis": "redisp"}


@dataclass(frozen=True)
class Window:
    name: str
    start: float
    end: float


@dataclass
class Result:
    """What a run measured: per phase, what clients saw and what HAProxy did."""

    windows: list[Window] = field(default_factory=list)
    tallies: dict[str, outcomes.Tally] = field(default_factory=dict)
    none_in_rotation: dict[str, float] = field(default_factory=dict)
    counters: dict[str, dict[str, int]] = field(default_factory=dict)
    restarts: list[Restart] = field(default_factory=list)
    database: DatabaseRestart | None = None


def run(
    fleet: Fleet,
    *,
    users: int,
    pause: float,
    steady: float,
    cycles: int,
    outage: float | None,
    record: Path,
) -> Result:
    """The phases under load (`outage` None: no database restart), then their tallies."""
    result = Result()
    with load(fleet, users, pause, record) as locust:
        _wait_for_load(record, users * RECORDS_PER_USER, timeout=60)
        began = time.time()
        time.sleep(steady)
        result.windows.append(Window(STEADY, began, time.time()))
        began = time.time()
        time.sleep(LEAD)
        for _ in range(cycles):
            result.restarts += [fleet.restart(name) for name in fleet.instances.ports]
        time.sleep(SETTLE)
        result.windows.append(Window(ROLLING, began, time.time()))
        if outage is not None:
            began = time.time()
            time.sleep(LEAD)
            result.database = fleet.restart_database(outage)
            time.sleep(SETTLE)
            result.windows.append(Window(DATABASE, began, time.time()))
        if locust.poll() is not None:
            raise RuntimeError(f"Locust exited during the run ({locust.returncode}; locust.log)")
    if HANDLER_FAILED in (fleet.instances.workdir / "locust.log").read_text(errors="replace"):
        raise RuntimeError("the outcome recorder failed: requests went uncounted (locust.log)")
    records = outcomes.read(record)
    timeline = fleet.timeline
    for window in result.windows:
        result.tallies[window.name] = outcomes.Tally.of(records, window.start, window.end)
        result.none_in_rotation[window.name] = timeline.none_in_rotation(window.start, window.end)
        result.counters[window.name] = {
            name: timeline.counter(name, window.start, window.end) for name in COUNTERS
        }
    return result


def _wait_for_load(record: Path, records: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while len(outcomes.read(record)) < records:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the load did not get going within {timeout:g} s (locust.log)")
        time.sleep(0.2)


# --- the report ---------------------------------------------------------------------------------


def phase_table(result: Result) -> str:
    header = (
        f"{'phase':<17} {'s':>5} {'requests':>8} {'ok':>7} {'api 503':>7} "
        f"{'haproxy 502/503/504':>19} {'reset':>5} {'refused':>7} {'timeout':>7} {'wrong':>5} "
        f"{'max ms':>7} {'none up s':>9}  haproxy: " + ", ".join(COUNTERS.values())
    )
    lines = [header, "-" * len(header)]
    for window in result.windows:
        tally = result.tallies[window.name]
        kinds = tally.kinds
        proxy = "/".join(str(kinds[f"{outcomes.PROXY}{code}"]) for code in outcomes.PROXY_STATUSES)
        counters = ", ".join(str(value) for value in result.counters[window.name].values())
        lines.append(
            f"{window.name:<17} {window.end - window.start:>5.1f} {tally.requests:>8} "
            f"{kinds[outcomes.OK]:>7} {kinds[outcomes.API_503]:>7} {proxy:>19} "
            f"{kinds[outcomes.RESET]:>5} {kinds[outcomes.REFUSED]:>7} "
            f"{kinds[outcomes.TIMEOUT]:>7} {kinds[outcomes.WRONG]:>5} {tally.max_ms:>7.0f} "
            f"{result.none_in_rotation[window.name]:>9.2f}  {counters}"
        )
    return "\n".join(lines)


def restart_table(result: Result, fleet: Fleet) -> str:
    """Each restart, in seconds after its SIGTERM."""
    lines = [
        "restarts (s after SIGTERM to the parent): out of HAProxy's rotation, exit (code), new "
        "instance answering, back in rotation; late connections straight to its port: "
        "answered / refused / reset (when)"
    ]
    for restart in result.restarts:
        out = fleet.timeline.out_after(restart.name, restart.signalled)
        late = restart.late
        resets = ", ".join(f"{at:.2f}" for at in restart.resets_after)
        lines.append(
            f"  {restart.name}: out {'-' if out is None else f'{out:.2f}':>5}, "
            f"exit {restart.exited_after:5.2f} ({restart.exit_code}), "
            f"answering {restart.started_after:5.2f}, back {restart.back_after:5.2f}; "
            f"late {late['answered']} / {late['refused']} / {late['reset']}"
            + (f" (at {resets})" if resets else "")
        )
    return "\n".join(lines)


def database_line(database: DatabaseRestart, tally: outcomes.Tally) -> str:
    down = database.started - database.stopped
    return (
        f"database: PostgreSQL stopped and started again {down:.1f} s later; an authenticated "
        f"list through HAProxy answered 200 {database.answered_after:.2f} s after it was back; "
        f"clients got {tally.kinds[outcomes.API_503]} API JSON 503s (Retry-After) and "
        f"{tally.proxy_answers} of HAProxy's own answers"
    )


def verdicts(result: Result) -> list[tuple[bool, str]]:
    found = []
    rolling = result.tallies[ROLLING]
    found.append(
        (
            rolling.failures == 0,
            f"rolling restart: {rolling.failures} client-visible failures "
            f"in {rolling.requests} requests",
        )
    )
    if DATABASE in result.tallies:
        database = result.tallies[DATABASE]
        found.append(
            (
                database.proxy_answers + database.lost == 0,
                f"database restart: {database.proxy_answers} HAProxy answers and "
                f"{database.lost} requests without an answer (the API's JSON 503 is right)",
            )
        )
    return found


def failure_times(result: Result) -> str:
    """When the rolling restart's failures started, in seconds after the SIGTERM before them."""
    when: Counter[str] = Counter()
    for at in sorted(result.tallies[ROLLING].failed_at):
        before = [(n, r) for n, r in enumerate(result.restarts, 1) if r.signalled <= at]
        if before:
            number, restart = before[-1]
            when[f"restart {number} ({restart.name}) +{at - restart.signalled:.1f} s"] += 1
        else:
            when["before the first SIGTERM"] += 1
    return ", ".join(f"{label} x{count}" for label, count in when.items())


def report(result: Result, fleet: Fleet) -> str:
    parts = [phase_table(result), "", restart_table(result, fleet)]
    if result.tallies[ROLLING].failed_at:
        parts.append(f"  rolling restart failures started at: {failure_times(result)}")
    if result.database is not None:
        parts.append(database_line(result.database, result.tallies[DATABASE]))
    for window in result.windows:
        for kind, example in result.tallies[window.name].examples.items():
            count = result.tallies[window.name].kinds[kind]
            parts.append(f"  {window.name}: {kind} x{count}, e.g. {example}")
    parts.append("")
    parts += [f"{'PASS' if passed else 'FAIL'}  {text}" for passed, text in verdicts(result)]
    return "\n".join(parts)


# --- the command --------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.fleet",
        description="Rolling and database restarts of a fleet behind HAProxy, under load.",
    )
    add = parser.add_argument
    add("--app-dir", type=Path, help="serve this checkout's backend (default: this one)")
    add("--check-path", default="/health/ready", help="HAProxy's check (default /health/ready)")
    add("--instances", type=int, default=2, help="backend instances (default 2)")
    add("--workers", type=int, default=2, help="workers per instance (default 2)")
    add("--users", type=int, default=50, help="Locust users through HAProxy (default 50)")
    add("--pause", type=float, default=0.0, help="seconds each user waits between requests")
    add("--steady", type=float, default=5.0, help="seconds of load before the restarts")
    add("--cycles", type=int, default=2, help="rolling restarts of every instance (default 2)")
    add("--drain", type=float, default=5.0, help="SHUTDOWN_DRAIN_SECONDS (default 5)")
    add("--check-inter", type=float, default=1.0, help="HAProxy's check interval (default 1 s)")
    add("--outage", type=float, default=3.0, help="seconds PostgreSQL stays down (default 3)")
    add("--no-database", action="store_true", help="skip the database restart")
    add("--report-dir", type=Path, default=ROOT / "loadtests" / "reports")
    return parser


def _stop_on_sigterm(signum: int, _frame: FrameType | None) -> None:
    """SIGTERM as SystemExit, so that every `finally` stops what it started, as on Ctrl-C."""
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    options = _parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    checks = Checks(path=options.check_path, inter=options.check_inter)
    layout = Layout(options.app_dir, options.instances, options.workers, options.drain, checks)
    app = options.app_dir.resolve().name if options.app_dir else "this checkout"
    print(
        f"fleet: {options.instances} x `python -m backend --workers {options.workers}` ({app}), "
        f"drain {options.drain:g} s, behind HAProxy (GET {checks.path} every {checks.inter:g} s, "
        f"out of rotation within {checks.out_within:g} s), PgBouncer (transaction mode) and "
        f"PostgreSQL; {options.users} users",
        flush=True,
    )
    if options.drain <= checks.out_within:
        print(f"fleet: the drain is not longer than {checks.out_within:g} s: expect failures")
    workdir = Path(tempfile.mkdtemp(prefix="fleet-"))
    logs = options.report_dir / time.strftime("fleet-%Y%m%d-%H%M%S")
    try:
        with started(layout, workdir) as fleet:
            result = run(
                fleet,
                users=options.users,
                pause=options.pause,
                steady=options.steady,
                cycles=options.cycles,
                outage=None if options.no_database else options.outage,
                record=workdir / "outcomes.tsv",
            )
            print()
            print(report(result, fleet))
    except (RuntimeError, OSError, subprocess.SubprocessError) as failure:
        print(f"fleet: {failure}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fleet: interrupted; everything started was stopped", file=sys.stderr)
        return 130
    finally:
        keep_logs(workdir, logs)
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"logs: {logs}")
    return 0 if all(passed for passed, _ in verdicts(result)) else 1


if __name__ == "__main__":
    sys.exit(main())
