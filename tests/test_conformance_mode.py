"""Conformance mode proves itself: it passes against our backend and names what a broken one breaks.

Each check runs `pytest --base-url URL …` (what `nox -s conformance` runs) in a subprocess against
a real uvicorn on the session database, so the black-box tests in-process and by URL are the same
functions and cannot drift. The broken copies come from `broken_backend.py` (a fixture).
"""

import importlib.util
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import URL, Engine

from devtools.servers import Server, backend_server, free_port, mock_auth_server, running
from tests.support.helpers import SECRET, count_tasks, unavailable

ROOT = Path(__file__).resolve().parent.parent
ROW = re.compile(r"^(\S+)\s+(pass|FAIL|n/a)\b\s*(.*)$", re.MULTILINE)


def environment(database_url: URL, auth_url: str, **extra: str) -> dict[str, str]:
    return {
        "BETTER_AUTH_SECRET": SECRET,
        "BETTER_AUTH_URL": auth_url,
        "NEON_DATABASE_URL": database_url.render_as_string(hide_password=False),
        "MIGRATE_ON_STARTUP": "false",
        "RATE_LIMIT_PER_MINUTE": "0",
        **extra,
    }


def without_secret() -> dict[str, str]:
    """This process's environment less BETTER_AUTH_SECRET: a run gets only the one given."""
    return {name: value for name, value in os.environ.items() if name != "BETTER_AUTH_SECRET"}


