"""`nox -s dev` writes `.env` holding BETTER_AUTH_SECRET: only its owner may read it (FR-017)."""

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.dev import ensure_env_file


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    """umask 0, as on some shared machines: the mode must not depend on the caller's umask."""
    previous = os.umask(0)
    yield
    os.umask(previous)


@pytest.mark.spec("FR-017", "FR-015")
def test_the_written_env_file_is_readable_by_its_owner_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, permissive_umask: None
) -> None:
    monkeypatch.delenv("BETTER_AUTH_SECRET", raising=False)
    env_file = tmp_path / ".env"

    ensure_env_file(env_file)

    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    secrets = [line for line in env_file.read_text().splitlines() if "BETTER_AUTH_SECRET=" in line]
    assert len(secrets) == 1
    assert len(secrets[0].partition("=")[2]) >= 32


@pytest.mark.spec("FR-015")
def test_an_existing_env_file_is_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BETTER_AUTH_SECRET", raising=False)
    env_file = tmp_path / ".env"
    env_file.write_text("BETTER_AUTH_SECRET=mine\n")

    ensure_env_file(env_file)

    assert env_file.read_text() == "BETTER_AUTH_SECRET=mine\n"
