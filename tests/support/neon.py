"""A PostgreSQL that connects the way Neon does: TLS only, SCRAM-SHA-256, channel binding.

Neon accepts only TLS connections, authenticates with SCRAM-SHA-256 (its console strings carry
`sslmode=require&channel_binding=require`), and names its database `neondb`, owned by
`neondb_owner`. `tls_postgres()` builds exactly that on 127.0.0.1 from Debian's `postgresql`
binaries (`.ci/run` installs them): a throw-away cluster whose `pg_hba.conf` has one `hostssl`
line, a self-signed certificate made here with `cryptography`, and a password. Without the
binaries the tests that need it skip, except under `CI=true`, where they fail.

Also the measuring helpers of the Neon failure tests, and the locked-row case they share with the
PgBouncer tests (a statement that would wait forever, which the deadline must cancel).
"""

import datetime
import ipaddress
import os
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine

from devtools.servers import free_port
from tests.support.hardening import report
from tests.support.helpers import Caller, unavailable

DEADLINE = 0.5  # DB_STATEMENT_TIMEOUT_SECONDS in the failure tests (default 1.5)
CONNECT_TIMEOUT = 2  # DB_CONNECT_TIMEOUT_SECONDS there (default 5; libpq's least is 2)
ROLE = "neondb_owner"
DATABASE = "neondb"
ENDPOINT = "ep-cool-darkness-123456"  # the form of Neon's endpoint ids
NEON_HOST = f"{ENDPOINT}.us-east-2.aws.neon.tech"
NEON_POOLER_HOST = f"{ENDPOINT}-pooler.us-east-2.aws.neon.tech"


def postgres_bin_dir() -> Path | None:
    """The newest `/usr/lib/postgresql/<version>/bin` holding initdb and pg_ctl."""
    found = [
        path
        for path in Path("/usr/lib/postgresql").glob("*/bin")
        if (path / "initdb").exists() and (path / "pg_ctl").exists()
    ]
    return max(found, key=lambda path: int(path.parent.name), default=None)


def require_postgres_bin_dir() -> Path:
    found = postgres_bin_dir()
    if found is None:
        unavailable("Debian's postgresql binaries are not installed (apt-get install postgresql)")
    return found


@dataclass(frozen=True)
class TlsPostgres:
    port: int
    password: str

    def url(self, host: str = "127.0.0.1", scheme: str = "postgresql", **extra: str) -> str:
        """A Neon console string (`host` as named), reaching this server on 127.0.0.1."""
        query = {"sslmode": "require", "channel_binding": "require", **extra}
        if host != "127.0.0.1":
            query |= {"hostaddr": "127.0.0.1"}  # the Neon name, as SNI; loopback as address
        params = "&".join(f"{key}={value}" for key, value in query.items())
        return f"{scheme}://{ROLE}:{self.password}@{host}:{self.port}/{DATABASE}?{params}"


def _self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "server.crt", directory / "server.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    key_file.chmod(0o600)
    return cert_file, key_file


