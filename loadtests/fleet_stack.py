"""The fleet an operator runs, on loopback: PostgreSQL, PgBouncer in transaction mode in front of
it (what Neon's `-pooler` endpoint is), instances of `python -m backend --workers N` on ports of
their own, all through PgBouncer, and HAProxy with health checks in front of them; and what is
done to it under load: an instance restarted as orchestrators do it, the database restarted.

Everything started here is stopped by its PID when the `started()` block ends, however it ends.
"""

import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import jwt
from sqlalchemy.engine import URL

from backend import embedded_db
from devtools.haproxy import Checks, HAProxy, ServerStat, haproxy, haproxy_binary
from devtools.pgbouncer import pgbouncer, pgbouncer_binary
from devtools.servers import Server, backend_server, free_port, terminate
from loadtests.probe import Prober
from loadtests.stack import backend_of

ROOT = Path(__file__).resolve().parent.parent
LOCUSTFILE = Path(__file__).resolve().parent / "fleet_locustfile.py"
# Past the drain and SHUTDOWN_TIMEOUT_SECONDS (20), the supervisor kills what is left within 5 s.
EXIT_TIMEOUT = 40.0
START_TIMEOUT = 60.0
# PgBouncer's `server_login_retry`: after a failed login to the database it answers every client
# with an error for this long (15 s by default) without trying again. Set low, so the recovery
# measured after a database restart is the API's, not the pooler's (docs/OPERATIONS.md).
LOGIN_RETRY = 1.0


@dataclass(frozen=True)
class Layout:
    """What the fleet is made of."""

    app_dir: Path | None = None
    """The checkout whose backend the instances serve (`loadtests.stack.backend_of`); None: this."""
    instances: int = 2
    workers: int = 2
    drain: float = 5.0
    """`SHUTDOWN_DRAIN_SECONDS` of every instance."""
    checks: Checks = field(default_factory=Checks)


@dataclass(frozen=True)
class Restart:
    """One instance restarted: SIGTERM to its parent, its exit, a new one in rotation; times in
    seconds after the SIGTERM."""

    name: str
    signalled: float
    """`time.time()` of the SIGTERM."""
    exited_after: float
    exit_code: int
    started_after: float
    """The new instance answers `/health`."""
    back_after: float
    """HAProxy has the new instance in rotation."""
    late: Counter[str]
    """New connections made straight to the instance's port meanwhile (`loadtests.probe`)."""
    resets_after: list[float]
    """When late connections were reset."""


@dataclass(frozen=True)
class DatabaseRestart:
    stopped: float
    """`time.time()` when the stop began."""
    started: float
    """`time.time()` when PostgreSQL accepted connections again."""
    answered_after: float
    """Seconds from `started` until an authenticated list through HAProxy was a 200 again."""


class Timeline:
    """What HAProxy has in rotation, sampled every 50 ms in a thread of its own."""

    def __init__(self, balancer: HAProxy) -> None:
        self.samples: list[tuple[float, dict[str, ServerStat]]] = []
        self._balancer = balancer
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            try:
                self.samples.append((time.time(), self._balancer.servers()))
            except OSError:
                continue  # the runtime API is busy or gone: the next sample will tell

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def none_in_rotation(self, start: float, end: float) -> float:
        """Seconds within [start, end) when HAProxy had no server in rotation."""
        total = 0.0
        pairs = zip(self.samples, self.samples[1:], strict=False)
        for (at, servers), (following, _) in pairs:
            if start <= at < end and not any(s.in_rotation for s in servers.values()):
                total += following - at
        return total

    def out_after(self, name: str, since: float) -> float | None:
        """Seconds from `since` until HAProxy first had `name` out of rotation."""
        for at, servers in self.samples:
            if at >= since and not servers[name].in_rotation:
                return at - since
        return None

    def counter(self, name: str, start: float, end: float) -> int:
        """How much HAProxy's counter `name`, summed over the servers, grew in [start, end)."""
        within = [servers for at, servers in self.samples if start <= at < end]
        if len(within) < 2:
            return 0
        first, last = within[0], within[-1]
        return sum(last[s].counters.get(name, 0) - first[s].counters.get(name, 0) for s in last)


