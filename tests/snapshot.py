"""Committed snapshots (tests/snapshots/*.txt): a test compares what it computes with the file, line by line.

A deliberate change is recorded by running the test once with `UPDATE_SNAPSHOTS=1`, which rewrites the
file; the diff of that file is then part of the commit, where a reviewer sees it.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

SNAPSHOTS = Path(__file__).resolve().parent / "snapshots"


def assert_matches_snapshot(name: str, lines: list[str]) -> None:
    """`lines` equal tests/snapshots/<name>; with UPDATE_SNAPSHOTS=1 the file is (re)written first."""
    path = SNAPSHOTS / name
    text = "".join(f"{line}\n" for line in lines)
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    committed = path.read_text(encoding="utf-8") if path.exists() else ""
    if committed != text:
        diff = "".join(
            difflib.unified_diff(
                committed.splitlines(keepends=True), text.splitlines(keepends=True), f"committed {name}", "now"
            )
        )
        raise AssertionError(
            f"{path.relative_to(SNAPSHOTS.parent.parent)} differs from what the code defines now:\n{diff}\n"
            f"If the change is meant, record it: UPDATE_SNAPSHOTS=1 .venv/bin/python -m pytest {_test_file()}"
        )


def _test_file() -> str:
    current = os.environ.get("PYTEST_CURRENT_TEST", "tests/")
    return current.split("::", 1)[0]
