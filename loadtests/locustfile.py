"""Locust scenarios against the Task API: `SaturationUser` (closed loop) and `JourneyUser`.

Each simulated user is a distinct Task API user with its own tasks, and keeps the ids (and
`completed` flags) of the tasks it owns. Because one user's requests run one after another, the
server's answers must match that local copy exactly; every response is checked and any mismatch
(status, Task shape, someone else's `user_id`, a missing or wrong `X-Total-Count`, a list that
disagrees with the tasks the user created) is a Locust failure.

Configured by the environment, which `python -m loadtests` sets (the secret stays out of argv):
`LOADTEST_SECRET` mints HS256 tokens as a Next.js frontend does; `LOADTEST_AUTH_URL`, when set,
makes the journey sign up and fetch its JWT from a Better Auth compatible server instead;
`LOADTEST_IDEMPOTENCY_KEYS` says which creates send a fresh `Idempotency-Key`, as the shipped
TypeScript client does: `none`, `all`, or `alternate` (every other one, the default), each kind
in a stats row of its own.
Signing in is a precondition, not what is measured: it goes around Locust's statistics (the
auth server hashes passwords with scrypt on purpose), so the numbers are the Task API's alone; a
failed sign-in stops that user's start and shows up as its failed Task API requests.
"""

import os
import random
import time
import uuid
from http import HTTPStatus
from typing import Any

import httpx
import jwt
from locust import SequentialTaskSet, between, task
from locust.contrib.fasthttp import FastHttpUser, ResponseContextManager

from loadtests import checks
from loadtests.endpoints import (
    CREATE,
    CREATE_KEYED,
    DELETE,
    GET,
    LIST,
    TOGGLE,
    UPDATE,
    Endpoint,
)

SIGN_UP_PATH = "/api/auth/sign-up/email"
JWT_PATH = "/api/auth/token"
SEED_TASKS = 10
TOKEN_LIFETIME = 3600
REFRESH_MARGIN = 60


class SignInError(RuntimeError):
    """The auth server did not sign the user in."""