@dataclass
class Instances:
    """The backend instances, each on a port of its own that outlives its restarts."""

    layout: Layout
    workdir: Path
    env: dict[str, str]
    ports: dict[str, int]
    servers: dict[str, Server] = field(default_factory=dict)
    started: Counter[str] = field(default_factory=Counter)

    def start(self, name: str) -> Server:
        """A new instance `name` on its port, started and answering (its log: `app1-2.log` for
        the second `app1`)."""
        self.started[name] += 1
        log = self.workdir / f"{name}-{self.started[name]}.log"
        port, workers = self.ports[name], self.layout.workers
        if self.layout.app_dir is None:
            server = backend_server(self.env, port=port, workers=workers, log_path=log)
        else:
            server = backend_of(self.layout.app_dir.resolve(), self.env, workers, log, port)
        self.servers[name] = server
        server.start(START_TIMEOUT)
        return server

    def stop_all(self) -> None:
        """Every instance at once, without the drain (SIGINT), then each waited for."""
        for server in self.servers.values():
            server.signal(signal.SIGINT)
        for server in self.servers.values():
            server.stop()


@dataclass
class Fleet:
    instances: Instances
    balancer: HAProxy
    timeline: Timeline
    data_dir: Path
    secret: str

    def restart(self, name: str) -> Restart:
        """As an orchestrator does it: SIGTERM to the parent only, wait for it to exit, start a
        new one on the same port, wait until the balancer has it in rotation."""
        process = self.instances.servers[name].process
        assert process is not None
        with Prober(self.instances.ports[name], "/health/ready", interval=0.02) as prober:
            signalled, began = time.time(), time.monotonic()
            process.send_signal(signal.SIGTERM)
            exit_code = process.wait(EXIT_TIMEOUT)
            exited_after = time.monotonic() - began
            self.instances.start(name)
            started_after = time.monotonic() - began
            self.balancer.wait_until(name, in_rotation=True, timeout=30)
            back_after = time.monotonic() - began
        resets = [at - began for at in prober.resets]
        return Restart(
            name,
            signalled,
            exited_after,
            exit_code,
            started_after,
            back_after,
            prober.outcomes,
            resets,
        )

    def restart_database(self, outage: float) -> DatabaseRestart:
        """PostgreSQL stopped (`pg_ctl stop -m fast`: every connection closed, as a restart of
        Neon's compute does), started again `outage` seconds later; nothing else is touched."""
        stopped = time.time()
        embedded_db.stop(self.data_dir, "fast")
        time.sleep(outage)
        embedded_db.start(self.data_dir)
        started = time.time()
        return DatabaseRestart(stopped, started, self._answered_within(30.0))

    def _answered_within(self, timeout: float) -> float:
        """Seconds until an authenticated list through the balancer answers 200."""
        user = "fleet-probe"
        headers = {"Authorization": f"Bearer {token(self.secret, user)}"}
        began = time.monotonic()
        with httpx.Client(base_url=self.balancer.url, timeout=5) as client:
            while time.monotonic() - began < timeout:
                try:
                    if client.get(f"/api/{user}/tasks", headers=headers).status_code == 200:
                        return time.monotonic() - began
                except httpx.HTTPError:
                    pass
                time.sleep(0.05)
        raise RuntimeError(f"no 200 through the balancer within {timeout:g} s of the restart")


def token(secret: str, user: str) -> str:
    """An HS256 token for `user`, as a Next.js frontend mints it."""
    now = int(time.time())
    return jwt.encode({"sub": user, "iat": now, "exp": now + 3600}, secret, algorithm="HS256")


