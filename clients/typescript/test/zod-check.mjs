// The @hey-api/openapi-ts zod module loads and validates what the backend sends and accepts.
// (Run after `openapi-ts … -p zod` and `tsc -p tsconfig.hey.json`; see package.json "hey".)
import assert from "node:assert/strict";
import { zListTasksQuery, zTaskCreate, zTaskPublic, zTaskUpdate } from "../.build/hey-js/zod.gen.js";

const task = {
  id: 1,
  user_id: "alice",
  title: "t",
  description: null,
  completed: false,
  created_at: "2026-11-30T12:00:00Z",
  updated_at: "2026-11-30T12:00:00Z",
};
assert.deepEqual(zTaskPublic.parse(task), task);
assert.ok(zListTasksQuery.safeParse({ status: "incomplete", sort: "title", order: "asc" }).success);
assert.ok(!zListTasksQuery.safeParse({ status: "finished" }).success);
assert.ok(zTaskCreate.safeParse({ title: "title only" }).success);
assert.ok(!zTaskUpdate.safeParse({ title: null }).success);
console.log("zod ok");
