"""`python -m loadtests`: start the stack, run Locust headless, print and judge the results.

Exit status 0 when SC-001 (slowest call under `--max-ms`), SC-003 (no failure) and SC-004 (p95
within `--max-p95-ms`) hold and every endpoint stays within its round-trip target; 1 otherwise;
2 when the run itself could not be made. Every server this started is stopped on the way out,
including on Ctrl-C and SIGTERM.
"""

import argparse
import os
import signal
import statistics
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from sqlalchemy.exc import SQLAlchemyError

from loadtests import cpu, footprint, listscale, report, roundtrips, stack

ROOT = Path(__file__).resolve().parent.parent
LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"
USER_CLASSES = {"saturation": "SaturationUser", "journey": "JourneyUser", "creates": "CreateUser"}
KEY_MODES = ("alternate", "none", "all")


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
    add(
        "--list-sizes",
        default="10,100,1000",
        help="tasks per user for the list-latency measurement (default 10,100,1000)",
    )
    add("--no-list-scaling", action="store_true", help="skip the list-latency measurement")
    add(
        "--app-dir",
        type=Path,
        action="append",
        help="serve the backend of this checkout instead of this one; give it twice (old, new)"
        " to compare two checkouts in one run, back to back",
    )
    add(
        "--variant",
        action="append",
        metavar="LABEL:KEY=VALUE,...",
        help="backend environment of one variant, e.g. 'redis:RATE_LIMIT_PER_MINUTE=1000000,"
        "RATE_LIMIT_STORAGE_URL=redis' (`redis` starts a throw-away Redis); give it several"
        " times to compare variants in one run, like --app-dir",
    )
    add(
        "--idempotency-keys",
        choices=KEY_MODES,
        action="append",
        help="which creates send an Idempotency-Key: every other one (default), none or all;"
        " give it twice (none, all) to run each in turn, like --app-dir",
    )
    add("--rounds", type=int, default=1, help="runs per --app-dir, alternating (default 1)")
    add("--report-dir", type=Path, default=ROOT / "loadtests" / "reports")
    return parser


@dataclass(frozen=True)
class Outcome:
    """What one run measured, for the comparison of several runs."""

    app: str
    aggregate: report.Row
    cpu_ms: float | None
    """Server CPU per completed request, in ms (None when the backend was not started here)."""
    status: int


def _stop_on_sigterm(signum: int, _frame: FrameType | None) -> None:
    """Turn SIGTERM into SystemExit so `finally` blocks stop the servers as on Ctrl-C."""
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    options = _parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    options.report_dir.mkdir(parents=True, exist_ok=True)
    latency = f"{options.latency_ms:g}ms"
    base = f"{options.scenario}-{options.users}u-{latency}"
    app_dirs: list[Path | None] = options.app_dir or [None]
    variants = [_variant(text) for text in options.variant or []] or [("", {})]
    key_modes: list[str] = options.idempotency_keys or [KEY_MODES[0]]
    runs = [
        (app_dir, variant, keys)
        for app_dir in app_dirs
        for variant in variants
        for keys in key_modes
    ]
    series = len(runs) > 1 or options.rounds > 1
    outcomes: list[Outcome] = []
    try:
        for round_ in range(1, options.rounds + 1):
            for index, (app_dir, (label, env), keys) in enumerate(runs, 1):
                app = f"{index}:{label or (app_dir or ROOT).resolve().name}"
                if len(key_modes) > 1:
                    app += f" keys={keys}"
                prefix = options.report_dir / base
                if series:
                    prefix = prefix.with_name(f"{base}-app{index}-round{round_}")
                    print(f"\n=== round {round_}, app {app} ({app_dir or ROOT})", flush=True)
                outcome = _run(options, app, app_dir, env, keys, prefix)
                if outcome.status == 2:
                    return 2
                outcomes.append(outcome)
    except KeyboardInterrupt:
        print("loadtests: interrupted; everything started was stopped", file=sys.stderr)
        return 130
    if series:
        print()
        print(comparison(outcomes))
    return max(outcome.status for outcome in outcomes)


def _variant(text: str) -> tuple[str, dict[str, str]]:
    """`LABEL:KEY=VALUE,KEY=VALUE` as (label, environment)."""
    label, _, settings = text.partition(":")
    pairs = [item.partition("=") for item in settings.split(",") if item]
    if not label or any(not key or not sep for key, sep, _ in pairs):
        raise SystemExit(f"loadtests: --variant {text!r}: expected LABEL:KEY=VALUE,...")
    return label, {key: value for key, _, value in pairs}


