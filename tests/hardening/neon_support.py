"""A PostgreSQL that connects the way Neon does: TLS only, SCRAM-SHA-256, channel binding.

Neon accepts only TLS connections, authenticates with SCRAM-SHA-256 (its console strings carry
`sslmode=require&channel_binding=require`), and names its database `neondb`, owned by
`neondb_owner`. `tls_postgres()` builds exactly that on 127.0.0.1 from Debian's `postgresql`
binaries (`.ci/run` installs them): a throw-away cluster whose `pg_hba.conf` has one `hostssl`
line, a self-signed certificate made here with `cryptography`, and a password. Without the
binaries the tests that need it skip, except under `CI=true`, where they fail.
"""

import datetime
import ipaddress
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from devtools.servers import free_port

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
        message = "Debian's postgresql binaries are not installed (apt-get install postgresql)"
        if os.environ.get("CI") == "true":
            pytest.fail(message + "; CI must install them")
        pytest.skip(message)
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