class ApiUser(FastHttpUser):
    """A signed-in user of the Task API and the tasks it knows it owns (id -> completed)."""

    abstract = True
    user_id = ""
    token = ""
    token_expires = 0.0
    session_token = ""

    def on_start(self) -> None:
        self.owned: dict[int, bool] = {}
        self.creates = 0
        self.sign_in()

    # --- auth -----------------------------------------------------------------------------

    def sign_in(self) -> None:
        """Mint a token with the shared secret, or sign up at the auth server when one is set."""
        auth_url = os.environ.get("LOADTEST_AUTH_URL")
        if auth_url:
            self._sign_up(auth_url.rstrip("/"))
        else:
            self.user_id = f"load-{uuid.uuid4().hex}"
            self._mint()

    def _mint(self) -> None:
        now = int(time.time())
        claims = {"sub": self.user_id, "iat": now, "exp": now + TOKEN_LIFETIME}
        self.token = jwt.encode(claims, os.environ["LOADTEST_SECRET"], algorithm="HS256")
        self.token_expires = now + TOKEN_LIFETIME

    def _sign_up(self, auth_url: str) -> None:
        email = f"load-{uuid.uuid4().hex}@example.com"
        body = {"name": "Load Test", "email": email, "password": uuid.uuid4().hex}
        answer = _auth_call("POST", auth_url + SIGN_UP_PATH, json=body)
        user = answer.get("user")
        self.user_id = str(user.get("id", "")) if isinstance(user, dict) else ""
        self.session_token = str(answer.get("token", ""))
        if not (self.user_id and self.session_token):
            raise SignInError("sign-up answer lacks user.id or token")
        self._fetch_jwt(auth_url)

    def _fetch_jwt(self, auth_url: str) -> None:
        headers = {"Authorization": f"Bearer {self.session_token}"}
        answer = _auth_call("GET", auth_url + JWT_PATH, headers=headers)
        if not isinstance(answer.get("token"), str):
            raise SignInError("token answer lacks token")
        self.token = answer["token"]
        claims = jwt.decode(self.token, options={"verify_signature": False})
        self.token_expires = float(claims.get("exp", 0))

    def _auth_headers(self) -> dict[str, str]:
        """Bearer header, renewing the token shortly before it expires (long runs)."""
        if self.token_expires - time.time() < REFRESH_MARGIN:
            auth_url = os.environ.get("LOADTEST_AUTH_URL")
            if auth_url and self.session_token:
                self._fetch_jwt(auth_url.rstrip("/"))
            elif not auth_url:
                self._mint()
        return {"Authorization": f"Bearer {self.token}"}

    # --- requests -------------------------------------------------------------------------

    def _task_call(
        self, endpoint: Endpoint, task_id: int | None = None, **kwargs: Any
    ) -> ResponseContextManager:
        url = endpoint.path.format(user_id=self.user_id, id=task_id)
        headers = self._auth_headers()
        if endpoint.keyed:
            headers["Idempotency-Key"] = f'"{uuid.uuid4()}"'
        return self.client.request(
            endpoint.method, url, name=endpoint.name, catch_response=True, headers=headers, **kwargs
        )

    def list_tasks(self) -> None:
        with self._task_call(LIST) as response:
            problem = checks.status_problem(response.status_code, LIST.status)
            if problem is None:
                body = _json(response)
                problem = checks.list_problem(body, response.headers, self.user_id)
                if problem is None and {t["id"] for t in body} != set(self.owned):
                    problem = "list differs from the tasks this user created"
            _verdict(response, problem)

    def create_task(self) -> int | None:
        """Create a task; its id, or None when the request failed."""
        body = {"title": f"task {random.randrange(10**6)}", "description": "made under load"}
        endpoint = self._next_create()
        with self._task_call(endpoint, json=body) as response:
            task = self._checked_task(response, endpoint)
            if task is not None:
                if task["title"] != body["title"] or task["completed"]:
                    _verdict(response, "created task differs from what was sent")
                elif not response.headers.get("location", "").endswith(f"/tasks/{task['id']}"):
                    _verdict(response, "Location header missing or wrong")
                else:
                    self.owned[task["id"]] = False
                    return int(task["id"])
        return None

    def _next_create(self) -> Endpoint:
        """With a key or without, as `LOADTEST_IDEMPOTENCY_KEYS` says."""
        keys = os.environ.get("LOADTEST_IDEMPOTENCY_KEYS", "alternate")
        self.creates += 1
        keyed = keys == "all" or (keys == "alternate" and self.creates % 2 == 0)
        return CREATE_KEYED if keyed else CREATE

    def get_task(self, task_id: int) -> None:
        with self._task_call(GET, task_id) as response:
            task = self._checked_task(response, GET)
            if task is not None and (task["id"], task["completed"]) != (
                task_id,
                self.owned[task_id],
            ):
                _verdict(response, "got a different task or a stale completed flag")

    def update_task(self, task_id: int) -> None:
        body = {"title": f"renamed {random.randrange(10**6)}", "description": None}
        with self._task_call(UPDATE, task_id, json=body) as response:
            task = self._checked_task(response, UPDATE)
            if task is not None and (task["title"], task["description"]) != (body["title"], None):
                _verdict(response, "update not applied")

    def toggle_task(self, task_id: int) -> None:
        with self._task_call(TOGGLE, task_id) as response:
            task = self._checked_task(response, TOGGLE)
            if task is None:
                return
            if task["completed"] == self.owned[task_id]:
                _verdict(response, "toggle did not flip completed")
            self.owned[task_id] = task["completed"]

    def delete_task(self, task_id: int) -> None:
        with self._task_call(DELETE, task_id) as response:
            problem = checks.status_problem(response.status_code, DELETE.status)
            if problem is None and response.content:
                problem = "204 with a body"
            if problem is None:
                del self.owned[task_id]
            _verdict(response, problem)

    def _checked_task(
        self, response: ResponseContextManager, endpoint: Endpoint
    ) -> dict[str, Any] | None:
        """The Task in a response when status and shape are right; else marks it failed."""
        problem = checks.status_problem(response.status_code, endpoint.status)
        body = _json(response) if problem is None else None
        problem = problem or checks.task_problem(body, self.user_id)
        _verdict(response, problem)
        return body if problem is None else None

    def any_task(self) -> int | None:
        return random.choice(list(self.owned)) if self.owned else None


