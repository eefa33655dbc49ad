"""A TCP proxy on 127.0.0.1 that adds network distance in front of PostgreSQL (or any server).

Every chunk is held `delay_ms / 2` before it is passed on, in each direction, so a request and
its answer cost `delay_ms` more than without the proxy: what a backend sees of a database in
another building (Neon from a nearby region is ~1-5 ms, across a continent ~30 ms). Chunks are
stamped when they arrive and released when due, so the delay adds latency without limiting
throughput or reordering bytes. The target is a Unix socket path (the embedded PostgreSQL's
`.s.PGSQL.5432`) or `host:port`.

It also plays the parts of Neon that break connections, for the failure tests:

- `suspend()`: the compute suspends: the server closes every open connection (the close travels
  through the delay like any byte), and the next new connection waits `wake_ms` (Neon's cold
  start, 0.5-3 s) before it reaches the server.
- `idle_close`: seconds after which the server hangs up a connection that carried no byte either
  way (`idle_session_timeout`, a pooler's idle timeout); 0 hangs up right after each answer
  (each PostgreSQL ReadyForQuery, the handshake's included).
  A request sent while that close is travelling meets a connection that is already gone.
- `stall()`: the network or compute stops answering: every byte is held and new connections are
  accepted but not answered, until `resume()` lets everything held flow again.
- `lose_answer_to(marker)`: the next request carrying `marker` (in one chunk) reaches the server,
  which does the work, but its answer never comes back: the connection breaks instead, as a
  network or compute failure after the work was done does. For PostgreSQL that is a write whose
  fate the backend cannot know; in front of an HTTP server, a request whose answer the client
  never gets.

`accepted` counts the connections made to it: how many connection attempts reached the database.

The proxy runs its own event loop in a background thread; `stop()` closes the listener and
every connection and joins the thread. `python -m loadtests.latency_proxy TARGET DELAY_MS` runs
one in the foreground until Ctrl-C.
"""

import argparse
import asyncio
import contextlib
import threading
import time
from collections.abc import Sequence
from types import TracebackType

_CHUNK = 64 * 1024


