"""Read Locust's CSV stats, print them per endpoint, and judge them against SPEC.md's targets.

SC-001: every call answers within `max_ms` (the slowest one, p100). SC-003: no failed request
(failures include every wrong answer the scenarios detect, not only errors). SC-004: p95 within
`max_p95_ms`, over all requests.
"""

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from loadtests.endpoints import label_of


@dataclass(frozen=True)
class Row:
    """One line of `<prefix>_stats.csv`: an endpoint, or the aggregate of all of them."""

    label: str
    method: str
    requests: int
    failures: int
    p50: float
    p95: float
    p99: float
    max: float
    rps: float


@dataclass(frozen=True)
class Check:
    criterion: str
    passed: bool
    detail: str


def read_stats(stats_csv: Path) -> tuple[list[Row], Row]:
    """The per-endpoint rows and the aggregate row of a Locust `_stats.csv`."""
    rows: list[Row] = []
    aggregate: Row | None = None
    with stats_csv.open(newline="", encoding="utf-8") as handle:
        for record in csv.DictReader(handle):
            row = Row(
                label=label_of(record["Type"], record["Name"]),
                method=record["Type"],
                requests=int(record["Request Count"]),
                failures=int(record["Failure Count"]),
                p50=_ms(record["50%"]),
                p95=_ms(record["95%"]),
                p99=_ms(record["99%"]),
                max=_ms(record["Max Response Time"]),
                rps=float(record["Requests/s"]),
            )
            if record["Name"] == "Aggregated":
                aggregate = row
            else:
                rows.append(row)
    if aggregate is None:
        raise ValueError(f"{stats_csv} has no Aggregated row")
    return rows, aggregate


def _ms(value: str) -> float:
    return float(value) if value not in ("", "N/A") else 0.0


def read_failures(failures_csv: Path) -> list[tuple[str, int]]:
    """`(endpoint: error, occurrences)` from `<prefix>_failures.csv`, most frequent first."""
    if not failures_csv.exists():
        return []
    with failures_csv.open(newline="", encoding="utf-8") as handle:
        found = [
            (f"{label_of(r['Method'], r['Name'])}: {r['Error']}", int(r["Occurrences"]))
            for r in csv.DictReader(handle)
        ]
    return sorted(found, key=lambda item: -item[1])


def table(rows: Sequence[Row], aggregate: Row) -> str:
    """A fixed-width table, one line per endpoint and one for the aggregate (times in ms)."""
    header = (
        f"{'endpoint':<10} {'method':<7} {'requests':>9} {'fails':>6} "
        f"{'p50':>6} {'p95':>6} {'p99':>6} {'max':>7} {'rps':>8}"
    )
    lines = [header, "-" * len(header)]
    for row in [*sorted(rows, key=lambda r: -r.requests), aggregate]:
        label = "all" if row is aggregate else row.label
        method = "" if row is aggregate else row.method
        lines.append(
            f"{label:<10} {method:<7} {row.requests:>9} {row.failures:>6} "
            f"{row.p50:>6.0f} {row.p95:>6.0f} {row.p99:>6.0f} {row.max:>7.0f} {row.rps:>8.1f}"
        )
    return "\n".join(lines)


def headline(aggregate: Row, cpu_ms: float | None) -> str:
    """The figures to compare runs by, on one line: throughput, latency, server CPU per request."""
    cpu_text = (
        f"{cpu_ms:.3f} ms" if cpu_ms is not None else "not measured (backend not started here)"
    )
    return (
        f"all: {aggregate.rps:.1f} rps, p50/p95/p99 {aggregate.p50:.0f}/{aggregate.p95:.0f}/"
        f"{aggregate.p99:.0f} ms, {aggregate.failures} failed; server CPU per request {cpu_text}"
    )


def judge(aggregate: Row, *, max_ms: float, max_p95_ms: float) -> list[Check]:
    return [
        Check(
            "SC-001 every call < max",
            aggregate.max < max_ms,
            f"slowest {aggregate.max:.0f} ms (limit {max_ms:.0f} ms)",
        ),
        Check(
            "SC-003 no failed request",
            aggregate.failures == 0 and aggregate.requests > 0,
            f"{aggregate.failures} failed of {aggregate.requests}",
        ),
        Check(
            "SC-004 p95 within limit",
            aggregate.p95 <= max_p95_ms,
            f"p95 {aggregate.p95:.0f} ms (limit {max_p95_ms:.0f} ms)",
        ),
    ]