def missing_tools() -> list[str]:
    """The Debian packages the fleet needs that this machine lacks."""
    found = {"haproxy": haproxy_binary(), "pgbouncer": pgbouncer_binary()}
    return [name for name, path in found.items() if path is None]


@contextmanager
def started(layout: Layout, workdir: Path) -> Iterator[Fleet]:
    """The whole fleet, up and in rotation; logs in `workdir`."""
    haproxy_path, pgbouncer_path = haproxy_binary(), pgbouncer_binary()
    if haproxy_path is None or pgbouncer_path is None:
        raise RuntimeError(f"the fleet needs {' and '.join(missing_tools())} (apt-get install)")
    with ExitStack() as cleanup:
        data_dir = workdir / "postgres"
        url = embedded_db.start(data_dir)
        cleanup.callback(embedded_db.stop, data_dir)
        secret = secrets.token_urlsafe(32)
        _migrate(layout.app_dir or ROOT, url, secret)
        bouncer = cleanup.enter_context(
            pgbouncer(pgbouncer_path, url, pool_size=20, login_retry=LOGIN_RETRY)
        )
        env = {
            "BETTER_AUTH_SECRET": secret,
            "NEON_DATABASE_URL": bouncer.url,
            "MIGRATE_ON_STARTUP": "false",  # migrated above, once, as a deploy step does
            "RATE_LIMIT_PER_MINUTE": "0",  # closed-loop users far above a person's rate
            "SHUTDOWN_DRAIN_SECONDS": f"{layout.drain:g}",
        }
        names = [f"app{number}" for number in range(1, layout.instances + 1)]
        instances = Instances(layout, workdir, env, {name: free_port() for name in names})
        cleanup.callback(instances.stop_all)
        with ThreadPoolExecutor(len(names)) as pool:
            list(pool.map(instances.start, names))
        balancer = cleanup.enter_context(
            haproxy(haproxy_path, instances.ports, layout.checks, workdir)
        )
        for name in names:
            balancer.wait_until(name, in_rotation=True, timeout=30)
        timeline = Timeline(balancer)
        timeline.start()
        cleanup.callback(timeline.stop)
        yield Fleet(instances, balancer, timeline, data_dir, secret)


def _migrate(root: Path, url: URL, secret: str) -> None:
    """The schema of the checkout at `root`, applied straight to PostgreSQL (a deploy step)."""
    env = {
        **os.environ,
        "BETTER_AUTH_SECRET": secret,
        "NEON_DATABASE_URL": url.render_as_string(hide_password=False),
    }
    result = subprocess.run(
        [sys.executable, "-m", "backend.migrate"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"migration failed: {(result.stdout + result.stderr).strip()}")


@contextmanager
def load(fleet: Fleet, users: int, pause: float, record: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Locust's `FleetUser`s through the balancer, every outcome appended to `record`; stopped
    (SIGTERM, by its PID) when the block ends."""
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless"]
    command += ["--host", fleet.balancer.url, "-u", str(users), "-r", str(users)]
    # A bound, should this process die without stopping it; the block's end stops it first.
    command += ["-t", "30m", "--only-summary", "--loglevel", "WARNING", "--stop-timeout", "2"]
    command.append("FleetUser")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "LOADTEST_SECRET": fleet.secret,
        "LOADTEST_RECORD": str(record),
        "LOADTEST_PAUSE_SECONDS": f"{pause:g}",
    }
    with (fleet.instances.workdir / "locust.log").open("ab") as output:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            command, env=env, stdout=output, stderr=subprocess.STDOUT
        )
    try:
        yield process
    finally:
        terminate(process, 15)


def keep_logs(workdir: Path, destination: Path) -> None:
    """Copy the run's logs (HAProxy, instances, Locust, outcomes) where they outlive it."""
    destination.mkdir(parents=True, exist_ok=True)
    for path in workdir.iterdir():
        if path.is_file() and path.suffix in (".log", ".tsv", ".cfg"):
            shutil.copy2(path, destination / path.name)
