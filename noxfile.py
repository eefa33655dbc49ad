"""Project commands: `nox -s dev`, `tests`, `lint`, `load`, `fuzz`, `conformance`."""

import os
import shutil
from pathlib import Path

import nox

# Node packages some tests drive (the real better-auth library; the TypeScript client's
# generators and tsc), each pinned by its committed lockfile.
NODE_PACKAGES = ("tests/better_auth", "clients/typescript")

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True
nox.options.default_venv_backend = "venv"


@nox.session
def dev(session: nox.Session) -> None:
    """Backend + mock_auth on the embedded PostgreSQL, with reload; prints working curl lines."""
    session.install("-e", ".[dev]")
    session.run("python", "-m", "devtools.dev")


@nox.session
def tests(session: nox.Session) -> None:
    """The whole suite on real PostgreSQL, with coverage and the SPEC ID table.

    Installs the Node packages the suite drives when npm is there and they are missing; without
    npm those tests skip and say why (under CI=true they fail instead).
    """
    session.install("-e", ".[test]")
    if shutil.which("npm"):
        for prefix in NODE_PACKAGES:
            if not (Path(prefix) / "node_modules").is_dir():
                npm_ci = ("npm", "ci", "--prefix", prefix, "--no-audit", "--no-fund")
                session.run(*npm_ci, external=True)
    # A subset (`nox -s tests -- tests/test_auth.py -x`) is judged by its tests alone: the
    # coverage floor and the SPEC ID table's strictness apply to the whole suite.
    whole = not session.posargs
    session.run(
        "pytest",
        "--cov=backend",
        "--cov-report=term",
        f"--cov-fail-under={95 if whole else 0}",
        *session.posargs,
        env={"SPEC_COVERAGE_STRICT": "1" if whole else "0"},
    )


CONFORMANCE_USAGE = (
    "usage: BETTER_AUTH_SECRET=... nox -s conformance -- --base-url URL "
    "[--secret-file PATH | --auth-url URL]"
)
# nox echoes every command it runs (into CI logs), and `ps` shows command lines to everyone.
ON_A_COMMAND_LINE = (
    "--secret is refused: a secret on a command line shows in nox's echo (so in CI logs) and in "
    "`ps`; set BETTER_AUTH_SECRET in the environment, or pass --secret-file PATH"
)
# Options whose value is a file: given apart (`--junit out.xml`), an existing file looks to
# pytest like a test path, and it then looks for conftest.py beside that file and misses ours.
PATH_OPTIONS = ("--secret-file", "--junit")


def joined_path_options(args: list[str]) -> list[str]:
    """`--junit FILE` as `--junit=FILE`, which pytest never takes for a test path."""
    out: list[str] = []
    for arg in args:
        if out and out[-1] in PATH_OPTIONS:
            out[-1] = f"{out[-1]}={arg}"
        else:
            out.append(arg)
    return out


@nox.session
def conformance(session: nox.Session) -> None:
    """Check ANY backend by URL against docs/SPEC.md, black-box; prints the SPEC ID table.

    `nox -s conformance -- --base-url URL [--secret-file PATH] [--auth-url URL]
    [--only US-1,FR-005] [--origin O] [--junit FILE] [--dry-run] [--max-requests N] [--rate R]
    [--request-timeout S] [--max-seconds S]`: the suite's black-box tests over real HTTP
    (tests/plugins/conformance.py). The backend's secret comes from BETTER_AUTH_SECRET in the
    environment or from --secret-file, never from the command line (refused here before nox
    echoes it). One line per failure (`--tb=line`; add `--tb=short` for tracebacks). Exit 0
    only when every applicable check passes.
    """
    if any(arg == "--secret" or arg.startswith("--secret=") for arg in session.posargs):
        session.error(ON_A_COMMAND_LINE)
    if not any(arg.startswith("--base-url") for arg in session.posargs):
        session.error(CONFORMANCE_USAGE)
    session.install("-e", ".[test]")
    session.run(
        "pytest",
        "-p",
        "no:cacheprovider",
        "-q",
        "--tb=line",
        *joined_path_options(session.posargs),
        env={"SPEC_COVERAGE_STRICT": "0"},
    )


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (lint and format) and mypy."""
    session.install("-e", ".[lint,test]")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy", "backend", "mock_auth", "devtools")
    session.run("python", "-m", "devtools.architecture")  # no import cycle, no oversized class


@nox.session
def migrate(session: nox.Session) -> None:
    """Apply migrations to NEON_DATABASE_URL (or the embedded database)."""
    session.install("-e", ".[dev]")
    session.run("python", "-m", "backend.migrate")


@nox.session
def load(session: nox.Session) -> None:
    """Locust load test (50 users); `nox -s load -- --help` for options."""
    session.install("-e", ".[dev,load]")
    session.run("python", "-m", "loadtests", *session.posargs)


@nox.session
def fuzz(session: nox.Session) -> None:
    """Longer schema fuzzing and state-machine runs than `tests` does."""
    session.install("-e", ".[test]")
    session.run(
        "pytest",
        "tests/hardening",
        "-k",
        "schema or isolation",
        *session.posargs,
        env={
            "FUZZ_EXAMPLES": os.environ.get("FUZZ_EXAMPLES", "2000"),
            "HYPOTHESIS_PROFILE": "fuzz",
        },
    )
