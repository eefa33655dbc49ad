"""`python -m loadtests`: start the stack, run Locust headless, print and judge the results.

Exit status 0 when SC-001 (slowest call under `--max-ms`), SC-003 (no failure) and SC-004 (p95
within `--max-p95-ms`) hold and every endpoint stays within its round-trip target; 1 otherwise;
2 when the run itself could not be made. Every server this started is stopped on the way out,
including on Ctrl-C and SIGTERM.
"""

import argparse
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from sqlalchemy.exc import SQLAlchemyError

from loadtests import report, roundtrips, stack

ROOT = Path(__file__).resolve().parent.parent
LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"
USER_CLASSES = {"saturation": "SaturationUser", "journey": "JourneyUser"}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m loadtests", description="Load test the Task API (see loadtests/README.md)."
    )
    add = parser.add_argument
    add("--scenario", choices=sorted(USER_CLASSES), default="saturation")
    add("--users", type=int, default=50, help="concurrent simulated users (default 50)")
    add("--spawn-rate", type=float, default=50, help="users started per second (default 50)")
    add("--duration", default="30s", help="run time, Locust syntax: 30s, 2m (default 30s)")
    add("--latency-ms", type=float, default=0, help="delay added per database round trip")
    add("--workers", type=int, default=2, help="uvicorn worker processes (default 2)")
    add("--locust-processes", type=int, default=1, help="load generator processes (default 1)")
    add("--target", help="an already running backend to load instead of starting one")
    add(
        "--database-url",
        default=os.environ.get("NEON_DATABASE_URL"),
        help="database for the started backend (default NEON_DATABASE_URL, else embedded)",
    )
    add(
        "--sign-in",
        choices=("mint", "mock-auth"),
        default="mint",
        help="mint HS256 tokens as a Next.js frontend does (default), or sign up at a started"
        " mock_auth and use its JWT-plugin (EdDSA, JWKS-verified) tokens",
    )
    add("--max-p95-ms", type=float, default=500, help="SC-004 limit (default 500)")
    add(
        "--max-ms", type=float, default=2000, help="SC-001 limit on the slowest call (default 2000)"
    )
    add("--roundtrip-calls", type=int, default=200, help="requests per endpoint when counting")
    add("--no-roundtrips", action="store_true", help="skip counting statements per request")
    add("--report-dir", type=Path, default=ROOT / "loadtests" / "reports")
    return parser


def _stop_on_sigterm(signum: int, _frame: FrameType | None) -> None:
    """Turn SIGTERM into SystemExit so `finally` blocks stop the servers as on Ctrl-C."""
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    options = _parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    options.report_dir.mkdir(parents=True, exist_ok=True)
    latency = f"{options.latency_ms:g}ms"
    prefix = options.report_dir / f"{options.scenario}-{options.users}u-{latency}"
    try:
        with stack.started(
            target=options.target,
            database_url=options.database_url,
            latency_ms=options.latency_ms,
            workers=options.workers,
            sign_in=options.sign_in == "mock-auth",
        ) as running:
            if running.secret is None and running.auth_url is None:
                print(
                    "loadtests: set BETTER_AUTH_SECRET to mint tokens for --target", file=sys.stderr
                )
                return 2
            _locust(options, running, prefix)
            if running.exited():
                raise RuntimeError(f"{', '.join(running.exited())} exited during the run")
            rows, aggregate = report.read_stats(Path(f"{prefix}_stats.csv"))
            trips = None if options.no_roundtrips else _roundtrips(options, running)
    except (RuntimeError, OSError, ValueError) as exc:
        print(f"loadtests: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("loadtests: interrupted; everything started was stopped", file=sys.stderr)
        return 130
    return _summary(options, prefix, rows, aggregate, trips)


def _locust(options: argparse.Namespace, running: stack.Stack, prefix: Path) -> None:
    """Run Locust headless in its own process (gevent must not patch this one)."""
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless"]
    command += ["--host", running.target, "-u", str(options.users)]
    command += ["-r", str(options.spawn_rate), "-t", options.duration]
    command += ["--csv", str(prefix), "--html", f"{prefix}.html", "--only-summary"]
    command += ["--stop-timeout", "5", "--loglevel", "WARNING"]
    if options.locust_processes > 1:
        command += ["--processes", str(options.locust_processes)]
    command.append(USER_CLASSES[options.scenario])
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    env.pop("LOADTEST_AUTH_URL", None)
    if running.secret:
        env["LOADTEST_SECRET"] = running.secret
    if running.auth_url:
        env["LOADTEST_AUTH_URL"] = running.auth_url
    print(
        f"loadtests: {options.scenario}, {options.users} users for {options.duration} against "
        f"{running.target} (+{options.latency_ms:g} ms per database round trip)",
        flush=True,
    )
    log = Path(f"{prefix}.log")
    with log.open("wb") as output:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            command, env=env, stdout=output, stderr=subprocess.STDOUT
        )
        try:
            process.wait()
        finally:
            if process.poll() is None:
                process.terminate()
                process.wait()
    if not Path(f"{prefix}_stats.csv").exists():
        raise RuntimeError(f"Locust wrote no stats (exit {process.returncode}); see {log}")


def _roundtrips(
    options: argparse.Namespace, running: stack.Stack
) -> list[roundtrips.RoundTrips] | None:
    if running.database_url is None or running.secret is None:
        print("loadtests: round trips not counted (needs --database-url and the secret)")
        return None
    try:
        return roundtrips.measure(
            running.target, running.secret, running.database_url, options.roundtrip_calls
        )
    except SQLAlchemyError as exc:
        reason = str(exc.orig if hasattr(exc, "orig") else exc).strip().splitlines()[0]
        print(f"loadtests: round trips not counted (pg_stat_statements: {reason})")
        return None


def _summary(
    options: argparse.Namespace,
    prefix: Path,
    rows: list[report.Row],
    aggregate: report.Row,
    trips: list[roundtrips.RoundTrips] | None,
) -> int:
    print()
    print(report.table(rows, aggregate))
    for error, count in report.read_failures(Path(f"{prefix}_failures.csv"))[:10]:
        print(f"  failure x{count}: {error}")
    checks = report.judge(aggregate, max_ms=options.max_ms, max_p95_ms=options.max_p95_ms)
    if trips is not None:
        print()
        print(roundtrips.table(trips))
        over = [trip.endpoint.label for trip in trips if not trip.on_target]
        checks.append(
            report.Check("round trips per request", not over, f"over target: {over or 'none'}")
        )
    print()
    for check in checks:
        print(f"{'PASS' if check.passed else 'FAIL'}  {check.criterion}: {check.detail}")
    print(f"reports: {prefix}_stats.csv, {prefix}.html")
    return 0 if all(check.passed for check in checks) else 1
