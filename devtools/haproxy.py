"""A real HAProxy (Debian's `haproxy`) in front of backend instances on 127.0.0.1, with health
checks, and its runtime API to read what it sees (`show stat`).

Used by the fleet scenario (`python -m loadtests.fleet`) and its short version in the suite
(`tests/test_fleet.py`); `docs/OPERATIONS.md` shows the same backend section, trimmed.
"""

import csv
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from devtools.pgbouncer import system_binary
from devtools.servers import free_port, terminate


def haproxy_binary() -> str | None:
    return system_binary("haproxy")


@dataclass(frozen=True)
class Checks:
    """The balancer's health checks, in seconds, and what they imply for the drain."""

    path: str = "/health/ready"
    inter: float = 1.0
    """Between two checks of a server that is up."""
    fastinter: float = 0.25
    """Between checks once one failed (going down) and while a server comes up."""
    downinter: float = 0.5
    """Between checks of a server that is down."""
    fall: int = 2
    rise: int = 2
    timeout: float = 1.0

    @property
    def out_within(self) -> float:
        """The longest a server that starts failing its checks (a 503 from a draining instance,
        answered at once) stays in rotation: the drain must be longer."""
        return self.inter + (self.fall - 1) * self.fastinter

    @property
    def back_within(self) -> float:
        """The longest a server that starts passing its checks stays out of rotation."""
        return self.downinter + (self.rise - 1) * self.fastinter


def config(port: int, servers: Mapping[str, int], checks: Checks, stats_socket: Path) -> str:
    """The whole configuration; every line says why it is there."""
    ms = _ms
    lines = [
        "global",
        "    # Foreground (started with -db), one process: whoever started it stops it by its PID.",
        "    maxconn 4000",
        "    # The runtime API: `show stat` says which servers HAProxy has in rotation.",
        f"    stats socket {stats_socket} mode 600 level admin",
        "    # Server state changes and failed sessions to stderr (not every request).",
        "    log stderr format raw local0 info",
        "",
        "defaults",
        "    mode http",
        "    log global",
        "    option httplog",
        "    # Log only sessions with an error, a retry or a redispatch.",
        "    option dontlog-normal",
        "    # A server that cannot be reached is given up on fast, and the request retried.",
        "    timeout connect 1s",
        "    # Longer than any answer the API gives (SC-001: 2 s; statements are cut at 1.5 s).",
        "    timeout server 10s",
        "    timeout client 30s",
        "    timeout http-keep-alive 10s",
        "    # A check with no answer in this time has failed.",
        f"    timeout check {ms(checks.timeout)}",
        "    # A request whose connection failed (a listener closed: refused) is retried,",
        "    retries 3",
        "    # each time on another server,",
        "    option redispatch 1",
        "    # only then: the request was not sent, so a retry cannot run it twice (the default,",
        "    # said out loud). empty-response, response-timeout or 5xx would replay requests that",
        "    # may have run: a POST without an Idempotency-Key would be stored twice.",
        "    retry-on conn-failure",
        "    # Keep-alive to the servers, but a client's first request on a connection of its own.",
        "    http-reuse safe",
        "",
        "frontend api",
        f"    bind 127.0.0.1:{port}",
        "    default_backend instances",
        "",
        "backend instances",
        "    balance roundrobin",
        "    # Readiness: 503 the moment an instance starts draining, whatever the database does.",
        f"    option httpchk GET {checks.path}",
        "    http-check expect status 200",
        f"    # Out after {checks.fall} failed checks: within inter + (fall - 1) x fastinter ="
        f" {checks.out_within:g} s",
        "    # of the drain's start (keep the drain longer); back after "
        f"{checks.rise} good ones, within {checks.back_within:g} s.",
        f"    default-server check inter {ms(checks.inter)} fastinter {ms(checks.fastinter)}"
        f" downinter {ms(checks.downinter)} fall {checks.fall} rise {checks.rise}",
        *(f"    server {name} 127.0.0.1:{server_port}" for name, server_port in servers.items()),
        "",
    ]
    return "\n".join(lines)


def _ms(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms"


@dataclass(frozen=True)
class ServerStat:
    """One server's row of `show stat`: its state and HAProxy's counters for it."""

    name: str
    status: str
    counters: Mapping[str, int]

    @property
    def in_rotation(self) -> bool:
        """Up, or up while failing checks (`UP 1/2`): HAProxy still sends it requests."""
        return self.status.startswith("UP")


@dataclass
class HAProxy:
    process: subprocess.Popen[bytes]
    port: int
    stats_socket: Path
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def servers(self) -> dict[str, ServerStat]:
        """The backend's servers as HAProxy sees them now."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(2)
            sock.connect(str(self.stats_socket))
            sock.sendall(b"show stat\n")
            data = b"".join(iter(lambda: sock.recv(65536), b""))
        rows = csv.DictReader(data.decode().lstrip("# ").splitlines())
        found = {}
        for row in rows:
            if row["pxname"] == "instances" and row["svname"] not in ("FRONTEND", "BACKEND"):
                counters = {key: int(value) for key, value in row.items() if value.isdigit()}
                found[row["svname"]] = ServerStat(row["svname"], row["status"], counters)
        return found

    def wait_until(self, name: str, in_rotation: bool, timeout: float) -> float:
        """Seconds until HAProxy has (or no longer has) server `name` in rotation."""
        started = time.monotonic()
        while self.servers()[name].in_rotation != in_rotation:
            if time.monotonic() - started > timeout:
                state = "in rotation" if in_rotation else "out of rotation"
                raise RuntimeError(f"HAProxy did not have {name} {state} within {timeout:g} s")
            time.sleep(0.02)
        return time.monotonic() - started


@contextmanager
def haproxy(
    binary: str, servers: Mapping[str, int], checks: Checks, workdir: Path
) -> Iterator[HAProxy]:
    """HAProxy on a free port of 127.0.0.1 in front of `servers` (name -> port), configured
    and logging in `workdir`; stopped by its PID however the block ends."""
    port = free_port()
    stats_socket = workdir / "haproxy.sock"
    path = workdir / "haproxy.cfg"
    path.write_text(config(port, servers, checks, stats_socket))
    log = workdir / "haproxy.log"
    with log.open("ab") as output:
        process = subprocess.Popen(
            [binary, "-db", "-f", str(path)], stdout=output, stderr=subprocess.STDOUT
        )
    running = HAProxy(process, port, stats_socket, log)
    try:
        _wait_for_start(running)
        yield running
    finally:
        terminate(process)


def _wait_for_start(running: HAProxy) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if running.process.poll() is not None:
            raise RuntimeError(f"haproxy exited: {running.log.read_text(errors='replace')}")
        try:
            running.servers()  # the runtime API answers once every listener is bound
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("haproxy did not start within 15 s")
