"""Schema fuzzing (SC-009, FR-018, FR-019): Schemathesis against the app's own OpenAPI schema.

Every operation gets positive and negative cases generated from the schema, sent with a valid
token of a fixed user whose id is in the path (so the cases reach validation, the database and
the serialiser rather than stopping at 401/403). Each response must: not be a 5xx, have a
documented status code, match the documented schema and content type. Some generated task ids
are mapped onto the user's real tasks so updates and deletes hit rows, not only 404s.

`FUZZ_EXAMPLES` (examples per operation and mode) makes the run longer (`nox -s fuzz`).
"""

import contextlib
import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from backend.config import Settings
from backend.main import create_app
from tests.support.hardening import hypothesis_settings, report
from tests.support.helpers import Caller

FUZZER = Caller("fuzz-user-0123456789abcdefghijk")
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "0")) or 25
CHECKS = [
    schemathesis.checks.not_a_server_error,
    status_code_conformance,
    response_schema_conformance,
    content_type_conformance,
]


@pytest.fixture
def fuzz_app(settings: Settings, clean_db: None) -> Iterator[FastAPI]:
    """An app instance of the fuzz test's own; Schemathesis runs its lifespan."""
    app = create_app(settings)
    yield app
    asgi.shutdown_lifespans()


@pytest.mark.spec("SC-009", "FR-018", "FR-019", "EC-2", "EC-5")
def test_fuzzed_requests_never_fail_the_server_and_match_the_schema(
    fuzz_app: FastAPI, client: TestClient
) -> None:
    existing = [
        client.post(FUZZER.tasks, json={"title": f"seed {n}"}, headers=FUZZER.headers).json()["id"]
        for n in range(5)
    ]
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)
    tried: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    failures: list[str] = []

    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            fuzz(operation, mode, existing, tried, statuses, failures)

    total = sum(tried.values())
    report(
        "Schema fuzzing (Schemathesis)",
        total,
        len(failures),
        f"{len(operations)} operations x 2 modes, up to {EXAMPLES} each; statuses "
        + ", ".join(f"{code}x{n}" for code, n in sorted(statuses.items())),
    )
    assert len(operations) >= 8
    assert not any(code >= 500 for code in statuses)
    assert not failures, "\n\n".join(failures[:10])


def fuzz(
    operation: Any,
    mode: GenerationMode,
    existing: list[int],
    tried: Counter[str],
    statuses: Counter[int],
    failures: list[str],
) -> None:
    """Up to EXAMPLES cases of one operation in one mode; failures are collected, not raised."""
    label = f"{operation.label} [{mode.value}]"
    strategy = operation.as_strategy(
        mode,
        path_parameters={"user_id": FUZZER.id} if "{user_id}" in operation.path else None,
        headers={"Authorization": f"Bearer {FUZZER.token}"},
    )

    @hypothesis_settings(max_examples=EXAMPLES, suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def run(case: schemathesis.Case[Any]) -> None:
        task_id = (case.path_parameters or {}).get("task_id")
        if isinstance(task_id, int) and task_id > 0 and task_id % 2 == 0:
            # Half the positive ids land on real rows, so updates and deletes reach the database.
            case.path_parameters["task_id"] = existing[task_id % len(existing)]
        tried[label] += 1
        response = case.call()
        statuses[response.status_code] += 1
        try:
            case.validate_response(response, checks=CHECKS)
        except (AssertionError, BaseExceptionGroup) as exc:  # FailureGroup
            failures.append(
                f"{label}: {response.status_code} {_titles(exc)}: {response.text[:200]}\n"
                f"{case.as_curl_command()}"
            )

    # Unsatisfiable: nothing to negate (e.g. `/health` has no parameters), no cases in this mode.
    with contextlib.suppress(Unsatisfiable):
        run()


def _titles(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(str(getattr(inner, "title", inner)) for inner in exc.exceptions)
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
