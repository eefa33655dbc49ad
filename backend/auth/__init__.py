"""Authentication: who is calling, proven by a Better Auth-style JWT."""
