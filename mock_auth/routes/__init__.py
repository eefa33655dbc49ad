"""Better Auth's routes under `/api/auth`: accounts (sign-up / in / out) and sessions."""
