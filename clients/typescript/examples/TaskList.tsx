// A Next.js client component using the generated client (App Router: app/tasks/TaskList.tsx).
// `token` is the Better Auth JWT, e.g. from `authClient.token()` (JWT plugin).
"use client";

import { useEffect, useMemo, useState } from "react";
import { createTodoClient, type Task } from "../src/client";

const API_URL = process.env.NEXT_PUBLIC_API_URL ?? "http://localhost:8000";

export function TaskList({ userId, token }: { userId: string; token: string }) {
  const api = useMemo(() => createTodoClient(API_URL, () => token), [token]);
  const [tasks, setTasks] = useState<Task[]>([]);
  const [error, setError] = useState<string | null>(null);
  const path = { user_id: userId };

  async function refresh() {
    const { data, error } = await api.GET("/api/{user_id}/tasks", {
      params: { path, query: { status: "pending", sort: "created", order: "desc" } },
    });
    if (error) setError(error.detail);
    else setTasks(data);
  }

  useEffect(() => {
    void refresh();
  }, [api, userId]);

  async function add(title: string) {
    const { error } = await api.POST("/api/{user_id}/tasks", { params: { path }, body: { title } });
    if (error) setError(error.detail);
    else await refresh();
  }

  // The state meant, not a bare toggle: the client may then retry it safely (see src/client.ts).
  async function toggle(task: Task) {
    const { error } = await api.PATCH("/api/{user_id}/tasks/{task_id}/complete", {
      params: { path: { ...path, task_id: task.id } },
      body: { completed: !task.completed },
    });
    if (error) setError(error.detail);
    await refresh();
  }

  return (
    <section>
      {error && <p role="alert">{error}</p>}
      <form
        onSubmit={(event) => {
          event.preventDefault();
          const input = event.currentTarget.elements.namedItem("title") as HTMLInputElement;
          void add(input.value);
          input.value = "";
        }}
      >
        <input name="title" maxLength={200} required />
        <button type="submit">Add</button>
      </form>
      <ul>
        {tasks.map((task) => (
          <li key={task.id}>
            <label>
              <input type="checkbox" checked={task.completed} onChange={() => void toggle(task)} />
              {task.title}
            </label>
          </li>
        ))}
      </ul>
    </section>
  );
}
