"""One worker: the app under uvicorn's server and the hardened protocol, stopping gracefully.

SIGTERM (what orchestrators send): the worker drains, keeps serving for `SHUTDOWN_DRAIN_SECONDS`
while `/health/ready` answers 503 and keep-alive answers say `Connection: close`, so a balancer
takes it out of rotation first; then it serves what already waits in the kernel's accept queue,
stops accepting (later connections are refused, which balancers retry, never accepted and then
reset) and lets in-flight requests finish. `SHUTDOWN_TIMEOUT_SECONDS` after the signal whatever
is left is cut. SIGINT (Ctrl-C) does the same without the drain; a second one cuts at once.
"""

import asyncio
import logging
import resource
import signal
import socket
import time
from functools import partial
from multiprocessing.synchronize import Event
from types import FrameType
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE

from backend.config import Settings
from backend.http_protocol import EdgeLimits, EdgeState, HardenedHttpToolsProtocol
from backend.lifecycle import Lifecycle
from backend.main import create_app

logger = logging.getLogger("backend")

# Ctrl-C reaches every process of the terminal's group, and the parent passes it on too: two
# interrupts this close together are one.
_SAME_INTERRUPT = 0.5
# File descriptors a worker keeps for what is not a client connection (pool, logs, imports).
_FD_RESERVE = 128


def edge_limits(settings: Settings) -> EdgeLimits:
    """The protocol's limits, with the connection bound kept within the open-file limit."""
    others = settings.db_pool_size + settings.db_max_overflow + _FD_RESERVE
    files = _open_file_limit(settings.http_max_connections + others)
    allowed = min(settings.http_max_connections, files - others)
    if allowed < settings.http_max_connections:
        logger.warning(
            "HTTP_MAX_CONNECTIONS lowered to %d: the open-file limit is %d", allowed, files
        )
    return EdgeLimits(head_timeout=settings.http_head_timeout_seconds, max_connections=allowed)


def _open_file_limit(wanted: int) -> int:
    """Raise this process's soft open-file limit towards `wanted` (up to the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return wanted if soft == resource.RLIM_INFINITY else soft
    soft = wanted if hard == resource.RLIM_INFINITY else min(hard, wanted)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return soft


class WorkerServer(uvicorn.Server):
    """uvicorn's server with the drain, the bounded shutdown and the hardened protocol's state."""

    def __init__(
        self,
        config: uvicorn.Config,
        settings: Settings,
        lifecycle: Lifecycle,
        ready: Event | None = None,
    ) -> None:
        super().__init__(config)
        self.server_state = EdgeState(edge_limits(settings), lifecycle)
        self._lifecycle = lifecycle
        self._drain = settings.shutdown_drain_seconds
        self._timeout = settings.shutdown_timeout_seconds
        self._ready = ready
        self._sockets: list[socket.socket] = []
        self._signalled_at: float | None = None
        self._stop_accepting_at = float("inf")
        self._interrupted_at: float | None = None
        self._sweeps: set[asyncio.Task[Any]] = set()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """A signal handler: only flags, acted upon by `on_tick` (never re-raised after)."""
        now = time.monotonic()
        if sig == signal.SIGINT:
            if self._interrupted_at is not None and now - self._interrupted_at > _SAME_INTERRUPT:
                self.force_exit = True
            self._interrupted_at = self._interrupted_at or now
            drain = 0.0
        else:
            drain = self._drain
        if self._signalled_at is None:
            self._signalled_at = now
            self._lifecycle.draining = True
            logger.info("stopping: draining for %.1f s, then no new connections", drain)
        self._stop_accepting_at = min(self._stop_accepting_at, now + drain)

    async def on_tick(self, counter: int) -> bool:
        if time.monotonic() >= self._stop_accepting_at:
            self.should_exit = True
        return await super().on_tick(counter)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self._sockets = sockets or []
        await super().startup(sockets)
        if self._ready is not None and self.started:
            self._ready.set()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._lifecycle.draining = True
        signalled = self._signalled_at or time.monotonic()
        left = signalled + self._timeout - time.monotonic()
        self.config.timeout_graceful_shutdown = max(0, left)  # type: ignore[assignment]
        self._accept_waiting()  # then, with no await in between, uvicorn closes the listeners
        await super().shutdown(sockets)
        for connection in list(self.server_state.connections):
            connection.transport.abort()  # past the timeout: cut

    def _accept_waiting(self) -> None:
        """Serve the connections the kernel already accepted: closing the listener would reset
        them. Later ones find no listener and are refused."""
        loop = asyncio.get_running_loop()
        factory = partial(
            HardenedHttpToolsProtocol,
            config=self.config,
            server_state=self.server_state,
            app_state=self.lifespan.state,
        )
        for listener in self._sockets:
            while True:
                try:
                    client, _ = listener.accept()
                except OSError:  # BlockingIOError: nobody else waits
                    break
                client.setblocking(False)
                task = loop.create_task(loop.connect_accepted_socket(factory, client))
                self._sweeps.add(task)
                task.add_done_callback(self._sweeps.discard)


def uvicorn_config(app: Any, log_config: dict[str, Any]) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        http=HardenedHttpToolsProtocol,
        ws="none",
        lifespan="on",
        proxy_headers=True,
        access_log=False,
        server_header=False,
        log_config=log_config,
    )


def serve(
    settings: Settings,
    sockets: list[socket.socket],
    log_config: dict[str, Any],
    ready: Event | None = None,
) -> int:
    """Serve on `sockets` until stopped; the exit code (uvicorn's 3 if start-up failed)."""
    lifecycle = Lifecycle()
    config = uvicorn_config(create_app(settings, lifecycle), log_config)
    server = WorkerServer(config, settings, lifecycle, ready)
    try:
        server.run(sockets=sockets)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else STARTUP_FAILURE
    return 0 if server.started else STARTUP_FAILURE
