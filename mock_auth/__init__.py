"""A small stand-in for a Better Auth server, for local development and tests.

It speaks the slice of Better Auth's HTTP API that a Next.js frontend and this backend touch
(email sign-up / sign-in, sessions, the bearer, JWT and cookie-cache plugins), so the backend can
be exercised end to end without Node.js. It shares nothing with `backend/` on purpose: the backend
must accept its tokens only because they follow Better Auth's formats.
"""

from mock_auth.app import create_app
from mock_auth.config import Settings

__all__ = ["Settings", "create_app"]
