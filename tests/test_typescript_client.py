"""The TypeScript client in `clients/typescript/`, as a frontend developer uses it.

Against a live `python -m backend` on the session database:
- the committed `openapi.json` and `src/schema.d.ts` are exactly what `generate.mjs` produces
  from the running backend's `/openapi.json` (so they are never stale);
- the client, the Next.js example and the smoke script type-check under `tsc --strict`;
- every operation runs through the generated openapi-fetch client (`test/smoke.ts`);
- the client retries what is safe to retry and nothing else (`test/retry.ts`), against a backend
  with a proxy on each side that loses answers: from the database (the backend answers 503) and
  on their way to the client (a network error);
- @hey-api/openapi-ts with its zod plugin generates a client that compiles and validates.

The Node tools come from `npm ci --prefix clients/typescript` (`.ci/run` does it). Without
them the tests skip locally, and fail under `CI=true`.
"""

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL, Engine, make_url

from devtools.servers import Server, backend_server, running
from loadtests.latency_proxy import LatencyProxy
from tests.support.hardening import backend_env, proxy_target
from tests.support.helpers import make_token, unavailable

CLIENT = Path(__file__).resolve().parent.parent / "clients" / "typescript"


@pytest.fixture(scope="module")
def npm() -> str:
    """`npm`, once `npm ci` has installed the client's tools; else skip (fail under CI)."""
    npm = shutil.which("npm")
    missing = npm is None or not (CLIENT / "node_modules" / ".bin" / "tsc").exists()
    if missing:
        unavailable("Node tools missing: run `npm ci --prefix clients/typescript`")
    assert npm is not None
    return npm


@pytest.fixture(scope="module")
def backend(database_url: URL) -> Iterator[Server]:
    with running(backend_server(backend_env(database_url))) as (server,):
        yield server


@dataclass(frozen=True)
class Flaky:
    """A live backend between two proxies, each of which loses the next answer when told."""

    database: LatencyProxy
    """Between the backend and PostgreSQL: a statement runs, its answer is lost (a 503)."""
    http: LatencyProxy
    """Between the client and the backend: the request is served, its answer is lost."""
    url: str


@pytest.fixture(scope="module")
def flaky(database_url: URL) -> Iterator[Flaky]:
    with LatencyProxy(proxy_target(database_url), 0) as database:
        via = make_url(f"postgresql://postgres@127.0.0.1:{database.port}/postgres")
        with (
            running(backend_server(backend_env(via))) as (server,),
            LatencyProxy(server.url.removeprefix("http://"), 0) as http,
        ):
            yield Flaky(database, http, f"http://127.0.0.1:{http.port}")


