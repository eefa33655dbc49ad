"""The SPEC-coverage plugin: which SPEC.md IDs the collected tests prove.

Every test names the IDs it proves with `@pytest.mark.spec(...)`; the summary at the end of a
run lists each ID with its tests. With `SPEC_COVERAGE_STRICT=1` (as `nox -s tests` sets) a full
run fails when an ID has no test, a marker names no ID, or a test has no marker. Conformance
mode (tests/plugins/conformance.py) prints its own table instead. Registered by tests/conftest.py.
"""

import os
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

SPEC_FILE = Path(__file__).parents[2] / "docs" / "SPEC.md"
SPEC_ID = re.compile(r"\b(US-\d+(?:\.\d+)?|FR-\d{3}|SC-\d{3}|EC-\d+|A-\d+)\b")
_covered: dict[str, list[str]] = defaultdict(list)
_unknown: set[str] = set()
_unmarked: list[str] = []


def spec_ids() -> list[str]:
    found = dict.fromkeys(SPEC_ID.findall(SPEC_FILE.read_text(encoding="utf-8")))
    return list(found)


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    known = set(spec_ids())
    for item in items:
        markers = list(item.iter_markers("spec"))
        if not markers:
            _unmarked.append(item.nodeid)
        for marker in markers:
            for spec_id in marker.args:
                if spec_id in known:
                    _covered[spec_id].append(item.nodeid)
                else:
                    _unknown.add(f"{spec_id} ({item.nodeid})")


def _uncovered() -> list[str]:
    ids = spec_ids()
    covered = set(_covered)
    # A parent story (US-2) is covered by its scenarios (US-2.1 …) as well as by itself.
    return [
        spec_id
        for spec_id in ids
        if spec_id not in covered and not any(c.startswith(spec_id + ".") for c in covered)
    ]


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if not _covered or _conformance(config):
        return
    write = terminalreporter.write_line
    terminalreporter.section("SPEC.md IDs covered by tests")
    for spec_id in spec_ids():
        tests = _covered.get(spec_id, [])
        write(f"{spec_id:<8} {len(tests):>3} test(s)" + ("" if tests else "   <-- NOT COVERED"))
    missing = _uncovered()
    write(f"{len(spec_ids()) - len(missing)} of {len(spec_ids())} IDs covered")
    if _unknown:
        write("markers naming no SPEC.md ID: " + ", ".join(sorted(_unknown)))
    if _unmarked:
        write("tests naming no SPEC.md ID: " + ", ".join(_unmarked))


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """With SPEC_COVERAGE_STRICT=1, an uncovered or misspelt ID, or an untagged test, fails."""
    strict = os.environ.get("SPEC_COVERAGE_STRICT") == "1" and not _conformance(session.config)
    if strict and session.exitstatus == 0 and (_uncovered() or _unknown or _unmarked):
        print(
            f"\nSPEC coverage failed: uncovered {_uncovered()}, unknown {sorted(_unknown)}, "
            f"untagged tests {_unmarked}"
        )
        session.exitstatus = 1


def _conformance(config: pytest.Config) -> bool:
    return config.pluginmanager.has_plugin("conformance")
