"""Todo API backend: Better Auth JWTs in, tasks in PostgreSQL out."""
