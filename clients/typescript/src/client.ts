/**
 * The Todo API client: openapi-fetch typed by the generated `schema.d.ts`, retrying what is safe.
 *
 * Every call is typed from the backend's OpenAPI document: paths, path/query parameters
 * (`status` is a literal union), bodies and responses. Errors come back as `error` with a
 * string `detail` (the backend's `{"detail": str}`), never thrown.
 *
 * A 503 or a network error leaves a write's fate unknown: the task may be stored, the change
 * made. Such a request is tried again only when doing it twice does what doing it once does:
 * a create carries a fresh `Idempotency-Key` (the backend answers a retry with the first
 * create), GET, PUT, PATCH of fields and DELETE are idempotent, and setting completion
 * (`{"completed": true|false}`) is too. A bare toggle is never retried: twice would undo it.
 */
import createClient, { type Client } from "openapi-fetch";
import type { components, paths } from "./schema";

export type { components, paths } from "./schema";
export type Task = components["schemas"]["TaskPublic"];
export type TaskCreate = components["schemas"]["TaskCreate"];
export type TaskUpdate = components["schemas"]["TaskUpdate"];
export type ApiError = components["schemas"]["ErrorResponse"];
export type TodoClient = Client<paths>;

/** How a request whose fate is unknown is tried again. */
export interface RetryPolicy {
  /** Tries in all, the first included; 1 never retries. */
  attempts: number;
  /** The wait before the first retry, doubled for each one after, with jitter. */
  baseDelayMs: number;
  /** The longest wait: an answer whose `Retry-After` asks for more is returned as it is. */
  maxDelayMs: number;
  /** Told of each retry before its wait (for logs or metrics). */
  onRetry?: (retry: RetryEvent) => void;
}

export interface RetryEvent {
  method: string;
  url: string;
  /** The try that is about to be made: 2 for the first retry. */
  attempt: number;
  /** `"503"`, `"409"` (a create with the same key was in progress) or `"network error"`. */
  reason: string;
  delayMs: number;
}

export interface TodoClientOptions {
  /** Overrides of `DEFAULT_RETRY`, or `false` for no retries at all. */
  retry?: Partial<RetryPolicy> | false;
  /** The fetch to send requests with (default `globalThis.fetch`). */
  fetch?: (request: Request) => Promise<Response>;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 4, baseDelayMs: 250, maxDelayMs: 5000 };

/**
 * A client for `baseUrl` that sends `Authorization: Bearer <token>` on every request.
 *
 * `getToken` is called per request, so a Better Auth JWT that is refreshed (the JWT plugin's
 * tokens live 15 minutes) is always the current one.
 */
export function createTodoClient(
  baseUrl: string,
  getToken: () => string | Promise<string>,
  options: TodoClientOptions = {},
): TodoClient {
  const policy: RetryPolicy =
    options.retry === false
      ? { ...DEFAULT_RETRY, attempts: 1 }
      : { ...DEFAULT_RETRY, ...options.retry };
  const send = options.fetch ?? ((request: Request) => globalThis.fetch(request));
  const client = createClient<paths>({ baseUrl, fetch: retrying(policy, send) });
  client.use({
    async onRequest({ request }) {
      request.headers.set("Authorization", `Bearer ${await getToken()}`);
      return request;
    },
  });
  return client;
}

const CREATE = /\/api\/[^/]+\/tasks\/?$/;
const COMPLETION = /\/complete\/?$/;

/** Whether `request` may be sent again; a create gets its key here. */
async function mayRetry(request: Request): Promise<boolean> {
  const path = new URL(request.url).pathname;
  switch (request.method) {
    case "GET":
    case "PUT":
    case "DELETE":
      return true;
    case "POST":
      if (!CREATE.test(path)) return false;
      if (!request.headers.has("Idempotency-Key")) {
        request.headers.set("Idempotency-Key", `"${crypto.randomUUID()}"`);
      }
      return true;
    case "PATCH":
      return !COMPLETION.test(path) || (await setsCompletion(request));
    default:
      return false;
  }
}

/** `{"completed": true|false}` sets the state; no body (or `null`) toggles it. */
async function setsCompletion(request: Request): Promise<boolean> {
  try {
    const body: unknown = JSON.parse(await request.clone().text());
    return typeof (body as { completed?: unknown } | null)?.completed === "boolean";
  } catch {
    return false;
  }
}

function retrying(
  policy: RetryPolicy,
  send: (request: Request) => Promise<Response>,
): (request: Request) => Promise<Response> {
  return async (request) => {
    const again = await mayRetry(request);
    for (let attempt = 1; ; attempt++) {
      const last = !again || attempt >= policy.attempts;
      let response: Response;
      try {
        response = await send(last ? request : request.clone());
      } catch (failure) {
        if (last || request.signal.aborted) throw failure;
        await wait(policy, request, attempt + 1, "network error", backoff(policy, attempt));
        continue;
      }
      if (attempt > 1 && request.method === "DELETE" && response.status === 404) {
        // An earlier try's 204 was lost: the task is gone, as asked.
        return new Response(null, { status: 204, statusText: "No Content" });
      }
      const reason = retryReason(request, response);
      if (last || reason === null) return response;
      const delayMs = retryAfterMs(response) ?? backoff(policy, attempt);
      if (delayMs > policy.maxDelayMs) return response;
      await wait(policy, request, attempt + 1, reason, delayMs);
    }
  };
}

function retryReason(request: Request, response: Response): string | null {
  if (response.status === 503) return "503";
  if (response.status === 409 && request.method === "POST") return "409";
  return null;
}

function backoff(policy: RetryPolicy, attempt: number): number {
  const full = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
  return Math.round(full * (0.5 + Math.random() / 2)); // jitter: retries of many clients spread
}

/** `Retry-After` in milliseconds: seconds, or an HTTP date. */
function retryAfterMs(response: Response): number | null {
  const value = response.headers.get("Retry-After");
  if (value === null) return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? null : Math.max(0, date - Date.now());
}

async function wait(
  policy: RetryPolicy,
  request: Request,
  attempt: number,
  reason: string,
  delayMs: number,
): Promise<void> {
  policy.onRetry?.({ method: request.method, url: request.url, attempt, reason, delayMs });
  const signal = request.signal;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(resolve, delayMs);
    signal.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        reject(signal.reason);
      },
      { once: true },
    );
  });
}
