"""The one place configuration is read: environment variables and `.env`."""

import json
from functools import lru_cache
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

_DEFAULT_PORTS = {"http": 80, "https": 443}
# The claims a frontend may put its user id in; `JWT_USER_ID_CLAIMS` picks among them.
USER_ID_CLAIMS = ("sub", "user_id", "userId", "id")
# What `RATE_LIMIT_STORAGE_URL` may name: a Redis server (redis-py's URL forms).
REDIS_SCHEMES = ("redis", "rediss", "unix")


def split_list(value: object) -> object:
    """`a, b` or a JSON list, the two ways people write lists in `.env`, as a list of strings."""
    if isinstance(value, str):
        value = value.strip()
        if value.startswith("["):
            return json.loads(value)
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def origin_of(url: str) -> str:
    """`scheme://host[:port]` as WHATWG `URL.origin` writes it.

    Better Auth puts `new URL(baseURL).origin` in `iss`/`aud` and browsers send the same form in
    `Origin`, so both comparisons need it exactly: lower-case scheme and host, no user info, and
    no default port (`https://app.example:443` is `https://app.example`).
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None and parts.port != _DEFAULT_PORTS.get(scheme):
        host = f"{host}:{parts.port}"
    return f"{scheme}://{host}"


class Settings(BaseSettings):
    """Every knob of the backend; `.env.example` documents each one."""

    # A variable set to nothing (`NEON_DATABASE_URL=` uncommented in `.env`) means "not set".
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", env_ignore_empty=True
    )

    better_auth_secret: SecretStr = Field(min_length=1)
    better_auth_url: str = "http://localhost:3000"
    better_auth_jwks_url: str | None = None
    # Accept opaque Better Auth session tokens by looking them up in its `session` table; only
    # for a backend that shares Better Auth's database, in exchange for immediate sign-out.
    better_auth_session_lookup: bool = False
    neon_database_url: SecretStr | None = None

    jwt_leeway_seconds: int = Field(default=30, ge=0, le=600)
    # Comma-separated lists; empty = not checked for HS256 tokens, the auth origin for JWKS ones.
    jwt_issuer: Annotated[list[str], NoDecode] = []
    jwt_audience: Annotated[list[str], NoDecode] = []
    # Claims read, in order, for the user id of a token without the cookie cache's shape. Only
    # `sub` by default: Better Auth signs non-session tokens (email verification: `userId`) with
    # the same secret, so a fallback claim is an opt-in for frontends that mint their own.
    jwt_user_id_claims: Annotated[list[str], NoDecode] = ["sub"]
    jwks_cache_ttl_seconds: int = Field(default=300, ge=1)
    jwks_min_refetch_seconds: int = Field(default=30, ge=0)
    # While every refetch fails, the keys of the last good fetch are trusted this long, no longer.
    jwks_max_staleness_seconds: int = Field(default=3600, ge=1)
    jwks_timeout_seconds: float = Field(default=3.0, gt=0)

    # Key of the request log's user hash; unset: a random key per process (see .env.example).
    log_user_hash_key: Annotated[SecretStr, Field(min_length=16)] | None = None

    cors_origins: Annotated[list[str], NoDecode] = []
    # Requests per user per minute (0: off); shared by the fleet when the storage URL is set.
    rate_limit_per_minute: int = Field(default=1200, ge=0)
    rate_limit_storage_url: SecretStr | None = None
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)

    db_pool_size: int = Field(default=20, ge=1)
    db_max_overflow: int = Field(default=20, ge=0)
    # Admission: how long a request waits for a connection (or for one of its user's slots).
    db_pool_timeout_seconds: float = Field(default=0.5, gt=0)
    # Statements of one user in flight at once, per worker (backend/tenants.py).
    db_statements_per_user: int = Field(default=5, ge=1)
    db_connect_timeout_seconds: int = Field(default=5, ge=1)
    # Once a connection is in hand, no statement runs longer (SC-001 promises 2 s per call).
    db_statement_timeout_seconds: float = Field(default=1.5, gt=0)
    # A pooled connection idle longer than this is pinged before use (see backend/db.py).
    db_ping_idle_seconds: float = Field(default=30.0, ge=0)
    db_pool_recycle_seconds: int = Field(default=1800, ge=1)
    embedded_db_dir: Path = Path(".data/postgres")
    migrate_on_startup: bool = True

    # The HTTP edge, per worker process (backend/http_protocol.py).
    http_head_timeout_seconds: float = Field(default=10.0, gt=0)
    http_max_connections: int = Field(default=2048, ge=1)
    # SIGTERM: `/health/ready` answers 503 while the worker keeps serving for the drain, then it
    # stops accepting; the whole shutdown, drain included, ends within the timeout.
    shutdown_drain_seconds: float = Field(default=5.0, ge=0)
    shutdown_timeout_seconds: float = Field(default=20.0, gt=0)

    @field_validator("rate_limit_storage_url")
    @classmethod
    def _redis_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and urlsplit(value.get_secret_value()).scheme not in REDIS_SCHEMES:
            raise ValueError("RATE_LIMIT_STORAGE_URL must be a redis://, rediss:// or unix:// URL")
        return value

    @field_validator("better_auth_url")
    @classmethod
    def _url_has_host(cls, value: str) -> str:
        """A typo here would silently reject every JWT-plugin token (wrong `iss`): fail at start."""
        parts = urlsplit(value.strip())
        try:
            parts.port  # noqa: B018 - parsing it is the check
        except ValueError:
            raise ValueError("BETTER_AUTH_URL has an invalid port") from None
        if parts.scheme.lower() not in _DEFAULT_PORTS or not parts.hostname:
            raise ValueError("BETTER_AUTH_URL must be an http(s) URL, e.g. http://localhost:3000")
        return value

    @field_validator("log_user_hash_key")
    @classmethod
    def _not_the_jwt_secret(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        """The log is read by more people than may mint tokens: its key must not be the secret."""
        secret = info.data.get("better_auth_secret")
        if value is not None and secret is not None and value == secret:
            raise ValueError("LOG_USER_HASH_KEY must not be BETTER_AUTH_SECRET")
        return value

    @field_validator("jwks_max_staleness_seconds")
    @classmethod
    def _staleness_covers_the_ttl(cls, value: int, info: ValidationInfo) -> int:
        """Shorter than the cache TTL would refuse keys that were never due for a refetch."""
        if value < info.data.get("jwks_cache_ttl_seconds", 0):
            raise ValueError("JWKS_MAX_STALENESS_SECONDS must be at least JWKS_CACHE_TTL_SECONDS")
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        """Accept `a,b` as well as a JSON list, the two ways people write lists in `.env`."""
        value = split_list(value)
        return [item.rstrip("/") for item in value] if isinstance(value, list) else value

    @field_validator("jwt_issuer", "jwt_audience", mode="before")
    @classmethod
    def _split_claims(cls, value: object) -> object:
        """`JWT_AUDIENCE=` uncommented in `.env` means "not set", not "require an empty aud"."""
        return split_list(value)

    @field_validator("jwt_user_id_claims", mode="before")
    @classmethod
    def _known_user_id_claims(cls, value: object) -> object:
        """Only claims some token kind really uses; a typo must not silently refuse everyone."""
        value = split_list(value)
        if isinstance(value, list):
            unknown = [name for name in value if name not in USER_ID_CLAIMS]
            if unknown or not value:
                raise ValueError(f"JWT_USER_ID_CLAIMS takes a list of {', '.join(USER_ID_CLAIMS)}")
        return value

    @property
    def auth_origin(self) -> str:
        return origin_of(self.better_auth_url)

    @property
    def jwks_url(self) -> str:
        return self.better_auth_jwks_url or f"{self.better_auth_url.rstrip('/')}/api/auth/jwks"

    @property
    def allowed_origins(self) -> list[str]:
        return list(dict.fromkeys([self.auth_origin, *self.cors_origins]))


@lru_cache
def get_settings() -> Settings:
    """Settings from the environment; a missing secret ends start-up with one clear line."""
    try:
        return Settings()
    except ValidationError as exc:
        fields = ", ".join(str(err["loc"][0]).upper() for err in exc.errors())
        raise SystemExit(
            f"Configuration error: {fields} missing or invalid "
            "(set it in the environment or in .env; see .env.example)"
        ) from None
