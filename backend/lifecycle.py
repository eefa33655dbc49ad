"""The worker's phase, shared by the server that drains it and the app that reports it."""


class Lifecycle:
    """Set to draining on SIGTERM: `/health/ready` answers 503 and keep-alive answers close,
    while the worker still serves (`backend.serving`)."""

    def __init__(self) -> None:
        self.draining = False
