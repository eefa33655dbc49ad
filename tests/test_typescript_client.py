"""The TypeScript client in `clients/typescript/`, as a frontend developer uses it.

Against a live `python -m backend` on the session database:
- the committed `openapi.json` and `src/schema.d.ts` are exactly what `generate.mjs` produces
  from the running backend's `/openapi.json` (so they are never stale);
- the client, the Next.js example and the smoke script type-check under `tsc --strict`;
- every operation runs through the generated openapi-fetch client (`test/smoke.ts`);
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
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from devtools.servers import Server, backend_server, running
from tests.helpers import AUTH_URL, SECRET, make_token, unavailable

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
    env = {
        "BETTER_AUTH_SECRET": SECRET,
        "BETTER_AUTH_URL": AUTH_URL,
        "NEON_DATABASE_URL": database_url.render_as_string(hide_password=False),
        "MIGRATE_ON_STARTUP": "false",
        "RATE_LIMIT_PER_MINUTE": "0",
    }
    with running(backend_server(env)) as (server,):
        yield server


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