def _run(
    options: argparse.Namespace,
    app: str,
    app_dir: Path | None,
    env: dict[str, str],
    keys: str,
    prefix: Path,
) -> Outcome:
    """One run on a freshly started stack (fresh database too: checkouts may differ in schema)."""
    try:
        with stack.started(
            target=options.target,
            database_url=options.database_url,
            latency_ms=options.latency_ms,
            workers=options.workers,
            sign_in=options.sign_in == "mock-auth",
            app_dir=app_dir,
            env=env,
        ) as running:
            if running.secret is None and running.auth_url is None:
                print(
                    "loadtests: set BETTER_AUTH_SECRET to mint tokens for --target", file=sys.stderr
                )
                return Outcome(app, _NO_ROW, None, 2)
            pid = running.backend_pid
            cpu_before = cpu.tree_seconds(pid) if pid else 0.0
            _locust(options, running, keys, prefix)
            cpu_seconds = cpu.tree_seconds(pid) - cpu_before if pid else None
            if pid:
                print(footprint.line(pid, running.database_url), flush=True)
            if running.exited():
                raise RuntimeError(f"{', '.join(running.exited())} exited during the run")
            rows, aggregate = report.read_stats(Path(f"{prefix}_stats.csv"))
            trips = None if options.no_roundtrips else _roundtrips(options, running)
            scaling = None if options.no_list_scaling else _list_scaling(options, running)
    except (RuntimeError, OSError, ValueError) as exc:
        print(f"loadtests: {exc}", file=sys.stderr)
        return Outcome(app, _NO_ROW, None, 2)
    cpu_ms = 1000 * cpu_seconds / aggregate.requests if cpu_seconds and aggregate.requests else None
    status = _summary(options, prefix, rows, aggregate, trips, scaling, cpu_ms)
    return Outcome(app, aggregate, cpu_ms, status)


_NO_ROW = report.Row("all", "", 0, 0, 0, 0, 0, 0, 0)


def _locust(options: argparse.Namespace, running: stack.Stack, keys: str, prefix: Path) -> None:
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
    env["LOADTEST_IDEMPOTENCY_KEYS"] = keys
    if running.secret:
        env["LOADTEST_SECRET"] = running.secret
    if running.auth_url:
        env["LOADTEST_AUTH_URL"] = running.auth_url
    print(
        f"loadtests: {options.scenario}, {options.users} users for {options.duration} against "
        f"{running.target} (+{options.latency_ms:g} ms per database round trip; "
        f"creates' Idempotency-Key: {keys})",
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


def _list_scaling(
    options: argparse.Namespace, running: stack.Stack
) -> list[listscale.Latency] | None:
    if running.database_url is None or running.secret is None:
        print("loadtests: list latency not measured (needs --database-url and the secret)")
        return None
    sizes = [int(size) for size in options.list_sizes.split(",")]
    return listscale.measure(running.target, running.secret, running.database_url, sizes, 200)


def _summary(
    options: argparse.Namespace,
    prefix: Path,
    rows: list[report.Row],
    aggregate: report.Row,
    trips: list[roundtrips.RoundTrips] | None,
    scaling: list[listscale.Latency] | None,
    cpu_ms: float | None,
) -> int:
    print()
    print(report.table(rows, aggregate))
    print(report.headline(aggregate, cpu_ms))
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
    if scaling is not None:
        print()
        print(listscale.table(scaling))
        checks.append(report.Check("list latency flat in tasks/user", *listscale.flat(scaling)))
    print()
    for check in checks:
        print(f"{'PASS' if check.passed else 'FAIL'}  {check.criterion}: {check.detail}")
    print(f"reports: {prefix}_stats.csv, {prefix}.html")
    return 0 if all(check.passed for check in checks) else 1


def comparison(outcomes: Sequence[Outcome]) -> str:
    """Every run, then the median per app and its ratio to the first app's (the baseline)."""
    header = (
        f"{'app':<22} {'rps':>8} {'p50':>5} {'p95':>5} {'p99':>5} {'fails':>6} "
        f"{'cpu ms/req':>10} {'rps x':>6} {'cpu x':>6}"
    )
    lines = ["comparison (times in ms; x = median over rounds / first app's median)", header]
    lines.append("-" * len(header))
    apps = list(dict.fromkeys(outcome.app for outcome in outcomes))
    medians: dict[str, tuple[float, float | None]] = {}
    for app in apps:
        runs = [outcome for outcome in outcomes if outcome.app == app]
        cpus = [run.cpu_ms for run in runs if run.cpu_ms is not None]
        medians[app] = (
            statistics.median(run.aggregate.rps for run in runs),
            statistics.median(cpus) if cpus else None,
        )
    base_rps, base_cpu = medians[apps[0]]
    for outcome in outcomes:
        lines.append(_comparison_line(outcome.app, outcome.aggregate, outcome.cpu_ms))
    lines.append("-" * len(header))
    for app in apps:
        rps, cpu_ms = medians[app]
        rps_x = f"{rps / base_rps:.2f}" if base_rps else "-"
        cpu_x = f"{cpu_ms / base_cpu:.2f}" if cpu_ms and base_cpu else "-"
        lines.append(
            f"{'median ' + app:<22} {rps:>8.1f} {'':>5} {'':>5} {'':>5} {'':>6} "
            f"{_cpu_text(cpu_ms):>10} {rps_x:>6} {cpu_x:>6}"
        )
    return "\n".join(lines)


def _comparison_line(app: str, row: report.Row, cpu_ms: float | None) -> str:
    return (
        f"{app:<22} {row.rps:>8.1f} {row.p50:>5.0f} {row.p95:>5.0f} {row.p99:>5.0f} "
        f"{row.failures:>6} {_cpu_text(cpu_ms):>10}"
    )


def _cpu_text(cpu_ms: float | None) -> str:
    return f"{cpu_ms:.3f}" if cpu_ms is not None else "-"
