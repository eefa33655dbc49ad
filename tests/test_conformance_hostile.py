"""Conformance mode against a hostile or broken server: FAIL lines with a one-line reason, never
a hang, a traceback or runaway memory, and no token or secret sent to any other host.

Each run is `pytest --base-url URL …` in a subprocess (what `nox -s conformance` runs) against a
server of tests/support/hostile_http.py on 127.0.0.1, with the secret in the environment; a
second server on 127.0.0.2 is where every redirect points, and must see no connection at all.
Each run's peak memory is its own (`os.wait4`), and each run is bounded by `RUN_SECONDS`.
"""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.plugins.bounded_http import TargetError
from tests.plugins.conformance import ConformanceClient
from tests.support.hostile_http import Answer, bomb, drip, endless, html, redirect, serving

ROOT = Path(__file__).resolve().parent.parent
SECRET = "hostile-run-secret-0123456789abcdefghijklmnop"
RUN_SECONDS = 60  # a run that is not over by then hangs: killed, and the test fails
# Without the cap a gzip bomb took the tool to 989 MiB; an ordinary run needs about 130.
MAX_RSS_MIB = 300
ROW = re.compile(r"^(\S+)\s+(pass|FAIL|n/a)\b\s*(.*)$", re.MULTILINE)


# Started from this (large) test process, the run's peak RSS would count the pages it shared
# with it before exec; a small Python in between starts the run and reports the run's own peak.
PEAK_RSS = (
    "import os, subprocess, sys\n"
    "run = subprocess.Popen(sys.argv[1:])\n"
    "_, status, usage = os.wait4(run.pid, 0)\n"
    "print(f'peak-rss-kib={usage.ru_maxrss}')\n"
    "sys.exit(os.waitstatus_to_exitcode(status))\n"
)


def run_against(url: str, *args: str) -> tuple[int, str, float, float]:
    """(exit code, output, seconds, peak RSS in MiB) of conformance mode against `url`."""
    command = [
        sys.executable, "-c", PEAK_RSS,
        sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--tb=line",
        "tests/test_tasks_list.py", "tests/test_tasks_create.py",
        "--base-url", url, "--request-timeout", "1", *args,
    ]  # fmt: skip
    environment = {**os.environ, "BETTER_AUTH_SECRET": SECRET, "COLUMNS": "250"}
    started = time.monotonic()
    with subprocess.Popen(
        command,
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # a process group: a run past its time is killed whole
    ) as process:
        try:
            output, _ = process.communicate(timeout=RUN_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            output, _ = process.communicate()
            pytest.fail(f"the run hung for {RUN_SECONDS} s: {output[-2000:]}")
    output, _, peak = output.rpartition("peak-rss-kib=")
    return process.returncode, output, time.monotonic() - started, int(peak) / 1024


def rows_of(output: str) -> dict[str, tuple[str, str]]:
    table = output.rpartition("conformance of ")[2]
    return {m.group(1): (m.group(2), m.group(3)) for m in ROW.finditer(table)}


def assert_failed_cleanly(
    code: int, output: str, seconds: float, rss: float, *, expected: int = 1
) -> None:
    """Checks failed (1; 2 once the run is stopped early), not a crash (3) nor a usage error."""
    assert code == expected, output[-3000:]
    assert "Traceback (most recent call last)" not in output
    assert "INTERNALERROR" not in output
    assert SECRET not in output
    assert seconds < RUN_SECONDS
    assert rss < MAX_RSS_MIB, f"{rss:.0f} MiB"


HOSTILE: dict[str, tuple[Answer, str]] = {
    "drip-body": (drip(), "no complete answer within 1 s"),
    "drip-headers": (drip(in_head=True), "no complete answer within 1 s"),
    "gzip-bomb": (bomb, "a compressed answer (Content-Encoding: gzip)"),
    "endless-body": (endless, "answer larger than 1048576 bytes; cut off"),
    "web-page": (html, "JSONDecodeError"),
}


@pytest.mark.spec("SC-005")
@pytest.mark.parametrize("kind", HOSTILE)
def test_a_hostile_answer_is_a_fail_line_with_its_reason(kind: str) -> None:
    answer, reason = HOSTILE[kind]
    with serving(answer) as server:
        code, output, seconds, rss = run_against(server.url, "--only", "US-2.2")

    assert_failed_cleanly(code, output, seconds, rss)
    status, why = rows_of(output)["US-2.2"]
    assert status == "FAIL"
    assert reason in why, why
    assert "\n" not in why


@pytest.mark.spec("SC-005", "FR-017")
def test_a_redirect_to_another_host_is_not_followed_and_the_token_stays_home() -> None:
    with (
        serving(html, host="127.0.0.2") as elsewhere,
        serving(redirect(f"{elsewhere.url}/api/stolen")) as server,
    ):
        code, output, seconds, rss = run_against(server.url, "--only", "US-1.1")

    assert_failed_cleanly(code, output, seconds, rss)
    assert rows_of(output)["US-1.1"][0] == "FAIL"
    assert "307" in rows_of(output)["US-1.1"][1]
    assert server.received, "the target was asked"
    assert all(r.headers["authorization"].startswith("Bearer ") for r in server.received)
    assert elsewhere.connections == 0


@pytest.mark.spec("SC-005", "FR-017")
def test_a_hostile_auth_server_gets_no_sign_up_sent_elsewhere() -> None:
    """`--auth-url`: a sign-up (email, password) redirected with a 307, which keeps the body, must
    not be sent on to the other host."""
    with (
        serving(html, host="127.0.0.2") as elsewhere,
        serving(redirect(f"{elsewhere.url}/api/auth/sign-up/email")) as auth,
        serving(html) as backend,
    ):
        code, output, seconds, rss = run_against(
            backend.url, "--auth-url", auth.url, "--only", "US-2.2"
        )

    assert_failed_cleanly(code, output, seconds, rss)
    assert "sign-up: 307" in rows_of(output)["US-2.2"][1]
    assert [r.target for r in auth.received] == ["/api/auth/sign-up/email"]
    assert elsewhere.connections == 0
    assert backend.received == []  # no user, no request


@pytest.mark.spec("SC-005")
def test_max_seconds_bounds_the_whole_run() -> None:
    """Each request is cut at its deadline, and the run stops sending once `--max-seconds` is
    spent, whatever is left to check."""
    with serving(drip(0.2)) as server:
        code, output, seconds, rss = run_against(
            server.url, "--only", "US-1,US-2", "--request-timeout", "0.5", "--max-seconds", "3"
        )

    assert_failed_cleanly(code, output, seconds, rss, expected=pytest.ExitCode.INTERRUPTED)
    assert "run time of 3 s exhausted (--max-seconds)" in output
    assert "INTERRUPTED: the table below is partial" in output
    assert len(server.received) <= 3 / 0.5 + 1
    assert "not run (interrupted, or the request budget or run time ran out)" in output


@pytest.mark.spec("SC-005", "FR-017")
def test_a_check_asking_for_another_origin_sends_it_nothing() -> None:
    """A URL a hostile answer supplied (a `Location` a check follows) never gets the token."""
    with serving(html, host="127.0.0.2") as elsewhere, serving(html) as target:
        client = ConformanceClient(target.url, max_requests=10, rate=0)
        try:
            with pytest.raises(TargetError, match="not the origin of --base-url"):
                client.get(f"{elsewhere.url}/api/x", headers={"Authorization": "Bearer t"})
            assert client.get(f"{target.url}/health").status_code == 200
        finally:
            client.close()

    assert elsewhere.connections == 0
    assert [r.target for r in target.received] == ["/health"]
