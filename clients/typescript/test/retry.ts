// One call through the client, against a live backend whose answers tests/test_typescript_client.py
// breaks (a proxy loses the next answer, from the database or to us): prints what the caller
// got and every retry the client made, as one JSON line.
//
//   node .build/js/test/retry.js create TITLE | set ID true|false | toggle ID | update ID TITLE
//                                | get ID | delete ID
import { createTodoClient, type RetryEvent } from "../src/client.js";

const { BASE_URL, USER_ID, TOKEN } = process.env;
if (!BASE_URL || !USER_ID || !TOKEN) throw new Error("BASE_URL, USER_ID and TOKEN are required");

const retries: Omit<RetryEvent, "url">[] = [];
const api = createTodoClient(BASE_URL, () => TOKEN, {
  retry: { onRetry: ({ url: _, ...retry }) => retries.push(retry) },
});
const [action, argument = "", value = ""] = process.argv.slice(2);
const path = { user_id: USER_ID };
const task = { path: { ...path, task_id: Number(argument) } };

async function call(): Promise<{ response: Response; data?: unknown; error?: unknown }> {
  switch (action) {
    case "create":
      return api.POST("/api/{user_id}/tasks", { params: { path }, body: { title: argument } });
    case "set":
      return api.PATCH("/api/{user_id}/tasks/{task_id}/complete", {
        params: task,
        body: { completed: value === "true" },
      });
    case "toggle":
      return api.PATCH("/api/{user_id}/tasks/{task_id}/complete", { params: task });
    case "update":
      return api.PUT("/api/{user_id}/tasks/{task_id}", { params: task, body: { title: value } });
    case "get":
      return api.GET("/api/{user_id}/tasks/{task_id}", { params: task });
    case "delete":
      return api.DELETE("/api/{user_id}/tasks/{task_id}", { params: task });
    default:
      throw new Error(`unknown action ${action}`);
  }
}

try {
  const { response, data, error } = await call();
  console.log(JSON.stringify({ status: response.status, body: data ?? error ?? null, retries }));
} catch (failure) {
  console.log(JSON.stringify({ thrown: String(failure), retries }));
}
