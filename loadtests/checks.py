"""What every response of the Task API must look like, as plain functions returning a problem.

The Locust users call these on every response and mark the request failed when one returns a
message: a wrong status, an extra or missing field, another user's `user_id` (a cross-user leak
under load) or a missing `X-Total-Count` all count as failures, not just 5xx answers.
"""

from collections.abc import Mapping
from datetime import datetime
from typing import Any

TASK_FIELDS = frozenset(
    {"id", "user_id", "title", "description", "completed", "created_at", "updated_at"}
)


def task_problem(task: Any, owner: str) -> str | None:
    """Why `task` is not a Task of `owner` exactly as SPEC.md shapes it, or None if it is."""
    if not isinstance(task, dict):
        return f"expected a Task object, got {type(task).__name__}"
    if task.keys() != TASK_FIELDS:
        extra, missing = task.keys() - TASK_FIELDS, TASK_FIELDS - task.keys()
        return f"Task fields differ: extra {sorted(extra)}, missing {sorted(missing)}"
    if task["user_id"] != owner:
        return f"cross-user leak: task {task['id']} belongs to {task['user_id']!r}, not {owner!r}"
    if not isinstance(task["id"], int) or not isinstance(task["completed"], bool):
        return "Task id must be an integer and completed a boolean"
    if not isinstance(task["title"], str) or not isinstance(task["description"], str | None):
        return "Task title must be a string and description a string or null"
    for name in ("created_at", "updated_at"):
        problem = _timestamp_problem(task[name])
        if problem:
            return f"{name}: {problem}"
    return None


def _timestamp_problem(value: Any) -> str | None:
    if not isinstance(value, str):
        return "not a string"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return f"not ISO-8601: {value!r}"
    return None if parsed.utcoffset() is not None else f"no timezone: {value!r}"


def status_problem(status: int, expected: int) -> str | None:
    return None if status == expected else f"status {status}, expected {expected}"


def list_problem(body: Any, headers: Mapping[str, str], owner: str) -> str | None:
    """A list answer: an array of the caller's Tasks, with a consistent `X-Total-Count`."""
    if not isinstance(body, list):
        return f"expected a JSON array, got {type(body).__name__}"
    for task in body:
        problem = task_problem(task, owner)
        if problem:
            return problem
    total = headers.get("x-total-count")
    if total is None or not total.isdigit():
        return f"X-Total-Count missing or not a count: {total!r}"
    if int(total) < len(body):
        return f"X-Total-Count {total} is less than the {len(body)} tasks returned"
    return None
