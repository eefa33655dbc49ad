"""Conformance mode: the suite's black-box tests, run over real HTTP against any backend URL.

`pytest --base-url URL [--secret-file PATH] [--auth-url URL]` (what `nox -s conformance` runs; the
secret from `BETTER_AUTH_SECRET` unless a file holds it) swaps the `client` fixture's in-process
`TestClient` for a `ConformanceClient` on the URL, and the callers `alice` / `bob` for fresh
random users (tokens minted with the secret, or users signed up through Better Auth). The SAME
test functions run in both modes, so the two cannot drift.

Which tests run: those that ask for the `client` fixture and for nothing that reaches inside our
process (the database, app settings, a second app), and are not marked `internal`. The hardening
suite attacks our own process (fixed user ids, mocked JWKS, the database), so it is internal
except modules marked `blackbox`. IDs proved only by internal tests read "n/a (needs internals)".

Safety against a real deployment: only fresh random user ids; every task created is tracked from
the responses and deleted at the end of the session (also after Ctrl-C: pytest still runs
`pytest_sessionfinish`); at most `--max-requests` requests at no more than `--rate` per second;
`--dry-run` lists the checks and the kinds of requests they send, and sends nothing.

Safety against a hostile or broken server (tests/plugins/bounded_http.py): each request has a
wall-clock deadline (`--request-timeout`) and a 1 MiB answer cap, compressed answers are
refused, redirects are never followed (the Authorization header goes to the URL asked for only),
and the whole run stops after `--max-seconds`: each failure is a FAIL line with a one-line reason.

The secret never travels on a command line (nox echoes its commands into CI logs, `ps` shows
them): it comes from `BETTER_AUTH_SECRET` in the environment or from `--secret-file`, and
`--secret` is refused.
"""

import inspect
import os
import re
import secrets
import threading
import time
import uuid
from collections import defaultdict
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.plugins.bounded_http import BoundedClient, BoundedLoop, TargetError
from tests.support.helpers import Caller, use_signing_secret

# Fixtures that reach inside our own process: a test asking for one is not black-box.
INTERNAL_FIXTURES = frozenset(
    {
        "database_url",
        "db_engine",
        "clean_db",
        "make_settings",
        "settings",
        "app",
        "session_client",
        "make_client",
        "live_backend",
        "caplog",
        "monkeypatch",
        "respx_mock",
    }
)
DEFAULT_ORIGIN = "http://localhost:3000"
SECRET_VARIABLE = "BETTER_AUTH_SECRET"
SECRET_REFUSED = (
    "--secret is refused: a secret on a command line shows in nox's echo (so in CI logs) and in "
    f"`ps`; set {SECRET_VARIABLE} in the environment, or pass --secret-file PATH"
)
# The clean-up after the checks has a bound of its own (each delete has --request-timeout).
CLEANUP_SECONDS = 60.0
_KINDS = re.compile(r"\.(get|post|put|patch|delete|options|request)\(|\bcreate\(")


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("conformance", "conformance mode: check a running backend by URL")
    group.addoption("--base-url", help="check the backend at this URL instead of our own app")
    group.addoption(
        "--secret-file",
        help=f"a file holding its BETTER_AUTH_SECRET (default: ${SECRET_VARIABLE}): mint HS256 "
        "tokens as frontends do",
    )
    group.addoption("--secret", help="refused: use $BETTER_AUTH_SECRET or --secret-file")
    group.addoption(
        "--auth-url", help="a Better Auth server (or mock_auth): sign users up, JWT-plugin tokens"
    )
    group.addoption(
        "--origin",
        help="frontend origin for the CORS checks (default: --auth-url, $BETTER_AUTH_URL, "
        f"{DEFAULT_ORIGIN})",
    )
    group.addoption("--only", help="comma-separated SPEC IDs, e.g. US-1,FR-005 (US-1 = US-1.*)")
    group.addoption("--junit", help="also write a JUnit XML report to this file")
    group.addoption("--dry-run", action="store_true", help="list the checks, send nothing")
    group.addoption("--max-requests", type=int, default=3000, help="request budget (3000)")
    group.addoption("--rate", type=float, default=50.0, help="max requests per second (50)")
    group.addoption(
        "--request-timeout",
        type=float,
        default=10.0,
        help="wall-clock seconds for each request, answer read whole (10)",
    )
    group.addoption(
        "--max-seconds", type=float, default=600.0, help="the whole run stops after this (600)"
    )


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class BudgetExhaustedError(RuntimeError):
    """More requests than `--max-requests`: the run stops sending."""


