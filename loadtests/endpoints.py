"""The endpoints the load test drives, named once so Locust stats, reports and round-trip counts
agree: Locust groups requests by (method, name), and the name is the path template, not the URL,
so every user's `/api/<id>/tasks/<n>` lands in one row per endpoint. A create that sends an
`Idempotency-Key` has a row of its own, so the two kinds of create can be compared in one run.
"""

from dataclasses import dataclass

TASKS = "/api/{user_id}/tasks"
TASK = TASKS + "/{id}"


@dataclass(frozen=True)
class Endpoint:
    label: str
    method: str
    path: str
    status: int
    keyed: bool = False
    """The request carries an `Idempotency-Key`."""

    @property
    def name(self) -> str:
        """The Locust row: the path template, marked when the request carries a key."""
        return f"{self.path} (Idempotency-Key)" if self.keyed else self.path


LIST = Endpoint("list", "GET", TASKS, 200)
CREATE = Endpoint("create", "POST", TASKS, 201)
CREATE_KEYED = Endpoint("create+key", "POST", TASKS, 201, keyed=True)
GET = Endpoint("get", "GET", TASK, 200)
UPDATE = Endpoint("update", "PUT", TASK, 200)
TOGGLE = Endpoint("toggle", "PATCH", TASK + "/complete", 200)
DELETE = Endpoint("delete", "DELETE", TASK, 204)

TASK_ENDPOINTS = (LIST, GET, TOGGLE, UPDATE, CREATE, CREATE_KEYED, DELETE)


def label_of(method: str, name: str) -> str:
    """The short label of a Locust stats row (the row's own name when it is not ours)."""
    for endpoint in TASK_ENDPOINTS:
        if (endpoint.method, endpoint.name) == (method, name):
            return endpoint.label
    return name
