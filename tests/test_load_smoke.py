"""The load test itself, run small: its scenarios must keep working as the API evolves.

A few users for a few seconds at saturation, through `python -m loadtests` exactly as
`nox -s load` runs it (embedded PostgreSQL, backend under uvicorn, Locust, round-trip count):
no failed request, every endpoint exercised, one statement per request.
"""

import subprocess
import sys
from pathlib import Path

import pytest

from loadtests import report
from loadtests.endpoints import TASK_ENDPOINTS

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.spec("SC-003", "SC-001", "SC-002", "SC-004")
def test_saturation_run_has_no_failures_and_hits_every_endpoint(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "loadtests", "--users", "5", "--spawn-rate", "5"]
    command += ["--duration", "6s", "--roundtrip-calls", "20", "--report-dir", str(tmp_path)]
    # List latency is a benchmark (timings, judged by `nox -s load`), not a pass/fail unit test.
    command += ["--no-list-scaling"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)

    assert result.returncode == 0, result.stdout + result.stderr
    rows, aggregate = report.read_stats(tmp_path / "saturation-5u-0ms_stats.csv")
    assert aggregate.failures == 0
    assert aggregate.max < 2000  # SC-001
    assert aggregate.p95 <= 500  # SC-004 (locally; `nox -s load` measures it at 50 users)
    hit = {row.label for row in rows if row.requests > 0}
    assert hit >= {endpoint.label for endpoint in TASK_ENDPOINTS}
    assert "OVER" not in result.stdout