class RunTimeExhaustedError(RuntimeError):
    """The run took `--max-seconds`: it stops sending."""


# Raised by a check when the run must stop; the plugin then stops the session, saying why.
RUN_STOPPERS = {
    BudgetExhaustedError: "request budget exhausted (--max-requests)",
    RunTimeExhaustedError: "run time exhausted (--max-seconds)",
}


class ConformanceClient:
    """A bounded client on the target (`bounded_http`) with the `TestClient` call surface.

    Every request passes the budget, the run's time bound and the rate limiter; every task a 201
    reports is remembered (URL and the caller's Authorization) until a DELETE removes it, and
    `cleanup` deletes the rest. Redirects are never followed: a 307 is a failure a browser's
    cross-origin fetch would see, and the token goes to no other host.
    """

    def __init__(
        self,
        base_url: str,
        *,
        max_requests: int,
        rate: float,
        request_timeout: float = 10.0,
        max_seconds: float = 600.0,
    ) -> None:
        self._loop = BoundedLoop()
        self._http = self._loop.client(base_url)
        self._origin = origin_of(base_url)
        self._max_requests = max_requests
        self._interval = 1.0 / rate if rate > 0 else 0.0
        self._timeout = request_timeout
        self._max_seconds = max_seconds
        self._ends_at = time.monotonic() + max_seconds
        self._next_at = 0.0
        self._lock = threading.Lock()
        self.sent = 0
        self.created: dict[str, str] = {}  # task URL -> the Authorization that created it

    def _admit(self) -> float:
        """Wait for the request's turn; its deadline (the run's end may be nearer)."""
        with self._lock:
            if self.sent >= self._max_requests:
                raise BudgetExhaustedError(f"request budget of {self._max_requests} exhausted")
            now = time.monotonic()
            if now + self._interval >= self._ends_at:
                raise RunTimeExhaustedError(
                    f"run time of {self._max_seconds:g} s exhausted (--max-seconds)"
                )
            self.sent += 1
            wait, self._next_at = self._next_at - now, max(now, self._next_at) + self._interval
        if wait > 0:
            time.sleep(wait)
        return min(self._timeout, self._ends_at - time.monotonic())

    def send(self, via: BoundedClient, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One admitted, bounded request through `via` (the target's client, or a sign-up's)."""
        deadline = self._admit()
        try:
            return via.request(method, url, deadline=deadline, **kwargs)
        except httpx.LocalProtocolError as error:  # e.g. a header value ending in a space
            pytest.skip(f"not sendable over real HTTP: {error}")

    def elsewhere(self, base_url: str, headers: dict[str, str]) -> BoundedClient:
        """A bounded client of its own (cookies too) on another server, e.g. Better Auth."""
        return self._loop.client(base_url, headers)

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        if httpx.URL(url).is_absolute_url and origin_of(url) != self._origin:
            # E.g. a `Location` a check follows: the caller's token goes to the target only.
            raise TargetError(f"{method} {url[:80]}: not the origin of --base-url; not sent")
        response = self.send(self._http, method, url, **kwargs)
        self._track(method.upper(), response)
        return response

    def _track(self, method: str, response: httpx.Response) -> None:
        path = response.request.url.path.rstrip("/")
        if method == "POST" and response.status_code == 201:
            try:
                task_id = response.json()["id"]
            except (ValueError, KeyError, TypeError):
                return
            if type(task_id) is not int:
                return  # not a task id: a URL made of it could point anywhere
            auth = response.request.headers.get("authorization", "")
            self.created[f"{path}/{task_id}"] = auth
        elif method == "DELETE" and response.status_code in (204, 404):
            self.created.pop(path, None)

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("PUT", url, **kwargs)

    def patch(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("PATCH", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", url, **kwargs)

    def options(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("OPTIONS", url, **kwargs)

    def cleanup(self) -> tuple[int, list[str]]:
        """Delete every task still remembered: outside the budget (it is bounded by them) and
        the run's time, within `CLEANUP_SECONDS` of its own."""
        deleted, left = 0, []
        stop_at = time.monotonic() + CLEANUP_SECONDS
        for url, auth in list(self.created.items()):
            remaining = stop_at - time.monotonic()
            if remaining <= 0:
                left.append(f"{url} (clean-up time ran out)")
                continue
            headers = {"Authorization": auth}
            deadline = min(self._timeout, remaining)
            try:
                status = self._http.request("DELETE", url, deadline=deadline, headers=headers)
            except TargetError as error:
                left.append(f"{url} ({error})")
                continue
            if status.status_code in (204, 404):
                deleted += 1
                self.created.pop(url)
            else:
                left.append(f"{url} ({status.status_code})")
        return deleted, left

    def close(self) -> None:
        self._http.close()
        self._loop.close()


@dataclass
class Target:
    """What the tests run against: our app in-process, or a backend at `base_url`."""

    base_url: str | None = None
    secret: str | None = field(default=None, repr=False)  # a traceback shows no secret
    auth_url: str | None = None
    origin: str = DEFAULT_ORIGIN
    client: ConformanceClient | None = None
    signups: int = 0

    @property
    def conformance(self) -> bool:
        return self.base_url is not None

    def caller(self, name: str, fixed_id: str) -> Caller:
        """In-process the fixed test user; against a URL a fresh random one."""
        if not self.conformance:
            return Caller(fixed_id)
        if self.auth_url:
            return self._sign_up(name)
        return Caller(f"{name}-conformance-{uuid.uuid4().hex}")

    def _sign_up(self, name: str) -> Caller:
        """A new user through Better Auth's HTTP API; its JWT-plugin token from /api/auth/token."""
        assert self.auth_url is not None
        assert self.client is not None
        email = f"conformance-{uuid.uuid4().hex[:16]}@example.com"
        password = secrets.token_urlsafe(18)
        send = self.client.send
        with closing(self.client.elsewhere(self.auth_url, {"Origin": self.origin})) as auth:
            signed_up = send(
                auth,
                "POST",
                "/api/auth/sign-up/email",
                json={"name": f"Conformance {name}", "email": email, "password": password},
            )
            assert signed_up.status_code == 200, (
                f"sign-up: {signed_up.status_code} {signed_up.text}"
            )
            bearer = signed_up.headers.get("set-auth-token")
            session = {"Authorization": f"Bearer {bearer}"} if bearer else {}
            # The session cookie works as well.
            token = send(auth, "GET", "/api/auth/token", headers=session)
            assert token.status_code == 200, f"/api/auth/token: {token.status_code} {token.text}"
        self.signups += 1
        user_id = str(signed_up.json()["user"]["id"])
        return Caller(user_id, token=str(token.json()["token"]))


def secret_from(config: pytest.Config) -> str | None:
    """The target's secret from `--secret-file` or the environment, never a command line."""
    if config.getoption("--secret") is not None:
        raise pytest.UsageError(SECRET_REFUSED)
    path = config.getoption("--secret-file")
    if not path:
        return os.environ.get(SECRET_VARIABLE) or None
    try:
        secret = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or type(error).__name__
        raise pytest.UsageError(f"--secret-file {path}: cannot read it ({reason})") from None
    if not secret:
        raise pytest.UsageError(f"--secret-file {path} is empty")
    return secret


def target_from(config: pytest.Config) -> Target:
    base_url = config.getoption("--base-url")
    if not base_url:
        return Target(origin=DEFAULT_ORIGIN)
    secret, auth_url = secret_from(config), config.getoption("--auth-url")
    if not (secret or auth_url):
        raise pytest.UsageError(
            f"--base-url needs the backend's secret (${SECRET_VARIABLE} in the environment, or "
            "--secret-file PATH) or --auth-url to authenticate"
        )
    origin = (
        config.getoption("--origin")
        or (auth_url and origin_of(auth_url))
        or os.environ.get("BETTER_AUTH_URL")
        or DEFAULT_ORIGIN
    )
    client = ConformanceClient(
        base_url.rstrip("/"),
        max_requests=config.getoption("--max-requests"),
        rate=config.getoption("--rate"),
        request_timeout=config.getoption("--request-timeout"),
        max_seconds=config.getoption("--max-seconds"),
    )
    return Target(base_url, secret, auth_url and auth_url.rstrip("/"), origin_of(origin), client)


# --- the plugin ------------------------------------------------------------------------------


@dataclass
class Outcome:
    status: str  # "passed", "failed", "skipped"
    reason: str = ""


def _wanted(spec_id: str, only: list[str]) -> bool:
    return not only or any(spec_id == o or spec_id.startswith(o + ".") for o in only)


# How pytest names a `TargetError` in a failure line: the reason after it says enough.
_TARGET_ERROR = f"{TargetError.__module__}.{TargetError.__qualname__}: "


def _first_line(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr)
    if report.skipped and isinstance(report.longrepr, tuple):
        text = report.longrepr[2]
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return line.removeprefix("Skipped: ").removeprefix(_TARGET_ERROR)[:160]


class ConformancePlugin:
    """Selection, dry run, the SPEC ID table and the clean-up of conformance mode."""

    def __init__(self, config: pytest.Config, target: Target, spec_ids: list[str]) -> None:
        self.config = config
        self.target = target
        self.spec_ids = spec_ids
        only = config.getoption("--only")
        self.only = [o.strip() for o in only.split(",") if o.strip()] if only else []
        self.internal_ids: set[str] = set()
        self.checks: dict[str, list[str]] = defaultdict(list)  # SPEC ID -> selected node ids
        self.outcomes: dict[str, Outcome] = {}
        self.items: list[pytest.Item] = []
        self.session: pytest.Session | None = None
        if config.getoption("--junit"):
            config.option.xmlpath = config.getoption("--junit")

    @staticmethod
    def ids_of(item: pytest.Item) -> list[str]:
        return [i for marker in item.iter_markers("spec") for i in marker.args]

    @staticmethod
    def is_blackbox(item: pytest.Item) -> bool:
        names = set(getattr(item, "fixturenames", ()))
        defs = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
        ours = "client" in names and defs.get("client") and defs["client"][-1].baseid == "tests"
        in_hardening = "hardening" in Path(str(item.path)).parts
        return bool(
            ours
            and not names & INTERNAL_FIXTURES
            and not item.get_closest_marker("internal")
            and (not in_hardening or item.get_closest_marker("blackbox"))
        )

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(
        self, session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        selected, deselected = [], []
        for item in items:
            ids = [i for i in self.ids_of(item) if i in self.spec_ids]
            if not any(_wanted(i, self.only) for i in ids):
                deselected.append(item)
            elif self.is_blackbox(item):
                selected.append(item)
                for spec_id in ids:
                    self.checks[spec_id].append(item.nodeid)
            else:
                deselected.append(item)
                self.internal_ids.update(ids)
        if deselected:
            config.hook.pytest_deselected(items=deselected)
        items[:] = selected
        self.items = selected

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.session = session

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        # Minting needs the target's secret; without one, such checks skip as not applicable.
        use_signing_secret(self.target.secret)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> bool | None:
        if not self.config.getoption("--dry-run"):
            return None
        write = print
        write(f"\nDRY RUN against {self.target.base_url}: nothing is sent.")
        write(
            f"{len(self.items)} checks; requests at most {self.config.getoption('--max-requests')}"
        )
        for item in self.items:
            source = inspect.getsource(getattr(item, "function", lambda: None))
            params = getattr(getattr(item, "callspec", None), "params", {})
            kinds = sorted(
                {
                    "POST" if m.group(0) == "create(" else m.group(1).upper()
                    for m in _KINDS.finditer(source)
                }
                - {"REQUEST"}
                | ({str(params.get("method", "any method"))} if ".request(" in source else set())
            )
            write(f"  {item.nodeid}  [{', '.join(self.ids_of(item))}]  sends: {', '.join(kinds)}")
        return True

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        known = self.outcomes.get(report.nodeid)
        if report.failed:
            longrepr = str(report.longrepr)
            why = next((w for e, w in RUN_STOPPERS.items() if e.__name__ in longrepr), None)
            if why is not None and self.session is not None:
                self.session.shouldstop = why
            if known is None or known.status != "failed":
                name = report.nodeid.rpartition("::")[2]
                self.outcomes[report.nodeid] = Outcome("failed", f"{name}: {_first_line(report)}")
        elif report.skipped and known is None:
            self.outcomes[report.nodeid] = Outcome("skipped", _first_line(report))
        elif report.when == "call" and report.passed and known is None:
            self.outcomes[report.nodeid] = Outcome("passed")

    def row(self, spec_id: str) -> tuple[str, str]:
        """(status, reason) of one SPEC ID; a story also counts its scenarios' checks."""
        nodes = [
            node
            for checked, ids in self.checks.items()
            if checked == spec_id or checked.startswith(spec_id + ".")
            for node in ids
        ]
        outcomes = [self.outcomes[n] for n in dict.fromkeys(nodes) if n in self.outcomes]
        failed = [o for o in outcomes if o.status == "failed"]
        passed = [o for o in outcomes if o.status == "passed"]
        if failed:
            return "FAIL", f"{failed[0].reason}" + (
                f" (+{len(failed) - 1} more)" if len(failed) > 1 else ""
            )
        if passed:
            return "pass", f"{len(passed)} check(s)"
        if outcomes:
            return "n/a", outcomes[0].reason
        if nodes:
            return "n/a", "not run (interrupted, or the request budget or run time ran out)"
        internal = spec_id in self.internal_ids or any(
            i.startswith(spec_id + ".") for i in self.internal_ids
        )
        return "n/a", "needs internals" if internal else "no black-box check"

    def pytest_terminal_summary(self, terminalreporter: Any, exitstatus: int) -> None:
        if self.config.getoption("--dry-run"):
            return
        write = terminalreporter.write_line
        terminalreporter.section(f"conformance of {self.target.base_url}")
        if exitstatus == pytest.ExitCode.INTERRUPTED:
            write("INTERRUPTED: the table below is partial")
        counts: dict[str, int] = defaultdict(int)
        for spec_id in self.spec_ids:
            if not _wanted(spec_id, self.only):
                continue
            status, reason = self.row(spec_id)
            counts[status] += 1
            write(f"{spec_id:<8} {status:<5} {reason}")
        checks = defaultdict(int)
        for outcome in self.outcomes.values():
            checks[outcome.status] += 1
        client = self.target.client
        write(
            f"checks: {checks['passed']} passed, {checks['failed']} failed, "
            f"{checks['skipped']} not applicable; {client.sent if client else 0} requests sent, "
            f"{self.target.signups} users signed up; {counts['n/a']} SPEC IDs not applicable"
        )
        write(f"{counts['pass']} passed, {counts['FAIL']} failed")

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        client = self.target.client
        if client is None:
            return
        left: list[str] = []
        if client.created:
            deleted, left = client.cleanup()
            print(
                f"\nconformance clean-up: {deleted} task(s) deleted"
                + (f"; could not delete {left}" if left else "")
            )
        client.close()
        if left and session.exitstatus == 0:
            session.exitstatus = 1


# --- the plugin's hooks and fixture (registered by tests/conftest.py's `pytest_plugins`) ---------

_TARGET = pytest.StashKey[Target]()


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "internal: needs our process or database (not black-box)")
    config.addinivalue_line("markers", "blackbox: a hardening module that also runs by URL")
    target = target_from(config)
    config.stash[_TARGET] = target
    if target.conformance:
        from tests.plugins.spec_coverage import spec_ids

        config.pluginmanager.register(ConformancePlugin(config, target, spec_ids()), "conformance")


@pytest.fixture(scope="session")
def target(pytestconfig: pytest.Config) -> Target:
    """Where the tests go: our app in process, or the backend at `--base-url`."""
    return pytestconfig.stash[_TARGET]
