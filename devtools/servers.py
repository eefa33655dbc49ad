"""Start the backend and mock_auth as real processes on loopback, wait until ready, stop them.

Used by `nox -s dev`, `nox -s load` and the tests that need real HTTP (end-to-end, kill -9).
Each server runs in its own process group so stopping it also stops uvicorn's workers.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import httpx


def terminate(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM to `process`, by its PID; SIGKILL if it is still there `timeout` seconds later."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    """A server process and the base URL it answers on."""

    name: str
    command: list[str]
    env: dict[str, str]
    url: str
    ready_path: str
    log_path: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> None:
        # The child keeps its own copy of the file descriptor; ours closes at once.
        with open(self.log_path, "ab") if self.log_path else nullcontext() as log:
            self.process = subprocess.Popen(
                self.command,
                env=self.env,
                start_new_session=True,
                stdout=log,
                stderr=subprocess.STDOUT if log else None,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with code {self.process.returncode}")
            try:
                if httpx.get(self.url + self.ready_path, timeout=1.0).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} did not become ready within {timeout:.0f} s")

    def signal(self, signum: int) -> None:
        """Send `signum` to the whole process group (uvicorn and its workers)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signum)

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.process.wait()

    def kill(self) -> None:
        """SIGKILL, no goodbye: what a crash or an OOM kill looks like."""
        if self.process is not None:
            self.signal(signal.SIGKILL)
            self.process.wait()


def backend_server(
    env: Mapping[str, str],
    *,
    port: int | None = None,
    workers: int = 1,
    reload: bool = False,
    log_path: Path | None = None,
) -> Server:
    """The backend; `env` carries its settings (BETTER_AUTH_SECRET, …).

    Without `reload` it is the production command, `python -m backend`, so tests and load runs
    exercise what production runs; `log_path` collects its output (one line per request on
    stdout, the server's own log lines on stderr).
    """
    port = port or free_port()
    if reload:
        command = [sys.executable, "-m", "uvicorn", "backend.main:create_app", "--factory"]
        command += ["--reload", "--reload-dir", "backend"]
        command += ["--host", "127.0.0.1", "--port", str(port)]
    else:
        command = [sys.executable, "-m", "backend", "--host", "127.0.0.1", "--port", str(port)]
        command += ["--workers", str(workers)]
    url = f"http://127.0.0.1:{port}"
    # Stopped at once unless `env` asks for a drain (production drains for SIGTERM's balancer).
    env = {"SHUTDOWN_DRAIN_SECONDS": "0", **env}
    return Server("backend", command, {**os.environ, **env}, url, "/health", log_path=log_path)


def mock_auth_server(env: Mapping[str, str], *, port: int | None = None) -> Server:
    port = port or free_port()
    command = [sys.executable, "-m", "mock_auth", "serve", "--host", "127.0.0.1"]
    command += ["--port", str(port)]
    return Server(
        "mock_auth", command, {**os.environ, **env}, f"http://127.0.0.1:{port}", "/api/auth/jwks"
    )


@dataclass
class Redis:
    process: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


@contextmanager
def redis_server() -> Iterator[Redis | None]:
    """A throw-away `redis-server` on 127.0.0.1, without persistence (None when there is no
    redis-server binary: Debian's package `redis-server`)."""
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="redis-")
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", workdir]
    redis = Redis(subprocess.Popen(command, stdout=subprocess.DEVNULL), port)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or redis.process.poll() is not None:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)
        yield redis
    finally:
        if redis.process.poll() is None:
            redis.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@contextmanager
def running(*servers: Server) -> Iterator[tuple[Server, ...]]:
    """Start `servers` in order; stop them all (in reverse) however the block ends."""
    started: list[Server] = []
    try:
        for server in servers:
            server.start()
            started.append(server)
        yield servers
    finally:
        for server in reversed(started):
            server.stop()