class LatencyProxy:
    """Listens on 127.0.0.1:`port` (0: any free port) and forwards to `target` with a delay."""

    def __init__(self, target: str, delay_ms: float, port: int = 0, wake_ms: float = 0) -> None:
        self.target = target
        self.delay = delay_ms / 2000.0
        self.port = port
        self.wake = wake_ms / 1000.0
        self._idle_close: float | None = None
        self._idle_close_set: asyncio.Event | None = None
        self._flowing: asyncio.Event | None = None  # cleared while stalled
        self.accepted = 0
        self._lose_marker: bytes | None = None
        self._asleep = False
        self._awake_at: float | None = None
        self._links: set[_Link] = set()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def address(self) -> tuple[str, int]:
        return "127.0.0.1", self.port

    def start(self, timeout: float = 10.0) -> None:
        self._thread = threading.Thread(target=self._run, name="latency-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("latency proxy did not start")
        if self._error is not None:
            raise RuntimeError(f"latency proxy failed to start: {self._error}")

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread is None or self._loop is None or self._stopping is None:
            return
        with contextlib.suppress(RuntimeError):  # loop already closed
            self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(timeout)
        self._thread = None

    @property
    def idle_close(self) -> float | None:
        return self._idle_close

    @idle_close.setter
    def idle_close(self, seconds: float | None) -> None:
        self._idle_close = seconds
        if self._loop is not None and self._idle_close_set is not None:
            self._loop.call_soon_threadsafe(self._idle_close_set.set)

    def suspend(self) -> None:
        """Close every connection from the server's side; later connections wait `wake_ms`."""
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(self._suspend(), self._loop).result(10)

    def stall(self) -> None:
        """From now on hold every byte, on open and new connections alike, until `resume()`."""
        self._set_flowing(False)

    def resume(self) -> None:
        """The database answers again: what was held flows on, in order."""
        self._set_flowing(True)

    def _set_flowing(self, flowing: bool) -> None:
        async def apply() -> None:
            assert self._flowing is not None
            (self._flowing.set if flowing else self._flowing.clear)()

        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(apply(), self._loop).result(10)

    def lose_answer_to(self, marker: bytes) -> None:
        """The next request carrying `marker` is served, and its answer lost with the connection."""
        self._lose_marker = marker

    def __enter__(self) -> "LatencyProxy":
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # --- inside the proxy's thread --------------------------------------------------------

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to start(); the thread must not die silently
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self._idle_close_set = asyncio.Event()
        self._flowing = asyncio.Event()
        self._flowing.set()
        connections: set[asyncio.Task[None]] = set()

        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            current = asyncio.current_task()
            assert current is not None
            connections.add(current)
            self.accepted += 1
            try:
                await self._relay(reader, writer)
            except asyncio.CancelledError:
                pass  # stop(): ending quietly is the point (asyncio would log it as an error)
            finally:
                connections.discard(current)

        server = await asyncio.start_server(accept, "127.0.0.1", self.port)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stopping.wait()
            server.close()
            for connection in list(connections):
                connection.cancel()
            await asyncio.gather(*connections, return_exceptions=True)

    async def _open_target(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if "/" in self.target:
            return await asyncio.open_unix_connection(self.target)
        host, _, port = self.target.rpartition(":")
        return await asyncio.open_connection(host, int(port))

    async def _suspend(self) -> None:
        self._asleep, self._awake_at = True, None
        for link in list(self._links):
            link.hang_up()

    async def _wake_up(self) -> None:
        """A new connection to a suspended compute waits for it to wake (once for all)."""
        if not self._asleep:
            return
        loop = asyncio.get_running_loop()
        if self._awake_at is None:
            self._awake_at = loop.time() + self.wake
        await asyncio.sleep(self._awake_at - loop.time())
        self._asleep = False

    async def _hold_if_stalled(self) -> None:
        assert self._flowing is not None
        await self._flowing.wait()  # until resume(), or stop() cancels the connection

    async def _relay(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        server_writer: asyncio.StreamWriter | None = None
        link: _Link | None = None
        watcher: asyncio.Task[None] | None = None
        try:
            await self._hold_if_stalled()
            await self._wake_up()
            server_reader, server_writer = await self._open_target()
            link = _Link(server_writer)
            self._links.add(link)
            watcher = asyncio.create_task(self._close_when_idle(link))
            await asyncio.gather(
                self._pipe(client_reader, server_writer, link),
                self._pipe(server_reader, client_writer, link, to_client=True),
            )
        except (OSError, asyncio.IncompleteReadError):
            pass  # either side went away: close both
        finally:
            if watcher is not None:
                watcher.cancel()
            if link is not None:
                self._links.discard(link)
            for writer in (client_writer, server_writer):
                if writer is not None:
                    writer.close()

    async def _close_when_idle(self, link: "_Link") -> None:
        loop = asyncio.get_running_loop()
        assert self._idle_close_set is not None
        while True:
            if self._idle_close is None:
                self._idle_close_set.clear()
                await self._idle_close_set.wait()  # switched on from the test's thread
                continue
            if not link.awaiting_query:
                await asyncio.sleep(0.01)
                continue
            left = link.last + self._idle_close - loop.time()
            if left <= 0:
                link.hang_up()
                return
            await asyncio.sleep(min(left, 0.05))

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        link: "_Link",
        to_client: bool = False,
    ) -> None:
        """Copy `reader` to `writer`, releasing each chunk `self.delay` after it arrived."""
        due: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        loop = asyncio.get_running_loop()

        async def receive() -> None:
            try:
                while chunk := await reader.read(_CHUNK):
                    link.last = loop.time()
                    link.awaiting_query = to_client and _ends_an_answer(chunk)
                    if not to_client and self._lose_marker and self._lose_marker in chunk:
                        self._lose_marker, link.answer_lost = None, True
                    due.put_nowait((loop.time() + self.delay, chunk))
            except OSError:
                pass  # reset by the peer: ends like an EOF
            finally:
                due.put_nowait((loop.time() + self.delay, b""))

        receiving = asyncio.create_task(receive())
        try:
            while True:
                deadline, chunk = await due.get()
                wait = deadline - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                await self._hold_if_stalled()
                if not chunk:
                    break
                if to_client and link.answer_lost:
                    link.hang_up()  # the answer is dropped; the client sees the connection end
                    break
                writer.write(chunk)
                await writer.drain()
                if to_client and self.idle_close == 0 and _ends_an_answer(chunk):
                    link.hang_up()  # the close follows the answer in the same breath
                    break
            if writer.can_write_eof():
                writer.write_eof()
        finally:
            receiving.cancel()


def _ends_an_answer(chunk: bytes) -> bool:
    """The chunk ends with PostgreSQL's ReadyForQuery: the server is idle, awaiting a query."""
    return chunk[-6:-1] == b"Z\x00\x00\x00\x05"


class _Link:
    """One proxied connection: when it last carried a byte, whether the server then sat idle
    awaiting a query (only then do servers time a connection out), whether the answer now on its
    way is to be lost, and the server's end of it."""

    def __init__(self, server_writer: asyncio.StreamWriter) -> None:
        self.server_writer = server_writer
        self.last = asyncio.get_running_loop().time()
        self.awaiting_query = False
        self.answer_lost = False

    def hang_up(self) -> None:
        """The server closes: its end goes, and the EOF travels to the client with the delay."""
        self.server_writer.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.latency_proxy")
    parser.add_argument("target", help="Unix socket path or host:port")
    parser.add_argument("delay_ms", type=float, help="added per round trip")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--idle-close", type=float, help="hang up after this many idle seconds")
    args = parser.parse_args(argv)
    with LatencyProxy(args.target, args.delay_ms, args.port) as proxy:
        proxy.idle_close = args.idle_close
        print(f"127.0.0.1:{proxy.port} -> {args.target} (+{args.delay_ms:g} ms per round trip)")
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
