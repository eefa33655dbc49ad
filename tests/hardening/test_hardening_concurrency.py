"""Concurrency (FR-011, EC-4): simultaneous toggles and updates of one task, on a real server.

50 threads release together (a barrier) against one uvicorn process. Toggles are atomic: the
final state is start XOR (N odd), and since each toggle sees the result of the one before, the
50 answers hold exactly 25 `true` and 25 `false`. Concurrent full PUTs leave the row equal to
exactly one of the bodies sent, never a mix of two, and every answer is itself one whole body.
"""

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from devtools.servers import Server
from tests.support.hardening import report
from tests.support.helpers import Caller

N = 50


def together(
    base_url: str, caller: Caller, request: Callable[[httpx.Client, int], httpx.Response]
) -> list[httpx.Response]:
    """Run `request(client, i)` for i in range(N) from N threads released at the same moment."""
    barrier = threading.Barrier(N)
    limits = httpx.Limits(max_connections=N, max_keepalive_connections=N)
    with httpx.Client(base_url=base_url, headers=caller.headers, timeout=30, limits=limits) as http:

        def one(i: int) -> httpx.Response:
            barrier.wait()
            return request(http, i)

        with ThreadPoolExecutor(N) as pool:
            return list(pool.map(one, range(N)))


def create(base_url: str, caller: Caller, **body: Any) -> dict[str, Any]:
    response = httpx.post(
        base_url + caller.tasks, json={"title": "shared", **body}, headers=caller.headers
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


@pytest.mark.spec("FR-011", "EC-4", "US-4", "SC-003")
@pytest.mark.parametrize("start", [False, True])
def test_concurrent_toggles_are_never_lost(live_backend: Server, start: bool) -> None:
    caller = Caller(f"toggler-{start}-0123456789abcdefghij")
    task = create(live_backend.url, caller, completed=start)
    url = caller.task(task["id"]) + "/complete"

    responses = together(live_backend.url, caller, lambda http, _: http.patch(url))

    failed = [r.status_code for r in responses if r.status_code != 200]
    answers = [r.json()["completed"] for r in responses if r.status_code == 200]
    final = httpx.get(live_backend.url + caller.task(task["id"]), headers=caller.headers).json()
    expected_final = start ^ (N % 2 == 1)
    report(
        f"Concurrent toggles (start={start})",
        N,
        len(failed) + int(final["completed"] is not expected_final),
        f"final completed={final['completed']} (expected {expected_final}), "
        f"answers true x{answers.count(True)} / false x{answers.count(False)}",
    )
    assert not failed
    assert final["completed"] is expected_final
    assert answers.count(True) == answers.count(False) == N // 2


@pytest.mark.spec("EC-4", "FR-010", "US-3", "SC-003")
def test_concurrent_full_updates_leave_exactly_one_of_the_bodies(live_backend: Server) -> None:
    caller = Caller("updater-0123456789abcdefghijklmn")
    task = create(live_backend.url, caller)
    url = caller.task(task["id"])
    bodies = [
        {"title": f"title {i}", "description": f"description {i}", "completed": i % 2 == 0}
        for i in range(N)
    ]

    responses = together(live_backend.url, caller, lambda http, i: http.put(url, json=bodies[i]))

    def fields(row: dict[str, Any]) -> dict[str, Any]:
        return {name: row[name] for name in ("title", "description", "completed")}

    failed = [r.status_code for r in responses if r.status_code != 200]
    torn = [fields(r.json()) for r in responses if r.is_success and fields(r.json()) not in bodies]
    final = fields(httpx.get(live_backend.url + url, headers=caller.headers).json())
    report(
        "Concurrent full updates",
        N,
        len(failed) + len(torn) + int(final not in bodies),
        f"final row = body #{bodies.index(final) if final in bodies else 'none (a mix!)'}",
    )
    assert not failed
    assert not torn
    assert final in bodies


@pytest.mark.spec("FR-021", "EC-4", "SC-003")
def test_identical_keyed_creates_at_the_same_moment_store_one_task(live_backend: Server) -> None:
    """A frontend retrying while its first request still runs: one task; every other answer is
    that task (201) or a 409 whose retry is that task. Same key, another body: never stored."""
    caller = Caller("keyed-twins-0123456789abcdefghij")
    bodies = [{"title": "once"} if i % 5 else {"title": "another body"} for i in range(N)]
    key = {"Idempotency-Key": '"one-click"'}

    responses = together(
        live_backend.url,
        caller,
        lambda http, i: http.post(caller.tasks, json=bodies[i], headers=key),
    )

    listed = httpx.get(live_backend.url + caller.tasks, headers=caller.headers).json()
    statuses = [r.status_code for r in responses]
    created = [r.json() for r in responses if r.status_code == 201]
    in_flight = [r for r in responses if r.status_code == 409]
    retried = httpx.post(
        live_backend.url + caller.tasks, json=listed[0], headers={**caller.headers, **key}
    )
    report(
        "Concurrent identical keyed creates",
        N,
        len(listed) - 1 + sum(s not in (201, 409, 422) for s in statuses),
        f"{statuses.count(201)}x 201 (one task), {statuses.count(409)}x 409, "
        f"{statuses.count(422)}x 422 (the other body); {len(listed)} stored",
    )
    assert len(listed) == 1
    assert set(statuses) <= {201, 409, 422}
    assert created
    assert all(task == listed[0] for task in created)
    assert all(r.headers["retry-after"] == "1" for r in in_flight)
    assert all(isinstance(r.json()["detail"], str) for r in in_flight)
    assert (retried.status_code, retried.json()) == (201, listed[0])
