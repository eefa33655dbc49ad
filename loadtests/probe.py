"""New connections to one port, one after another, each classified: answered, refused, or reset.

What a balancer's late connections meet while an instance shuts down: `refused` (nothing
listens: the balancer retries elsewhere) is fine, `reset` (accepted by the kernel, then closed
unanswered, or left unanswered for 5 s) is a lost request. Used by the drain tests and the fleet
scenario.
"""

import socket
import threading
import time
from collections import Counter
from types import TracebackType


class Prober:
    """Probes `GET path` on 127.0.0.1:`port` every `interval` seconds in a thread of its own."""

    def __init__(self, port: int, path: str, interval: float = 0.005) -> None:
        self.port, self.path, self.interval = port, path, interval
        self.outcomes: Counter[str] = Counter()
        self.answers: list[tuple[float, int]] = []
        """(time.monotonic() of the answer, its status) of every answered probe."""
        self.resets: list[float] = []
        """time.monotonic() of every probe that was reset."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "Prober":
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        request = f"GET {self.path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
        while not self._stop.is_set():
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
                    sock.sendall(request)
                    answer = sock.recv(4096)
            except ConnectionRefusedError:
                self.outcomes["refused"] += 1
            except OSError:
                self._reset()
            else:
                if answer.startswith(b"HTTP/1.1 "):
                    self.outcomes["answered"] += 1
                    self.answers.append((time.monotonic(), int(answer.split(b" ", 2)[1])))
                else:
                    self._reset()  # accepted, then closed without an answer
            self._stop.wait(self.interval)

    def _reset(self) -> None:
        self.outcomes["reset"] += 1
        self.resets.append(time.monotonic())
