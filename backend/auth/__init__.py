"""Authentication: who is calling, proven by a Better Auth JWT (or, opt-in, a session token)."""
