"""The endpoints the load test drives, named once so Locust stats, reports and round-trip counts
agree: Locust groups requests by (method, name), and the name is the path template, not the URL,
so every user's `/api/<id>/tasks/<n>` lands in one row per endpoint.
"""

from dataclasses import dataclass

TASKS = "/api/{user_id}/tasks"
TASK = TASKS + "/{id}"


@dataclass(frozen=True)
class Endpoint:
    label: str
    method: str
    name: str
    status: int


LIST = Endpoint("list", "GET", TASKS, 200)
CREATE = Endpoint("create", "POST", TASKS, 201)
GET = Endpoint("get", "GET", TASK, 200)
UPDATE = Endpoint("update", "PUT", TASK, 200)
TOGGLE = Endpoint("toggle", "PATCH", TASK + "/complete", 200)
DELETE = Endpoint("delete", "DELETE", TASK, 204)

TASK_ENDPOINTS = (LIST, GET, TOGGLE, UPDATE, CREATE, DELETE)


def label_of(method: str, name: str) -> str:
    """The short label of a Locust stats row (the row's own name when it is not ours)."""
    for endpoint in TASK_ENDPOINTS:
        if (endpoint.method, endpoint.name) == (method, name):
            return endpoint.label
    return name
