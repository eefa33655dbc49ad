"""Users, sessions and signing keys: what Better Auth keeps in its database.

Users and Ed25519 keys can be persisted to a JSON state file so ids and the JWKS survive restarts
and are shared with `python -m mock_auth token`; sessions live in memory only, like a restart that
signs everybody out. The file is rewritten atomically and re-read when another process changed it,
which is enough for one server plus an occasional CLI call (not a database).
"""

import base64
import hashlib
import hmac
import json
import os
import secrets
import string
import tempfile
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

SESSION_LIFETIME = timedelta(days=7)
_ID_ALPHABET = string.ascii_letters + string.digits


def new_id() -> str:
    """Better Auth's `generateId()`: 32 random alphanumeric characters."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(32))


def derived_id(secret: str, email: str) -> str:
    """A 32-character alphanumeric id fixed by (secret, email): repeatable without a state file."""
    number = int.from_bytes(hmac.new(secret.encode(), email.encode(), hashlib.sha256).digest())
    chars = []
    for _ in range(32):
        number, digit = divmod(number, len(_ID_ALPHABET))
        chars.append(_ID_ALPHABET[digit])
    return "".join(chars)


def now() -> datetime:
    # JavaScript dates carry milliseconds; truncating keeps JSON round-trips exact.
    current = datetime.now(UTC)
    return current.replace(microsecond=current.microsecond // 1000 * 1000)


def iso(moment: datetime) -> str:
    """`Date.toJSON()`: UTC, milliseconds, `Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class UserExistsError(Exception):
    """Sign-up with an email that is already registered."""


@dataclass
class User:
    id: str
    name: str
    email: str
    created_at: datetime
    updated_at: datetime
    email_verified: bool = False
    image: str | None = None
    password_hash: str | None = None

    def row(self) -> dict[str, Any]:
        """The user as Better Auth returns it (and puts it into JWT payloads)."""
        return {
            "id": self.id,
            "name": self.name,
            "email": self.email,
            "emailVerified": self.email_verified,
            "image": self.image,
            "createdAt": iso(self.created_at),
            "updatedAt": iso(self.updated_at),
        }

    def to_state(self) -> dict[str, Any]:
        return {**self.row(), "passwordHash": self.password_hash}

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> "User":
        return cls(
            id=data["id"],
            name=data["name"],
            email=data["email"],
            email_verified=data["emailVerified"],
            image=data["image"],
            created_at=datetime.fromisoformat(data["createdAt"]),
            updated_at=datetime.fromisoformat(data["updatedAt"]),
            password_hash=data["passwordHash"],
        )


@dataclass
class Session:
    id: str
    token: str
    user_id: str
    expires_at: datetime
    created_at: datetime
    updated_at: datetime
    ip_address: str = ""
    user_agent: str = ""

    def row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "token": self.token,
            "userId": self.user_id,
            "expiresAt": iso(self.expires_at),
            "createdAt": iso(self.created_at),
            "updatedAt": iso(self.updated_at),
            "ipAddress": self.ip_address,
            "userAgent": self.user_agent,
        }


@dataclass
class SigningKey:
    """An Ed25519 key pair of Better Auth's JWT plugin (its default `EdDSA` key type)."""

    kid: str
    private_key: Ed25519PrivateKey
    created_at: datetime = field(default_factory=now)

    @classmethod
    def generate(cls) -> "SigningKey":
        return cls(kid=new_id(), private_key=Ed25519PrivateKey.generate())

    def public_jwk(self) -> dict[str, str]:
        raw = self.private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return {"kty": "OKP", "crv": "Ed25519", "x": _b64url(raw), "alg": "EdDSA", "kid": self.kid}

    def to_state(self) -> dict[str, str]:
        seed = self.private_key.private_bytes_raw()
        return {**self.public_jwk(), "d": _b64url(seed), "createdAt": iso(self.created_at)}

    @classmethod
    def from_state(cls, data: dict[str, str]) -> "SigningKey":
        return cls(
            kid=data["kid"],
            private_key=Ed25519PrivateKey.from_private_bytes(_b64url_decode(data["d"])),
            created_at=datetime.fromisoformat(data["createdAt"]),
        )


class StateFile:
    """The JSON file users and signing keys persist in, re-read when another process changed it.

    Written atomically (a temporary file, then a rename) and private (mode 0600): it holds
    password hashes and private keys."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None

    def changed(self) -> tuple[list[User], list[SigningKey]] | None:
        """The tables, if the file changed since it was last read or written."""
        stamp = self._stamp_of(self.path)
        if stamp is None or stamp == self._stamp:
            return None
        data = json.loads(self.path.read_text(encoding="utf-8"))
        self._stamp = stamp
        users = [User.from_state(item) for item in data.get("users", [])]
        return users, [SigningKey.from_state(item) for item in data.get("keys", [])]

    def write(self, users: Iterable[User], keys: Iterable[SigningKey]) -> None:
        data = {
            "users": [user.to_state() for user in users],
            "keys": [key.to_state() for key in keys],
        }
        directory = self.path.parent
        directory.mkdir(parents=True, exist_ok=True)
        handle, temp_name = tempfile.mkstemp(dir=directory, prefix=".mock_auth-", suffix=".tmp")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as temp:
                json.dump(data, temp, indent=2)
            os.replace(temp_name, self.path)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise
        self._stamp = self._stamp_of(self.path)

    @staticmethod
    def _stamp_of(path: Path) -> tuple[int, int] | None:
        try:
            stat = path.stat()
        except FileNotFoundError:
            return None
        return stat.st_mtime_ns, stat.st_size


class Store:
    """Thread-safe in-memory tables, optionally backed by a JSON state file.

    `clock` dates users and sessions and decides when a session has expired (`now` unless a test
    moves time itself).
    """

    def __init__(
        self, state_file: Path | None = None, *, clock: Callable[[], datetime] = now
    ) -> None:
        self._state = StateFile(state_file) if state_file else None
        self._clock = clock
        self._lock = threading.Lock()
        self._users: dict[str, User] = {}
        self._keys: list[SigningKey] = []
        self._sessions: dict[str, Session] = {}
        with self._lock:
            self._reload_if_changed()

    # -- users --------------------------------------------------------------------------------

    def create_user(self, *, name: str, email: str, password_hash: str, image: str | None) -> User:
        with self._lock:
            self._reload_if_changed()
            if self._find_by_email(email):
                raise UserExistsError(email)
            created = self._clock()
            user = User(
                id=new_id(),
                name=name,
                email=email,
                image=image,
                created_at=created,
                updated_at=created,
                password_hash=password_hash,
            )
            self._users[user.id] = user
            self._save()
            return user

    def ensure_user(self, *, email: str, name: str, user_id: str) -> User:
        """The user with this email, created (with `user_id` and no password) if missing."""
        with self._lock:
            self._reload_if_changed()
            existing = self._find_by_email(email)
            if existing:
                return existing
            created = self._clock()
            user = User(id=user_id, name=name, email=email, created_at=created, updated_at=created)
            self._users[user.id] = user
            self._save()
            return user

    def user_by_email(self, email: str) -> User | None:
        with self._lock:
            self._reload_if_changed()
            return self._find_by_email(email)

    def _find_by_email(self, email: str) -> User | None:
        return next((user for user in self._users.values() if user.email == email), None)

    # -- sessions -----------------------------------------------------------------------------

    def create_session(self, user: User, *, ip_address: str, user_agent: str) -> Session:
        created = self._clock()
        session = Session(
            id=new_id(),
            token=new_id(),
            user_id=user.id,
            expires_at=created + SESSION_LIFETIME,
            created_at=created,
            updated_at=created,
            ip_address=ip_address,
            user_agent=user_agent,
        )
        with self._lock:
            self._sessions[session.token] = session
        return session

    def find_session(self, token: str) -> tuple[Session, User] | None:
        """The live session for this token and its user; expired sessions are dropped."""
        with self._lock:
            self._reload_if_changed()
            session = self._sessions.get(token)
            if session is None:
                return None
            user = self._users.get(session.user_id)
            if user is None or session.expires_at <= self._clock():
                del self._sessions[token]
                return None
            return session, user

    def delete_session(self, token: str) -> None:
        with self._lock:
            self._sessions.pop(token, None)

    # -- keys ---------------------------------------------------------------------------------

    def signing_key(self) -> SigningKey:
        """The newest key, created on first use as Better Auth's JWT plugin does."""
        with self._lock:
            self._reload_if_changed()
            if not self._keys:
                self._keys.append(SigningKey.generate())
                self._save()
            return self._keys[-1]

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        self.signing_key()
        with self._lock:
            return {"keys": [key.public_jwk() for key in self._keys]}

    # -- persistence --------------------------------------------------------------------------

    def _reload_if_changed(self) -> None:
        tables = self._state.changed() if self._state else None
        if tables is not None:
            users, self._keys = tables
            self._users = {user.id: user for user in users}

    def _save(self) -> None:
        if self._state is not None:
            self._state.write(self._users.values(), self._keys)
