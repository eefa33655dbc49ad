"""The parent of several workers: it starts them on one listening socket, replaces one that dies,
and stops them all on a signal, within the shutdown timeout.

What uvicorn's own supervisor got wrong for operators: a worker that could not start ended it
with exit code 0 (process managers read that as a clean stop and never restart it), and on
SIGTERM it kept its copy of the listening socket open while the workers drained, so connections
made meanwhile were accepted by the kernel, never served, and reset.
"""

import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.context import SpawnProcess
from multiprocessing.synchronize import Event
from types import FrameType
from typing import Any

from uvicorn.config import STARTUP_FAILURE

from backend.config import Settings

logger = logging.getLogger("backend")

_spawn = multiprocessing.get_context("spawn")
# How long a worker may take to import the app and start serving.
START_TIMEOUT = 60.0
# After the shutdown timeout, how long a worker has to exit before it is killed.
KILL_GRACE = 5.0


def run_worker(
    settings: Settings, sockets: list[socket.socket], log_config: dict[str, Any], ready: Event
) -> None:
    """A worker process's entry point (spawned: it imports the app afresh; the parent never
    does, so it holds no copy of it)."""
    from backend.serving import serve

    sys.exit(serve(settings, sockets, log_config, ready))


@dataclass
class _Worker:
    number: int
    process: SpawnProcess
    ready: Event = field(repr=False)


class Supervisor:
    def __init__(
        self,
        settings: Settings,
        sockets: list[socket.socket],
        workers: int,
        log_config: dict[str, Any],
    ) -> None:
        self._settings = settings
        self._sockets = sockets
        self._count = workers
        self._log_config = log_config
        self._workers: list[_Worker] = []
        self._signal: int | None = None
        self._wake = threading.Event()

    def run(self) -> int:
        """Serve until a signal; the exit code (non-zero when a worker could not start)."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        self._workers = [self._spawn(number) for number in range(1, self._count + 1)]
        failed = self._wait_until_ready(self._workers)
        if failed is None and self._signal is None:
            logger.info("all %d workers serving", self._count)
        while failed is None and self._signal is None:
            self._wake.wait(0.2)
            failed = self._replace_dead_workers()
        self._stop()
        if failed is not None:
            code = failed.process.exitcode
            print(
                f"backend: worker {failed.number} could not start (exit code {code}); "
                "the lines above say why",
                file=sys.stderr,
            )
            return STARTUP_FAILURE
        return 0

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        if self._signal is None:
            self._signal = sig
        self._wake.set()

    def _spawn(self, number: int) -> _Worker:
        ready = _spawn.Event()
        process = _spawn.Process(
            target=run_worker,
            args=(self._settings, self._sockets, self._log_config, ready),
            name=f"backend-worker-{number}",
        )
        process.start()
        return _Worker(number, process, ready)

    def _wait_until_ready(self, workers: list[_Worker]) -> _Worker | None:
        """The first of `workers` that exited before it could serve, if any."""
        deadline = time.monotonic() + START_TIMEOUT
        waiting = list(workers)
        while waiting and self._signal is None:
            for worker in list(waiting):
                if worker.ready.is_set():
                    waiting.remove(worker)
                elif not worker.process.is_alive() or time.monotonic() > deadline:
                    return worker
            time.sleep(0.05)
        return None

    def _replace_dead_workers(self) -> _Worker | None:
        for index, worker in enumerate(self._workers):
            if worker.process.is_alive() or self._signal is not None:
                continue
            logger.warning(
                "worker %d (pid %s) exited with code %s; starting another",
                worker.number,
                worker.process.pid,
                worker.process.exitcode,
            )
            self._workers[index] = replacement = self._spawn(worker.number)
            failed = self._wait_until_ready([replacement])
            if failed is not None:
                return failed
        return None

    def _stop(self) -> None:
        """Pass the signal on and wait, within the shutdown timeout; then kill what is left.

        The parent's copy of the listening socket closes first: once the workers close theirs,
        nothing holds it open, and late connections are refused rather than queued for nobody.
        """
        for listener in self._sockets:
            listener.close()
        sig = self._signal or signal.SIGTERM
        for worker in self._workers:
            if worker.process.is_alive():
                os.kill(worker.process.pid, sig)  # type: ignore[arg-type]
        deadline = time.monotonic() + self._settings.shutdown_timeout_seconds + KILL_GRACE
        for worker in self._workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                logger.error("worker %d did not stop in time: killed", worker.number)
                worker.process.kill()
                worker.process.join()
