"""ASGI middleware that acts before routing: path normalisation and request size limits.

Path normalisation:

- A trailing slash is dropped, so `/api/u/tasks/` is served as `/api/u/tasks` with no redirect
  (a 307 across origins makes browsers drop the `Authorization` header).
- An encoded slash (`%2F`) stays inside its path segment instead of splitting it, so a user id
  like `alice%2Fbob` is compared (and refused, 403) as one id rather than routed elsewhere.
"""

from urllib.parse import unquote

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class NormalizePathMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            raw: bytes = scope.get("raw_path") or b""
            if b"%2f" in raw.lower():
                raw_path = raw.decode("latin-1").split("?", 1)[0]
                path = "/".join(
                    unquote(segment).replace("/", "%2F") for segment in raw_path.split("/")
                )
            if len(path) > 1 and path.endswith("/"):
                path = path.rstrip("/") or "/"
            if path != scope["path"]:
                scope = {**scope, "path": path}
        await self.app(scope, receive, send)


MAX_HEADER_BYTES = 64 * 1024
MAX_HEADER_COUNT = 100


class _BodyTooLargeError(HTTPException):
    """Raised while the body streams in. An `HTTPException`, because FastAPI reads the body itself
    and turns any other exception from it into a 400 "error parsing the body"."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(
            413, f"Request body larger than {max_bytes} bytes", headers={"Connection": "close"}
        )


class RequestLimitMiddleware:
    """Refuse request bodies over `max_bytes` with a JSON 413, before anything else reads them.

    Also refuses a request whose headers exceed 64 KiB or 100 fields (431): uvicorn's httptools
    parser (the default with `uvicorn[standard]`) sets no such limit of its own.

    A declared `Content-Length` over the limit is refused without reading a byte; a chunked body
    is counted as it streams in. (Starlette's own limit answers in plain text, which frontends
    cannot turn into `new Error(body.detail)`.)
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw_headers: list[tuple[bytes, bytes]] = scope["headers"]
        if (
            len(raw_headers) > MAX_HEADER_COUNT
            or sum(len(name) + len(value) for name, value in raw_headers) > MAX_HEADER_BYTES
        ):
            await self._refuse(scope, receive, send, 431, "Request headers too large")
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLargeError(self.max_bytes)
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracked_send)
        except _BodyTooLargeError:
            if started:
                raise
            await self._refuse(scope, receive, send)

    async def _refuse(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        status_code: int = 413,
        detail: str | None = None,
    ) -> None:
        response = JSONResponse(
            {"detail": detail or f"Request body larger than {self.max_bytes} bytes"},
            status_code=status_code,
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)
