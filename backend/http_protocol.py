"""uvicorn's httptools protocol with a limit on the request head, enforced as it streams in.

httptools buffers the request line and headers without any limit, and uvicorn appends each piece
of the URL to a bytes object, in time that grows with the square of its size: one unauthenticated
80 MB header block held a worker's event loop for seconds, and the app's own 431 check runs only
once parsing is over. uvicorn's h11 protocol can cap the head too, but its pure-Python parser
costs a sixth of the CPU budget of a request (loadtests/README.md); counting bytes here costs
nothing measurable.
"""

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# Above the app's 64 KiB header limit, so heads between the two still get its JSON 431.
MAX_HEAD_BYTES = 128 * 1024


class HeadLimitedHttpToolsProtocol(HttpToolsProtocol):
    """Refuse (400, connection closed) a request whose line and headers exceed `MAX_HEAD_BYTES`.

    Bytes are counted only when the head is still incomplete after they were parsed, so they all
    belong to a head (at most one chunk of a pipelined body's tail is counted too): the parser's
    work per request stays bounded by the limit.
    """

    _in_head = True
    _head_bytes = 0

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._in_head and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self.send_400_response("Request head too large")

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True
        self._head_bytes = 0
