"""What a client saw of each request through the balancer, one line a request, and tallies of them.

The fleet's Locust users check every answer as the saturation users do (`loadtests.locustfile`);
this tells apart what went wrong, because who answered matters: the API's own JSON 503 with
`Retry-After` while the database is down is correct, HAProxy's HTML 502/503/504 never is, and a
connection reset or timeout is a request lost without an answer.
"""

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

OK = "ok"
API_503 = "api 503"
RESET = "reset"
REFUSED = "refused"
TIMEOUT = "timeout"
WRONG = "wrong answer"
PROXY = "haproxy "
"""The prefix of HAProxy's own answers: `haproxy 502`, `haproxy 503`, `haproxy 504`."""
PROXY_STATUSES = (502, 503, 504)


def classify(
    status: int,
    content_type: str,
    retry_after: str | None,
    body: str,
    error: BaseException | None,
    failed: bool,
) -> str:
    """The kind of one outcome: `error` is the transport's, `failed` the response checks'."""
    if error is not None:
        if isinstance(error, ConnectionRefusedError):
            return REFUSED
        if isinstance(error, TimeoutError) or "timeout" in type(error).__name__.lower():
            return TIMEOUT
        return RESET  # reset, broken pipe, closed before a whole answer
    if not failed:
        return OK
    json_answer = content_type.startswith("application/json")
    if status in PROXY_STATUSES and not json_answer:
        return f"{PROXY}{status}"
    if status == 503 and json_answer and retry_after and _has_detail(body):
        return API_503
    return WRONG


def _has_detail(body: str) -> bool:
    try:
        answer = json.loads(body)
    except ValueError:
        return False
    return isinstance(answer, dict) and isinstance(answer.get("detail"), str)


@dataclass(frozen=True)
class Record:
    """One request: when it started (`time.time()`), how long it took, what came of it."""

    start: float
    ms: float
    kind: str
    request: str
    detail: str

    def line(self) -> str:
        clean = " ".join(self.detail.split())[:200]
        return f"{self.start:.4f}\t{self.ms:.1f}\t{self.kind}\t{self.request}\t{clean}\n"

    @classmethod
    def parse(cls, line: str) -> "Record":
        start, ms, kind, request, detail = line.rstrip("\n").split("\t")
        return cls(float(start), float(ms), kind, request, detail)


def read(path: Path) -> list[Record]:
    """The records written so far (a line still being written is left out)."""
    lines = path.read_text().splitlines(keepends=True) if path.exists() else []
    return [Record.parse(line) for line in lines if line.endswith("\n")]


@dataclass
class Tally:
    """Outcomes of the requests that started within one window of time."""

    kinds: Counter[str] = field(default_factory=Counter)
    max_ms: float = 0.0
    examples: dict[str, str] = field(default_factory=dict)
    """The first detail seen of each kind of failure."""
    failed_at: list[float] = field(default_factory=list)
    """When each failed request started."""

    @classmethod
    def of(cls, records: Iterable[Record], start: float, end: float) -> "Tally":
        tally = cls()
        for record in records:
            if start <= record.start < end:
                tally.kinds[record.kind] += 1
                tally.max_ms = max(tally.max_ms, record.ms)
                if record.kind != OK:
                    tally.examples.setdefault(record.kind, f"{record.request}: {record.detail}")
                    tally.failed_at.append(record.start)
        return tally

    @property
    def requests(self) -> int:
        return sum(self.kinds.values())

    @property
    def failures(self) -> int:
        """Every request a client saw fail, the API's 503 included."""
        return self.requests - self.kinds[OK]

    @property
    def proxy_answers(self) -> int:
        return sum(count for kind, count in self.kinds.items() if kind.startswith(PROXY))

    @property
    def lost(self) -> int:
        """Requests that got no answer at all."""
        return self.kinds[RESET] + self.kinds[REFUSED] + self.kinds[TIMEOUT]
