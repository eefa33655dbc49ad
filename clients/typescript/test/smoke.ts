// Every operation of the API through the generated client, against a live backend.
// Run by tests/test_typescript_client.py: BASE_URL, USER_ID and TOKEN come from the environment.
import assert from "node:assert/strict";
import { createTodoClient, type TaskCreate } from "../src/client.js";

const { BASE_URL, USER_ID, TOKEN } = process.env;
if (!BASE_URL || !USER_ID || !TOKEN) throw new Error("BASE_URL, USER_ID and TOKEN are required");

const api = createTodoClient(BASE_URL, () => TOKEN);
const path = { user_id: USER_ID };
const done: string[] = [];

const health = await api.GET("/health");
assert.equal(health.data?.status, "ok");
done.push("health");
const live = await api.GET("/health/live");
assert.equal(live.data?.status, "ok");
done.push("healthLive");
const ready = await api.GET("/health/ready");
assert.equal(ready.data?.status, "ok");
done.push("healthReady");

const titleOnly: TaskCreate = { title: "  write the client  " }; // `completed` is optional
const created = await api.POST("/api/{user_id}/tasks", { params: { path }, body: titleOnly });
assert.equal(created.response.status, 201);
assert.ok(created.data);
const task = created.data;
assert.equal(task.title, "write the client");
assert.equal(task.completed, false);
assert.equal(created.response.headers.get("Location"), `/api/${USER_ID}/tasks/${task.id}`);
done.push("createTask");

const listed = await api.GET("/api/{user_id}/tasks", {
  params: { path, query: { status: "incomplete", sort: "title", order: "asc", limit: 10 } },
});
assert.deepEqual(
  listed.data?.map((t) => t.id),
  [task.id],
);
assert.equal(listed.response.headers.get("X-Total-Count"), "1");
done.push("listTasks");

const one = await api.GET("/api/{user_id}/tasks/{task_id}", {
  params: { path: { ...path, task_id: task.id } },
});
assert.deepEqual(one.data, task);
done.push("getTask");

const updated = await api.PUT("/api/{user_id}/tasks/{task_id}", {
  params: { path: { ...path, task_id: task.id } },
  body: { description: "typed end to end" }, // title and completed left out: kept
});
assert.equal(updated.data?.title, "write the client");
assert.equal(updated.data?.description, "typed end to end");
done.push("updateTask");

const patched = await api.PATCH("/api/{user_id}/tasks/{task_id}", {
  params: { path: { ...path, task_id: task.id } },
  body: { title: "ship the client" },
});
assert.equal(patched.data?.title, "ship the client");
done.push("patchTask");

const toggled = await api.PATCH("/api/{user_id}/tasks/{task_id}/complete", {
  params: { path: { ...path, task_id: task.id } },
});
assert.equal(toggled.data?.completed, true);
const set = await api.PATCH("/api/{user_id}/tasks/{task_id}/complete", {
  params: { path: { ...path, task_id: task.id } },
  body: { completed: true },
});
assert.equal(set.data?.completed, true);
done.push("toggleTask");

const deleted = await api.DELETE("/api/{user_id}/tasks/{task_id}", {
  params: { path: { ...path, task_id: task.id } },
});
assert.equal(deleted.response.status, 204);
done.push("deleteTask");

const gone = await api.GET("/api/{user_id}/tasks/{task_id}", {
  params: { path: { ...path, task_id: task.id } },
});
assert.equal(gone.response.status, 404);
assert.equal(gone.error?.detail, "Task not found");

const badToken = createTodoClient(BASE_URL, () => "not-a-jwt");
const refused = await badToken.GET("/api/{user_id}/tasks", { params: { path } });
assert.equal(refused.response.status, 401);
assert.equal(typeof refused.error?.detail, "string");

console.log(JSON.stringify({ operations: done }));