class SaturationUser(ApiUser):
    """Closed loop, no think time: 50% list, 15% get, 15% toggle, 5% update, 15% create/delete.

    Create and delete alternate around `SEED_TASKS`, so each user's task count (and with it the
    cost of a list) stays stable however long the run.
    """

    def on_start(self) -> None:
        super().on_start()
        for _ in range(SEED_TASKS):
            self.create_task()

    @task(100)
    def list_(self) -> None:
        self.list_tasks()

    @task(30)
    def get(self) -> None:
        self._on_some_task(self.get_task)

    @task(30)
    def toggle(self) -> None:
        self._on_some_task(self.toggle_task)

    @task(10)
    def update(self) -> None:
        self._on_some_task(self.update_task)

    @task(30)
    def churn(self) -> None:
        """Create below the seed count, delete above it: 7.5% create, 7.5% delete."""
        victim = self.any_task()
        if len(self.owned) > SEED_TASKS and victim is not None:
            self.delete_task(victim)
        else:
            self.create_task()

    def _on_some_task(self, action: Any) -> None:
        task_id = self.any_task()
        if task_id is None:
            self.create_task()
        else:
            action(task_id)


class CreateUser(ApiUser):
    """Closed loop of creates only: the server CPU per request is then a create's, to compare a
    run whose creates send a key with one whose creates do not."""

    @task
    def create(self) -> None:
        self.create_task()


class JourneySteps(SequentialTaskSet):
    """What a person does in the UI, in order, thinking between steps."""

    new_task: int | None = None

    @property
    def api(self) -> ApiUser:
        assert isinstance(self.user, ApiUser)
        return self.user

    @task
    def look(self) -> None:
        self.api.list_tasks()

    @task
    def add(self) -> None:
        self.new_task = self.api.create_task()

    @task
    def tick(self) -> None:
        if self.new_task in self.api.owned:
            self.api.toggle_task(self.new_task)

    @task
    def rename(self) -> None:
        if self.new_task in self.api.owned:
            self.api.update_task(self.new_task)

    @task
    def open(self) -> None:
        if self.new_task in self.api.owned:
            self.api.get_task(self.new_task)

    @task
    def remove(self) -> None:
        if self.new_task in self.api.owned:
            self.api.delete_task(self.new_task)


class JourneyUser(ApiUser):
    """A realistic user: signs in once, then list, create, toggle, update, get, delete."""

    wait_time = between(0.5, 1.5)
    tasks = [JourneySteps]  # noqa: RUF012 - how Locust declares a user's task set


def _auth_call(method: str, url: str, **kwargs: Any) -> dict[str, Any]:
    """A call to the auth server; any error ends this user's start (and shows as 401s after)."""
    response = httpx.request(method, url, timeout=30.0, **kwargs)
    if response.status_code != HTTPStatus.OK:
        raise SignInError(f"{method} {url}: status {response.status_code}")
    answer = response.json()
    if not isinstance(answer, dict):
        raise SignInError(f"{method} {url}: not a JSON object")
    return answer


def _json(response: ResponseContextManager) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _verdict(response: ResponseContextManager, problem: str | None) -> None:
    if problem is None:
        response.success()  # type: ignore[no-untyped-call]
    else:
        response.failure(problem)  # type: ignore[no-untyped-call]