def run(npm: str, *args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [npm, "run", "--silent", *args],
        cwd=CLIENT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"npm run {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.mark.spec("FR-018", "SC-008")
def test_the_committed_client_is_what_the_running_backend_generates(
    npm: str, backend: Server, tmp_path: Path
) -> None:
    run(npm, "generate", "--", backend.url + "/openapi.json", str(tmp_path))

    for name in ("openapi.json", "src/schema.d.ts"):
        fresh = (tmp_path / name).read_text(encoding="utf-8")
        committed = (CLIENT / name).read_text(encoding="utf-8")
        assert fresh == committed, f"{name} is stale: run `npm run generate` in clients/typescript"


@pytest.mark.spec("SC-008", "US-1.1", "US-2.3")
def test_client_and_nextjs_example_type_check_under_strict(npm: str) -> None:
    """Title-only creates, `status: "incomplete"`, optional update fields: all must compile."""
    run(npm, "typecheck")
    schema = (CLIENT / "src" / "schema.d.ts").read_text(encoding="utf-8")
    assert (
        'status?: "all" | "pending" | "completed" | "incomplete" | "active" | "todo" | "done";'
    ) in schema


@pytest.mark.spec("SC-005", "SC-008", "US-1.1", "US-2.3", "US-3", "US-4", "US-5", "US-6")
def test_every_operation_works_through_the_generated_client(npm: str, backend: Server) -> None:
    user_id = f"ts-client-{uuid.uuid4().hex[:12]}"
    run(npm, "build:smoke")

    output = run(
        npm,
        "smoke",
        env={"BASE_URL": backend.url, "USER_ID": user_id, "TOKEN": make_token(user_id)},
    )

    operations = json.loads(output.strip().splitlines()[-1])["operations"]
    schema = json.loads((CLIENT / "openapi.json").read_text(encoding="utf-8"))
    documented = {op["operationId"] for item in schema["paths"].values() for op in item.values()}
    assert set(operations) == documented


@pytest.mark.spec("FR-018", "US-2.3")
def test_hey_api_zod_client_compiles_and_validates(npm: str) -> None:
    """The zod module used to fail to load: `(?i)` query patterns are not ECMAScript regexes."""
    assert "zod ok" in run(npm, "hey")


@pytest.mark.spec("FR-021", "SC-008", "EC-3", "FR-011")
def test_the_client_retries_what_is_safe_to_retry_and_nothing_else(
    npm: str, flaky: Flaky, db_engine: Engine
) -> None:
    user_id = f"ts-retry-{uuid.uuid4().hex[:12]}"
    env = {"BASE_URL": flaky.url, "USER_ID": user_id, "TOKEN": make_token(user_id)}
    run(npm, "build:smoke")

    def call(*args: str) -> dict[str, Any]:
        answer: dict[str, Any] = json.loads(
            run(npm, "retry", "--", *args, env=env).splitlines()[-1]
        )
        return answer

    def reasons(answer: dict[str, Any]) -> list[str]:
        return [retry["reason"] for retry in answer["retries"]]

    def stored() -> list[tuple[str, bool]]:
        query = text("SELECT title, completed FROM task WHERE user_id = :u ORDER BY id")
        with db_engine.connect() as connection:
            return [(row.title, row.completed) for row in connection.execute(query, {"u": user_id})]

    # Creates: the INSERT committed but the database connection lost its answer (503), or the
    # answer was lost on its way here (a network error). Retried with their key: stored once.
    flaky.database.lose_answer_to(b"stored, answer lost")
    after_503 = call("create", "stored, answer lost")
    flaky.http.lose_answer_to(b"answer lost on the way")
    after_drop = call("create", "answer lost on the way")
    created = stored()
    first, second = after_503["body"]["id"], after_drop["body"]["id"]

    # Setting completion is retried; a bare toggle is not (a second would undo the first).
    flaky.http.lose_answer_to(b'{"completed":true}')
    set_true = call("set", str(first), "true")
    flaky.http.lose_answer_to(f"/tasks/{first}/complete HTTP".encode())
    toggled = call("toggle", str(first))
    completed_after_toggle = stored()[0][1]
    flaky.http.lose_answer_to(b"renamed on a retry")
    updated = call("update", str(first), "renamed on a retry")
    flaky.http.lose_answer_to(f"GET /api/{user_id}/tasks/{first} HTTP".encode())
    got = call("get", str(first))
    # A delete whose 204 was lost: the retry's 404 means done.
    flaky.database.lose_answer_to(b"DELETE FROM task")
    deleted = call("delete", str(second))
    # A fresh key per create: the same body twice is two tasks.
    twice = [call("create", "same body")["body"]["id"] for _ in range(2)]

    assert (after_503["status"], after_503["retries"]) == (
        201,
        [{"method": "POST", "attempt": 2, "reason": "503", "delayMs": 2000}],
    )
    assert (after_drop["status"], reasons(after_drop)) == (201, ["network error"])
    assert created == [("stored, answer lost", False), ("answer lost on the way", False)]
    assert (set_true["status"], set_true["body"]["completed"], reasons(set_true)) == (
        200,
        True,
        ["network error"],
    )
    assert ("thrown" in toggled, toggled["retries"]) == (True, [])
    assert completed_after_toggle is False  # toggled once, not twice
    assert (updated["status"], reasons(updated)) == (200, ["network error"])
    assert (got["status"], got["body"]["title"], reasons(got)) == (
        200,
        "renamed on a retry",
        ["network error"],
    )
    assert (deleted["status"], reasons(deleted)) == (204, ["503"])
    assert twice[0] != twice[1]
    assert stored() == [("renamed on a retry", False), ("same body", False), ("same body", False)]
