"""Settings, read from the environment and `.env` like the Better Auth server it stands in for.

`BETTER_AUTH_SECRET` and `BETTER_AUTH_URL` keep Better Auth's names so one `.env` serves the
frontend, this mock and the backend; everything specific to the mock is prefixed `MOCK_AUTH_`.
"""

from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

import ada_url
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

Mode = Literal["hs256", "eddsa"]

_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str, base: str | None = None) -> str | None:
    """`new URL(url, base).origin`; None if `url` has no http(s) origin.

    Parsed by ada, the WHATWG URL parser Node itself uses, so it reads a URL the way browsers and
    Better Auth do: `http://evil.example\\@localhost:3000/` is evil.example's (a `\\` is a `/`
    there), which a looser parser takes for localhost's.
    """
    try:
        parsed = ada_url.URL(url, base)
    except ValueError:
        return None
    return parsed.origin if parsed.protocol in ("http:", "https:") else None


class Settings(BaseSettings):
    """Configuration of one mock_auth instance."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    better_auth_secret: SecretStr
    better_auth_url: str = "http://localhost:3000"
    mock_auth_mode: Mode = "hs256"
    mock_auth_state_file: Path | None = None
    mock_auth_cors_origins: Annotated[list[str], NoDecode] = ["http://localhost:3000"]
    mock_auth_jwt_lifetime_seconds: int = Field(default=900, gt=0)
    mock_auth_cookie_cache: bool = False

    @field_validator("better_auth_secret")
    @classmethod
    def _secret_not_blank(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("BETTER_AUTH_SECRET must not be empty")
        return value

    @field_validator("better_auth_url")
    @classmethod
    def _url_has_host(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise ValueError("BETTER_AUTH_URL must be an http(s) URL, e.g. http://localhost:3000")
        return value

    @field_validator("mock_auth_cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        # Comma-separated in the environment, a list when passed in code.
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @property
    def secret(self) -> str:
        return self.better_auth_secret.get_secret_value()

    @property
    def origin(self) -> str:
        """BETTER_AUTH_URL reduced the way WHATWG `URL.origin` does: Better Auth's iss and aud."""
        return origin_of(self.better_auth_url) or self.better_auth_url

    @property
    def trusted_origins(self) -> set[str]:
        """Where sign-in may redirect: Better Auth trusts its own origin and its `trustedOrigins`
        (here: the CORS origins)."""
        cors = {origin for origin in map(origin_of, self.mock_auth_cors_origins) if origin}
        return {self.origin} | cors

    @property
    def port(self) -> int:
        parts = urlsplit(self.better_auth_url)
        return parts.port or _DEFAULT_PORTS[parts.scheme.lower()]

    @property
    def secure_cookies(self) -> bool:
        # Better Auth marks cookies Secure (and prefixes them) when its base URL is https.
        return urlsplit(self.better_auth_url).scheme.lower() == "https"
