// The real Better Auth, for the backend's tests: two auth servers on 127.0.0.1 (memory database,
// email + password, JWT plugin, cookie cache as an HS256 JWT) and a few test-only routes.
//
//   BETTER_AUTH_SECRET=... node server.mjs
//
// Prints one JSON line, {"default": <url>, "audience": <url>, "apiAudience": <string>}, once both
// listen; stops on SIGTERM or when stdin closes (the test process went away).
//   default   the jwt plugin as installed: iss = aud = the server's base URL
//   audience  the jwt plugin with `jwt: { audience: API_AUDIENCE }`, as a frontend that names
//             the API as the token's audience configures it
// Test-only routes, next to /api/auth/* on both servers:
//   GET  /test/verification-token?email=E   the last email-verification token Better Auth sent to E
//   POST /test/email-verification-token     {email, userId, updateTo?, requestType?}: a token from
//                                           Better Auth's own createEmailVerificationToken
import http from "node:http";
import { betterAuth } from "better-auth";
import { memoryAdapter } from "better-auth/adapters/memory";
import { createEmailVerificationToken } from "better-auth/api";
import { toNodeHandler } from "better-auth/node";
import { jwt } from "better-auth/plugins";

const secret = process.env.BETTER_AUTH_SECRET;
if (!secret) {
  console.error("BETTER_AUTH_SECRET is required");
  process.exit(2);
}
const apiAudience = process.env.API_AUDIENCE ?? "http://127.0.0.1:8000";

function readBody(request) {
  return new Promise((resolve, reject) => {
    let data = "";
    request.on("data", (chunk) => (data += chunk));
    request.on("end", () => resolve(data ? JSON.parse(data) : {}));
    request.on("error", reject);
  });
}

function reply(response, status, body) {
  response.writeHead(status, { "content-type": "application/json" });
  response.end(JSON.stringify(body));
}

async function start(jwtOptions) {
  const sent = new Map(); // email -> last verification token Better Auth "mailed"
  const server = http.createServer();
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const baseURL = `http://127.0.0.1:${server.address().port}`;
  const auth = betterAuth({
    baseURL,
    secret,
    database: memoryAdapter({ user: [], session: [], account: [], verification: [], jwks: [] }),
    emailAndPassword: { enabled: true },
    emailVerification: {
      sendOnSignUp: true,
      sendVerificationEmail: async ({ user, token }) => {
        sent.set(user.email, token);
      },
    },
    session: { cookieCache: { enabled: true, strategy: "jwt", maxAge: 300 } },
    plugins: [jwt(jwtOptions)],
    logger: { disabled: true },
  });
  const authHandler = toNodeHandler(auth);
  server.on("request", async (request, response) => {
    const url = new URL(request.url, baseURL);
    try {
      if (url.pathname === "/test/verification-token") {
        const token = sent.get(url.searchParams.get("email"));
        return token ? reply(response, 200, { token }) : reply(response, 404, {});
      }
      if (url.pathname === "/test/email-verification-token" && request.method === "POST") {
        const { email, userId, updateTo, requestType } = await readBody(request);
        const extra = requestType ? { userId, requestType } : { userId };
        const token = await createEmailVerificationToken(secret, email, updateTo, 3600, extra);
        return reply(response, 200, { token });
      }
      return authHandler(request, response);
    } catch (error) {
      return reply(response, 500, { error: String(error) });
    }
  });
  return { server, baseURL };
}

const servers = [await start(undefined), await start({ jwt: { audience: apiAudience } })];
console.log(
  JSON.stringify({ default: servers[0].baseURL, audience: servers[1].baseURL, apiAudience }),
);

function stop() {
  for (const { server } of servers) server.close();
  process.exit(0);
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
process.stdin.on("end", stop);
process.stdin.resume();
