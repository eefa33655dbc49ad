"""Request bodies over `MAX_BODY_BYTES` are a 413 in Better Auth's error shape, read or not.

better-auth sets no limit of its own (better-call's Node adapter can take one; `toNodeHandler`
passes none), and every body it is sent is a few hundred bytes: the limit refuses nothing real,
and keeps a client from making this process hold, store and sign megabytes.
A declared `Content-Length` is refused here, before a byte is read (FastAPI would answer it in
plain text, outside CORS); a streamed body is counted by FastAPI's `max_body_size` on the routers,
whose 413 the error handlers answer.
"""

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from mock_auth.errors import too_large

MAX_BODY_BYTES = 64 * 1024


class DeclaredBodyLimitMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            declared = Headers(scope=scope).get("content-length", "")
            if declared.isascii() and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
                await too_large()(scope, receive, send)
                return
        await self.app(scope, receive, send)