@contextmanager
def tls_postgres(bin_dir: Path) -> Iterator[TlsPostgres]:
    """Start the cluster (about 2 s); stop and delete it however the block ends."""
    root = Path(tempfile.mkdtemp(prefix="neon-like-pg-"))
    data = root / "data"
    password = secrets.token_urlsafe(16)
    (root / "pw").write_text(password + "\n")
    cert_file, key_file = _self_signed_certificate(root)
    # initdb refuses to run as root: run the server as Debian's `postgres` user then.
    user = "postgres" if os.geteuid() == 0 else None
    if user is not None:
        for path in (root, root / "pw", cert_file, key_file):
            shutil.chown(path, user)
    port = free_port()

    def run(*command: str) -> None:
        subprocess.run(command, user=user, check=True, capture_output=True, timeout=60)

    try:
        run(
            str(bin_dir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--pwfile",
            str(root / "pw"),
            "--auth",
            "scram-sha-256",
            "-E",
            "UTF8",
            "--no-sync",
        )
        with (data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"listen_addresses = '127.0.0.1'\nport = {port}\n"
                f"unix_socket_directories = '{root}'\n"
                f"ssl = on\nssl_cert_file = '{cert_file}'\nssl_key_file = '{key_file}'\n"
                "password_encryption = 'scram-sha-256'\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                "max_connections = 60\nshared_buffers = 16MB\n"
            )
        # TLS only, SCRAM only: a plain or password-less connection is refused, as on Neon.
        (data / "pg_hba.conf").write_text("hostssl all all 127.0.0.1/32 scram-sha-256\n")
        run(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w", "start")
        admin = psycopg2.connect(
            host="127.0.0.1", port=port, user="postgres", password=password, sslmode="require"
        )
        admin.autocommit = True
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE ROLE {ROLE} LOGIN PASSWORD %s", (password,))
            cursor.execute(f"CREATE DATABASE {DATABASE} OWNER {ROLE}")
        admin.close()
        yield TlsPostgres(port, password)
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(
                [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                user=user,
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(root, ignore_errors=True)


# --- measuring -------------------------------------------------------------------------------


def timed(client: TestClient, method: str, url: str, **kwargs: Any) -> tuple[int, float]:
    started = time.monotonic()
    response = client.request(method, url, **kwargs)
    elapsed = time.monotonic() - started
    if response.status_code == 503:
        assert response.headers["retry-after"].isdigit()
        assert isinstance(response.json()["detail"], str)
    return response.status_code, elapsed


def summary(statuses: list[int | None], worst: float) -> str:
    counts = Counter("no answer" if s is None else str(s) for s in statuses)
    return ", ".join(f"{n}x {s}" for s, n in sorted(counts.items())) + f"; worst {worst:.2f} s"


# --- a statement that would run forever: a locked row ------------------------------------------


def lock_row(db_engine: Engine, task_id: int, hold: float) -> Callable[[], None]:
    """Lock the task's row in another session; released after `hold` s or by the returned call."""
    connection = db_engine.connect().execution_options(isolation_level="READ COMMITTED")
    transaction = connection.begin()  # the engine is in autocommit: a real transaction here
    connection.execute(text("SELECT id FROM task WHERE id = :id FOR UPDATE"), {"id": task_id})
    released = threading.Lock()

    def release() -> None:
        if released.acquire(blocking=False):
            transaction.rollback()
            connection.close()

    threading.Timer(hold, release).start()
    return release


def running_statements(db_engine: Engine, like: str) -> int:
    with db_engine.connect() as connection:
        return int(
            connection.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                    "AND query LIKE :like AND pid <> pg_backend_pid()"
                ),
                {"like": like},
            ).scalar_one()
        )


def assert_cancelled_on_server(db_engine: Engine, like: str) -> float:
    """The statement is gone from the server (cancelled, not merely abandoned): how fast."""
    started = time.monotonic()
    while running_statements(db_engine, like):
        assert time.monotonic() - started < 2, f"{like!r} still runs on the server"
        time.sleep(0.02)
    return time.monotonic() - started


def run_locked_row_case(client: TestClient, db_engine: Engine, caller: Caller, group: str) -> None:
    task = client.post(caller.tasks, json={"title": "locked"}, headers=caller.headers).json()
    release = lock_row(db_engine, task["id"], hold=3.0)
    try:
        status, elapsed = timed(
            client, "PATCH", caller.task(task["id"]) + "/complete", headers=caller.headers
        )
        still_running = running_statements(db_engine, "UPDATE task%")
        gone_after = assert_cancelled_on_server(db_engine, "UPDATE task%") if status == 503 else 0.0
    finally:
        release()
    after = client.get(caller.task(task["id"]), headers=caller.headers)
    report(
        group,
        2,
        int(status != 503) + int(after.status_code != 200),
        f"row locked 3 s: {summary([status], elapsed)} (deadline {DEADLINE} s); the UPDATE "
        f"left the server {gone_after * 1000:.0f} ms after the answer",
    )
    assert status == 503, f"{status} after {elapsed:.2f} s"
    assert elapsed < DEADLINE + 0.5
    assert still_running <= 1
    assert after.status_code == 200
    assert after.json()["completed"] is False  # the cancelled toggle changed nothing