def conformance(
    *args: str, secret: str | None = SECRET
) -> tuple[int, str, dict[str, tuple[str, str]]]:
    """Run conformance mode, `secret` in the environment; (exit code, output, {SPEC ID: (status,
    reason)})."""
    given = {"BETTER_AUTH_SECRET": secret} if secret else {}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--tb=no", *args],
        cwd=ROOT,
        # Summary lines are cut to the terminal's width, which a pipe leaves to the environment.
        env={**without_secret(), **given, "COLUMNS": "250"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    table = result.stdout.rpartition("conformance of ")[2]
    rows = {m.group(1): (m.group(2), m.group(3)) for m in ROW.finditer(table)}
    return result.returncode, result.stdout + result.stderr, rows


def nox(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The real `nox -s conformance -- ARGS`, in this environment (no venv of its own, no installs:
    this one has them), with the secret only where `env` puts it."""
    if importlib.util.find_spec("nox") is None:
        unavailable("nox is not installed: pip install -e '.[test]'")
    path = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # its `pytest`
    return subprocess.run(
        [sys.executable, "-m", "nox", "-f", str(ROOT / "noxfile.py"), "--no-venv", "--no-install",
         "-s", "conformance", "--", *args],
        cwd=ROOT,
        env={**env, "PATH": path, "COLUMNS": "250"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def auth_and_backend(database_url: URL, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
    tuple[str, str]
]:  # fmt: skip
    """mock_auth (JWT plugin tokens, JWKS) and our backend trusting it, on the session database."""
    auth_url = f"http://127.0.0.1:{free_port()}"
    auth = mock_auth_server(
        {
            "BETTER_AUTH_SECRET": SECRET,
            "BETTER_AUTH_URL": auth_url,
            "MOCK_AUTH_MODE": "eddsa",
            "MOCK_AUTH_STATE_FILE": str(tmp_path_factory.mktemp("auth") / "state.json"),
        },
        port=int(auth_url.rpartition(":")[2]),
    )
    backend = backend_server(
        environment(database_url, auth_url),
        log_path=tmp_path_factory.mktemp("backend") / "requests.log",
    )
    with running(auth, backend):
        yield auth_url, backend.url


@pytest.mark.spec("SC-005", "SC-008", "SC-002", "FR-001", "FR-002")
def test_our_backend_passes_every_black_box_check_and_leaves_nothing_behind(
    auth_and_backend: tuple[str, str], clean_db: None, db_engine: Engine
) -> None:
    auth_url, url = auth_and_backend

    code, output, rows = conformance("--base-url", url, "--origin", auth_url)

    assert code == 0, output[-3000:]
    assert rows["US-1.1"][0] == rows["FR-005"][0] == rows["SC-008"][0] == "pass"
    assert rows["FR-014"] == ("n/a", "needs internals")
    assert not [spec_id for spec_id, (status, _) in rows.items() if status == "FAIL"]
    assert re.search(r"^\d+ passed, 0 failed$", output, re.MULTILINE), output[-2000:]
    assert re.search(r"conformance clean-up: [1-9]\d* task\(s\) deleted$", output, re.MULTILINE)
    assert count_tasks(db_engine) == 0  # every task the run created is gone


@pytest.mark.spec("SC-008", "A-2", "EC-6", "FR-002")
def test_users_signed_up_through_better_auth_with_jwt_plugin_tokens(
    auth_and_backend: tuple[str, str], clean_db: None, db_engine: Engine
) -> None:
    auth_url, url = auth_and_backend

    code, output, rows = conformance(
        "--base-url", url, "--auth-url", auth_url, "--only", "US-1,EC-6", secret=None
    )

    assert code == 0, output[-3000:]
    assert rows["US-1.1"][0] == rows["EC-6"][0] == "pass"
    assert re.search(r"[1-9]\d* users signed up", output)
    assert "needs the secret" in output  # minting checks are not applicable without it
    assert count_tasks(db_engine) == 0


@pytest.mark.spec("SC-005")
def test_dry_run_lists_the_checks_and_sends_nothing() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"

        code, output, _ = conformance("--base-url", url, "--dry-run", "--only", "US-5")

        with pytest.raises(BlockingIOError):
            listener.accept()  # no connection was ever made
    assert code == 0, output
    assert "DRY RUN" in output
    assert re.search(
        r"test_delete_is_204\S* +\[US-5, FR-012, SC-005\] +sends: DELETE, GET, POST", output
    )


@pytest.mark.spec("SC-002", "FR-006", "FR-008", "FR-002", "EC-6", "US-3", "FR-010")
def test_a_broken_backend_fails_and_names_the_broken_ids(
    database_url: URL, auth_and_backend: tuple[str, str], clean_db: None, tmp_path: Path
) -> None:
    auth_url, _ = auth_and_backend
    port = free_port()
    broken = Server(
        "broken backend",
        [sys.executable, "-m", "uvicorn", "tests.plugins.broken_backend:create_app", "--factory",
         "--host", "127.0.0.1", "--port", str(port), "--no-access-log"],
        {**environment(database_url, auth_url,
                       BROKEN="unscoped-list,accept-bad-signature,patch-only"),
         "PYTHONPATH": str(ROOT)},
        f"http://127.0.0.1:{port}",
        "/health",
    )  # fmt: skip
    junit = tmp_path / "conformance.xml"

    with running(broken):
        code, output, rows = conformance(
            "--base-url", broken.url,
            "--only", "US-1.1,US-2.1,US-3,US-4,EC-6,FR-002,FR-006",
            "--junit", str(junit),
        )  # fmt: skip

    assert code == 1, output[-3000:]
    failed = {spec_id for spec_id, (status, _) in rows.items() if status == "FAIL"}
    assert {"US-2.1", "FR-006", "US-3", "EC-6", "FR-002"} <= failed, rows
    assert {"US-1.1", "US-4"}.isdisjoint(failed), rows  # what is not broken still passes
    assert "FAILED tests/test_tasks_list.py::test_returns_all_and_only_my_tasks" in output
    # PUT is gone: the update checks see 405 (the row names the first failing check only).
    assert (
        "FAILED tests/test_tasks_update.py::test_fields_sent_change_fields_left_out_stay[PUT]"
        in output
    )
    assert "assert 405 == 200" in output
    assert re.search(r"^\d+ passed, [1-9]\d* failed$", output, re.MULTILINE)
    assert 'failures="' in junit.read_text()


LEAKED = "a-secret-typed-on-a-command-line-0123456789"


@pytest.mark.spec("FR-017")
@pytest.mark.parametrize("form", [("--secret", LEAKED), (f"--secret={LEAKED}",)])
def test_a_secret_on_the_command_line_is_refused_and_not_shown(form: tuple[str, ...]) -> None:
    code, output, _ = conformance(
        "--base-url", "http://127.0.0.1:9", *form, "--dry-run", secret=None
    )

    assert code == pytest.ExitCode.USAGE_ERROR, output[-2000:]
    assert "--secret is refused" in output
    assert "BETTER_AUTH_SECRET" in output
    assert "--secret-file" in output
    assert LEAKED not in output


@pytest.mark.spec("FR-017")
@pytest.mark.parametrize("form", [("--secret", LEAKED), (f"--secret={LEAKED}",)])
def test_nox_refuses_a_secret_on_its_command_line_before_echoing_it(
    form: tuple[str, ...],
) -> None:
    result = nox("--base-url", "http://127.0.0.1:9", *form, env=without_secret())

    assert result.returncode != 0
    assert "--secret is refused" in result.stderr
    assert LEAKED not in result.stdout + result.stderr


@pytest.mark.spec("FR-017", "SC-005")
@pytest.mark.parametrize("way", ["environment", "secret-file"])
def test_nox_conformance_shows_the_secret_nowhere(
    auth_and_backend: tuple[str, str], clean_db: None, tmp_path: Path, way: str
) -> None:
    """nox echoes the command it runs (into CI logs), pytest writes its output and the JUnit
    XML: the secret, from the environment or a file, is in none of them."""
    _, url = auth_and_backend
    junit = tmp_path / "conformance.xml"
    args = ["--base-url", url, "--only", "US-2.2,EC-6", "--junit", str(junit)]
    env = without_secret()
    if way == "environment":
        env["BETTER_AUTH_SECRET"] = SECRET
    else:
        secret_file = tmp_path / "secret"
        secret_file.write_text(SECRET + "\n")
        args += ["--secret-file", str(secret_file)]

    result = nox(*args, env=env)

    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "nox > pytest -p no:cacheprovider" in output  # the echoed command
    assert re.search(r"^US-2\.2\s+pass", output, re.MULTILINE)
    assert re.search(r"^EC-6\s+pass", output, re.MULTILINE)  # tokens minted with the secret
    assert SECRET not in output
    assert SECRET not in junit.read_text()


@pytest.mark.spec("FR-017")
@pytest.mark.parametrize(("content", "reason"), [(None, "cannot read it"), ("\n", "is empty")])
def test_an_unusable_secret_file_is_a_clear_usage_error(
    tmp_path: Path, content: str | None, reason: str
) -> None:
    path = tmp_path / "secret"
    if content is not None:
        path.write_text(content)

    code, output, _ = conformance(
        "--base-url", "http://127.0.0.1:9", f"--secret-file={path}", "--dry-run", secret=None
    )

    assert code == pytest.ExitCode.USAGE_ERROR
    assert f"--secret-file {path}" in output
    assert reason in output
