/**
 * The Todo API client: openapi-fetch typed by the generated `schema.d.ts`.
 *
 * Every call is typed from the backend's OpenAPI document: paths, path/query parameters
 * (`status` is a literal union), bodies and responses. Errors come back as `error` with a
 * string `detail` (the backend's `{"detail": str}`), never thrown.
 */
import createClient, { type Client } from "openapi-fetch";
import type { components, paths } from "./schema";

export type { components, paths } from "./schema";
export type Task = components["schemas"]["TaskPublic"];
export type TaskCreate = components["schemas"]["TaskCreate"];
export type TaskUpdate = components["schemas"]["TaskUpdate"];
export type ApiError = components["schemas"]["ErrorResponse"];
export type TodoClient = Client<paths>;

/**
 * A client for `baseUrl` that sends `Authorization: Bearer <token>` on every request.
 *
 * `getToken` is called per request, so a Better Auth JWT that is refreshed (the JWT plugin's
 * tokens live 15 minutes) is always the current one.
 */
export function createTodoClient(
  baseUrl: string,
  getToken: () => string | Promise<string>,
): TodoClient {
  const client = createClient<paths>({ baseUrl });
  client.use({
    async onRequest({ request }) {
      request.headers.set("Authorization", `Bearer ${await getToken()}`);
      return request;
    },
  });
  return client;
}
