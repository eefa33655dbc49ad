"""Pure ASGI middleware: path normalisation, request size limits, error answers, request logs.

Order in `create_app` (outermost first): request log, CORS, path normalisation, error answers,
size limits, then FastAPI's own exception handlers and the router. Everything an allowed origin
receives, the 500 included, therefore passes through CORS, and every request (preflights too)
is logged with the status it really got.

Path normalisation:

- A trailing slash is dropped, so `/api/u/tasks/` is served as `/api/u/tasks` with no redirect
  (a 307 across origins makes browsers drop the `Authorization` header).
- An encoded slash (`%2F`) stays inside its path segment instead of splitting it, so a user id
  like `alice%2Fbob` is compared (and refused, 403) as one id rather than routed elsewhere.
"""

import hashlib
import json
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from urllib.parse import unquote

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

access_logger = logging.getLogger("backend.access")


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
            # In place, not a copy: the request log (outside) reads the route the router
            # writes into this same scope.
            scope["path"] = path
        await self.app(scope, receive, send)


MAX_HEADER_BYTES = 64 * 1024
MAX_HEADER_COUNT = 100


class RequestLimitMiddleware:
    """Refuse oversized requests with a JSON answer before anything reads them.

    - Headers over 64 KiB or 100 fields: 431. uvicorn's httptools parser (the default with
      `uvicorn[standard]`) sets no such limit, and neither FastAPI nor Starlette has one.
    - A declared `Content-Length` over `max_bytes`: 413, without reading a byte, on any path.

    A body that streams in (chunked) is counted by FastAPI's own `max_body_size`, set on the
    routes in `create_app`; its 413 is an `HTTPException`, so our handler answers it in JSON.
    The declared length is checked here rather than left to FastAPI because Starlette refuses
    it with a plain-text 413 from *outside* every user middleware (no CORS, no request log) on
    a route that reads no body or a path that matches none, and frontends need `detail`.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            raw_headers: list[tuple[bytes, bytes]] = scope["headers"]
            if (
                len(raw_headers) > MAX_HEADER_COUNT
                or sum(len(name) + len(value) for name, value in raw_headers) > MAX_HEADER_BYTES
            ):
                await _refuse(scope, receive, send, 431, "Request headers too large")
                return
            declared = Headers(scope=scope).get("content-length", "")
            if declared.isdigit() and int(declared) > self.max_bytes:
                detail = f"Request body larger than {self.max_bytes} bytes"
                await _refuse(scope, receive, send, 413, detail)
                return
        await self.app(scope, receive, send)


async def _refuse(
    scope: Scope, receive: Receive, send: Send, status_code: int, detail: str
) -> None:
    response = JSONResponse(
        {"detail": detail}, status_code=status_code, headers={"Connection": "close"}
    )
    await response(scope, receive, send)


ErrorHandler = Callable[[Request, Exception], Awaitable[Response]]


class ErrorResponseMiddleware:
    """Fix two answers Starlette gets wrong for a browser or a client generator.

    - An unhandled exception becomes `handler`'s JSON 500 *here*, inside CORS and the request
      log. (Starlette runs the handler registered for `Exception` in its outermost middleware,
      outside every user middleware, so that 500 reached browsers without CORS headers and
      they saw "Failed to fetch" instead of the `detail`.) The exception is not re-raised: the
      handler has logged it, and the server would only log it twice.
    - A 405's `Allow` lists every method of the path, as the app's OpenAPI document has them:
      FastAPI makes one route per method, and Starlette's 405 names only the methods of the
      first that matched.
    """

    def __init__(self, app: ASGIApp, handler: ErrorHandler) -> None:
        self.app = app
        self.handler = handler
        self._methods: list[tuple[re.Pattern[str], bytes]] | None = None  # read on a first 405

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def checked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if message["status"] == 405:
                    allow = self._allow(scope)
                    message = {**message, "headers": _with_allow(message["headers"], allow)}
            await send(message)

        try:
            await self.app(scope, receive, checked_send)
        except Exception as exc:
            if started:
                raise
            response = await self.handler(Request(scope), exc)
            await response(scope, receive, send)

    def _allow(self, scope: Scope) -> bytes:
        """The methods of the path template `scope`'s path matches, for `Allow`."""
        if self._methods is None:
            paths = scope["app"].openapi()["paths"]
            self._methods = [
                (compile_path(path)[0], ", ".join(method.upper() for method in item).encode())
                for path, item in paths.items()
            ]
        return next((allow for path, allow in self._methods if path.match(scope["path"])), b"")


def _with_allow(headers: list[tuple[bytes, bytes]], allow: bytes) -> list[tuple[bytes, bytes]]:
    if not allow:  # no route of the app matched the path: leave Starlette's header
        return headers
    kept = [(name, value) for name, value in headers if name.lower() != b"allow"]
    return [*kept, (b"allow", allow)]


SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:+=/-]{1,128}")


class RequestLogMiddleware:
    """One JSON line per request on the `backend.access` logger, and `X-Request-ID` echoed.

    The line holds the method, the route *template* (never the path: it carries the user id),
    the status, the duration in ms, the request id and a short keyed hash of the authenticated
    user id (set by `dependencies.BetterAuthBearer`), so one user's requests can be followed
    without naming them. Keyed, because an unkeyed hash of a guessable id (`user-4242`) is read
    back by hashing guesses; the key is `user_hash_key` (one per deployment, so hashes match
    across workers and restarts), else random for this process.
    Never a header value, query or body: tokens and task text stay out of the logs.

    The request id is the client's `X-Request-ID` when it is sane (1-128 characters of
    `[A-Za-z0-9._:+=/-]`, so it cannot forge log lines), otherwise 128 random bits in hex. It is
    put in `scope["state"]` (`request.state.request_id`) for the 500 log line. A client's id is
    the client's to choose (another client's included), so its line also carries the server's
    own id, `server_request_id`, which names that one request.
    """

    def __init__(self, app: ASGIApp, user_hash_key: bytes | None = None) -> None:
        self.app = app
        # Any length of key: blake2b takes at most 64 bytes, so it is hashed to 32 once.
        key = hashlib.sha256(user_hash_key).digest() if user_hash_key else secrets.token_bytes(32)
        self._user_hash = hashlib.blake2b(key=key, digest_size=6)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        sent_id = _client_request_id(scope["headers"])
        server_id = secrets.token_hex(16)
        request_id = sent_id or server_id
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        echoed = (b"x-request-id", request_id.encode())
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), echoed]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if access_logger.isEnabledFor(logging.INFO):
                route = scope.get("route")
                user_id = state.get("user_id")
                record = {
                    "method": scope["method"],
                    "route": getattr(route, "path", None),
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    "request_id": request_id,
                    **({"server_request_id": server_id} if sent_id else {}),
                    "user": self._short_hash(user_id) if user_id else None,
                }
                access_logger.info(json.dumps(record, separators=(",", ":")))

    def _short_hash(self, user_id: str) -> str:
        """12 hex digits: enough to tell users apart in a log; without the key, not even a
        guessable id can be read back."""
        digest = self._user_hash.copy()
        digest.update(user_id.encode())
        return digest.hexdigest()


def _client_request_id(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            return candidate if SANE_REQUEST_ID.fullmatch(candidate) else None
    return None
