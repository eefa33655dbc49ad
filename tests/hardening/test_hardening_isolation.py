"""Isolation as a property (SC-002, FR-005, FR-006): random multi-user sessions vs a model.

A Hypothesis state machine drives three users through random sequences of every operation —
create, list (with filters), get, PUT, PATCH alias, toggle, set via body, delete — on their own
tasks, on each other's task ids (guessed or real) under their own URL, and on the other users'
URLs. After every step the whole `task` table is read directly and compared with the model:
any cross-user read or write, or any divergence, fails. Bounded by the `hardening` profile;
`HYPOTHESIS_PROFILE=fuzz` runs it longer.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import text
from sqlalchemy.engine import Engine

from tests.support.hardening import hypothesis_settings, report
from tests.support.helpers import Caller

USERS = [Caller("iso-alice"), Caller("iso-bob"), Caller("iso-carol")]
FIELDS = ("id", "user_id", "title", "description", "completed", "created_at", "updated_at")

users = st.sampled_from(USERS)
# Text that trims the same way in Python, pydantic and PostgreSQL: no exotic whitespace.
_pieces = st.sampled_from([*"ab yz09-é日本", "😀", "\u05d0", "\u0301", "👩\u200d💻"])
titles = st.lists(_pieces, min_size=1, max_size=12).map("".join).filter(lambda t: t.strip() != "")
descriptions = st.none() | st.lists(_pieces, max_size=20).map("".join)
guessed_ids = st.integers(min_value=1, max_value=40) | st.integers(1, 2**63 - 1)


def moment(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp)


@dataclass
class Counters:
    examples: int = 0
    steps: int = 0
    cross_user_refusals: int = 0


COUNTERS = Counters()


class IsolationMachine(RuleBasedStateMachine):
    tasks = Bundle("tasks")

    def __init__(self, client: TestClient, engine: Engine) -> None:
        super().__init__()
        self.client = client
        self.engine = engine
        with engine.connect() as connection:
            connection.execute(text("TRUNCATE task RESTART IDENTITY"))
        self.model: dict[int, dict[str, Any]] = {}  # task id -> its JSON as last returned
        COUNTERS.examples += 1

    # --- helpers ---------------------------------------------------------------------------

    def _call(self, caller: Caller, method: str, url: str, **kwargs: Any) -> Any:
        COUNTERS.steps += 1
        response = self.client.request(method, url, headers=caller.headers, **kwargs)
        assert response.status_code < 500, response.text
        return response

    def _owned(self, caller: Caller, task_id: int) -> bool:
        return task_id in self.model and self.model[task_id]["user_id"] == caller.id

    def _expect_row(self, caller: Caller, task_id: int, response: Any) -> dict[str, Any]:
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        assert set(body) == set(FIELDS)
        assert body["id"] == task_id
        assert body["user_id"] == caller.id
        return body

    def _expect_hidden(self, response: Any) -> None:
        """A task not the caller's looks exactly like one that does not exist."""
        assert response.status_code == 404, response.text
        assert response.json() == {"detail": "Task not found"}
        COUNTERS.cross_user_refusals += 1

    # --- rules -------------------------------------------------------------------------------

    @rule(target=tasks, caller=users, title=titles, description=descriptions, done=st.booleans())
    def create(self, caller: Caller, title: str, description: str | None, done: bool) -> int:
        response = self._call(
            caller,
            "POST",
            caller.tasks,
            json={
                "title": title,
                "description": description,
                "completed": done,
                "user_id": USERS[0].id,
                "id": 1,
            },
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        assert body["user_id"] == caller.id
        assert (body["title"], body["description"], body["completed"]) == (
            title.strip(),
            description,
            done,
        )
        assert body["id"] not in self.model
        self.model[body["id"]] = body
        return int(body["id"])

    @rule(caller=users, status=st.sampled_from([None, "all", "pending", "completed"]))
    def list_mine(self, caller: Caller, status: str | None) -> None:
        params = {} if status is None else {"status": status}
        response = self._call(caller, "GET", caller.tasks, params=params)
        assert response.status_code == 200
        wanted = {"all": None, "pending": False, "completed": True}.get(status or "all")
        expected = [
            row
            for row in self.model.values()
            if row["user_id"] == caller.id and (wanted is None or row["completed"] is wanted)
        ]
        expected.sort(key=lambda row: (moment(row["created_at"]), row["id"]), reverse=True)
        assert response.json() == expected
        assert response.headers["X-Total-Count"] == str(len(expected))

    @rule(caller=users, task_id=tasks | guessed_ids)
    def get(self, caller: Caller, task_id: int) -> None:
        response = self._call(caller, "GET", caller.task(task_id))
        if self._owned(caller, task_id):
            assert self._expect_row(caller, task_id, response) == self.model[task_id]
        else:
            self._expect_hidden(response)

    @rule(
        caller=users,
        task_id=tasks | guessed_ids,
        method=st.sampled_from(["PUT", "PATCH"]),
        changes=st.fixed_dictionaries(
            {},
            optional={"title": titles, "description": descriptions, "completed": st.booleans()},
        ),
    )
    def update(self, caller: Caller, task_id: int, method: str, changes: dict[str, Any]) -> None:
        body = {**changes, "user_id": USERS[1].id, "id": task_id + 1}  # ignored fields
        response = self._call(caller, method, caller.task(task_id), json=body)
        if not self._owned(caller, task_id):
            self._expect_hidden(response)
            return
        row = self._expect_row(caller, task_id, response)
        before = self.model[task_id]
        for name in ("title", "description", "completed"):
            value = changes.get(name, before[name])
            expected = value.strip() if name == "title" else value
            assert row[name] == expected, (name, row, changes)
        assert row["created_at"] == before["created_at"]
        if changes:
            assert moment(row["updated_at"]) >= moment(before["updated_at"])
        else:
            assert row["updated_at"] == before["updated_at"]
        self.model[task_id] = row

    @rule(caller=users, task_id=tasks | guessed_ids, set_to=st.none() | st.booleans())
    def complete(self, caller: Caller, task_id: int, set_to: bool | None) -> None:
        kwargs: dict[str, Any] = {} if set_to is None else {"json": {"completed": set_to}}
        response = self._call(caller, "PATCH", caller.task(task_id) + "/complete", **kwargs)
        if not self._owned(caller, task_id):
            self._expect_hidden(response)
            return
        row = self._expect_row(caller, task_id, response)
        expected = (not self.model[task_id]["completed"]) if set_to is None else set_to
        assert row["completed"] is expected
        assert row["title"] == self.model[task_id]["title"]
        self.model[task_id] = row

    @rule(caller=users, task_id=tasks | guessed_ids)
    def delete(self, caller: Caller, task_id: int) -> None:
        response = self._call(caller, "DELETE", caller.task(task_id))
        if not self._owned(caller, task_id):
            self._expect_hidden(response)
            return
        assert response.status_code == 204
        assert response.content == b""
        del self.model[task_id]

    @rule(
        caller=users,
        victim=users,
        task_id=tasks | guessed_ids,
        operation=st.sampled_from(
            ["list", "create", "get", "put", "patch", "toggle", "set", "delete"]
        ),
    )
    def use_another_users_url(
        self, caller: Caller, victim: Caller, task_id: int, operation: str
    ) -> None:
        """Any operation under another user's URL is 403, whatever the task id."""
        if victim.id == caller.id:
            return
        method, url, body = {
            "list": ("GET", victim.tasks, None),
            "create": ("POST", victim.tasks, {"title": "intruder"}),
            "get": ("GET", victim.task(task_id), None),
            "put": ("PUT", victim.task(task_id), {"title": "intruder"}),
            "patch": ("PATCH", victim.task(task_id), {"completed": True}),
            "toggle": ("PATCH", victim.task(task_id) + "/complete", None),
            "set": ("PATCH", victim.task(task_id) + "/complete", {"completed": True}),
            "delete": ("DELETE", victim.task(task_id), None),
        }[operation]
        response = self._call(caller, method, url, json=body)
        assert response.status_code == 403, response.text
        assert "intruder" not in response.text
        COUNTERS.cross_user_refusals += 1

    # --- the property ------------------------------------------------------------------------

    @invariant()
    def database_equals_model(self) -> None:
        """Read behind the API's back: every row is exactly what its owner's calls made it."""
        with self.engine.connect() as connection:
            rows = connection.execute(text("SELECT * FROM task ORDER BY id")).mappings().all()
        stored = {
            row["id"]: (row["user_id"], row["title"], row["description"], row["completed"])
            for row in rows
        }
        expected = {
            task_id: (row["user_id"], row["title"], row["description"], row["completed"])
            for task_id, row in self.model.items()
        }
        assert stored == expected


@pytest.mark.spec("SC-002", "FR-005", "FR-006", "US-6", "FR-009", "US-1.4", "FR-004")
def test_no_user_ever_reads_or_changes_another_users_tasks(
    client: TestClient, db_engine: Engine
) -> None:
    chosen = hypothesis_settings()
    before = Counters(**vars(COUNTERS))
    passed = False
    try:
        run_state_machine_as_test(
            lambda: IsolationMachine(client, db_engine),  # type: ignore[arg-type]
            settings=chosen,
        )
        passed = True
    finally:
        report(
            "Isolation state machine (steps)",
            COUNTERS.steps - before.steps,
            0 if passed else 1,
            f"{COUNTERS.examples - before.examples} examples (max_examples={chosen.max_examples}, "
            f"stateful_step_count={chosen.stateful_step_count}), "
            f"{COUNTERS.cross_user_refusals - before.cross_user_refusals} cross-user attempts "
            f"refused, {0 if passed else 'some'} model mismatches",
        )
