"""HTTP to someone else's server, which may be broken or hostile: every exchange ends within its
deadline and reads at most `max_bytes` of body, so no answer can hang the caller or fill its
memory, and each failure is a `TargetError` with a one-line reason.

httpx's timeouts apply to each read (a server sending one byte every few seconds never trips
them), so exchanges run on an event loop thread (anyio's blocking portal, as Starlette's
TestClient does) under one wall-clock deadline each. Bodies are asked for uncompressed
(`Accept-Encoding: identity`) and a compressed one is refused unread: a small gzip body can
inflate a thousandfold. Redirects are never followed, so a request, and its Authorization
header, go to the URL asked for and nowhere else.
"""

from contextlib import ExitStack
from typing import Any

import anyio
import httpx
from anyio.from_thread import start_blocking_portal

MAX_RESPONSE_BYTES = 1024 * 1024


class TargetError(Exception):
    """The server gave no usable answer; the message says why in one line."""


class BoundedLoop:
    """The event loop thread that bounded clients run their exchanges on."""

    def __init__(self) -> None:
        self._stack = ExitStack()
        self.portal = self._stack.enter_context(start_blocking_portal(name="bounded-http"))

    def client(self, base_url: str, headers: dict[str, str] | None = None) -> "BoundedClient":
        return BoundedClient(self, base_url, headers)

    def close(self) -> None:
        self._stack.close()


class BoundedClient:
    """A synchronous HTTP client on `base_url` whose every request is bounded (see the module)."""

    def __init__(
        self,
        loop: BoundedLoop,
        base_url: str,
        headers: dict[str, str] | None = None,
        *,
        max_bytes: int = MAX_RESPONSE_BYTES,
    ) -> None:
        self._portal = loop.portal
        self._max_bytes = max_bytes
        self._http = httpx.AsyncClient(
            base_url=base_url,
            headers={"Accept-Encoding": "identity", **(headers or {})},
            follow_redirects=False,
        )

    def request(self, method: str, url: str, *, deadline: float, **kwargs: Any) -> httpx.Response:
        """The answer, read whole within `deadline` seconds; `httpx.LocalProtocolError` (a
        request httpx will not send) is raised as it is."""
        response: httpx.Response = self._portal.call(self._exchange, method, url, deadline, kwargs)
        return response

    async def _exchange(
        self, method: str, url: str, deadline: float, kwargs: dict[str, Any]
    ) -> httpx.Response:
        where = f"{method} {httpx.URL(url).path}"
        try:
            # httpx's own timeout, per read, can only end earlier; the deadline bounds the whole.
            with anyio.fail_after(max(deadline, 0.0)):
                request = self._http.stream(method, url, timeout=max(deadline, 0.001), **kwargs)
                async with request as response:
                    body = await self._body(response, where)
        except TimeoutError:
            raise TargetError(f"{where}: no complete answer within {deadline:.3g} s") from None
        except httpx.LocalProtocolError:
            raise
        except httpx.HTTPError as error:
            raise TargetError(f"{where}: {type(error).__name__}: {error}") from None
        return httpx.Response(
            response.status_code, headers=response.headers, content=body, request=response.request
        )

    async def _body(self, response: httpx.Response, where: str) -> bytes:
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            raise TargetError(
                f"{where}: a compressed answer (Content-Encoding: {encoding[:40]}) "
                "despite Accept-Encoding: identity; not read"
            )
        body = bytearray()
        async for chunk in response.aiter_raw():
            body += chunk
            if len(body) > self._max_bytes:
                raise TargetError(f"{where}: answer larger than {self._max_bytes} bytes; cut off")
        return bytes(body)

    def close(self) -> None:
        self._portal.call(self._http.aclose)
