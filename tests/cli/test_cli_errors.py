"""Every ``allcare`` command answers a failure with one clear line and a non-zero exit, never
a traceback: run as the administrator runs it, in a process of its own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TEST_JWT_SECRET


def allcare(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "STORAGE_ROOT")},
        "STORAGE_ROOT": str(tmp_path / "storage"),
        "JWT_SECRET_KEY": TEST_JWT_SECRET,
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "allcare", *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (
            ["backup", "--out", "/nonexistent/folder/clinic.zip"],
            {},
            "Error: No such file or directory: /nonexistent/folder",
        ),
        (
            ["users", "list"],
            {"LOGIN_MAX_FAILURES": "many"},
            "Error: invalid setting LOGIN_MAX_FAILURES: Input should be a valid integer",
        ),
        (
            ["backup", "--out", "clinic.zip"],
            {"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/nothing"},
            "Error: database error: connection failed",
        ),
        (["restore", "{tmp}/notes.txt"], {}, "Error: {tmp}/notes.txt is not an AllCare backup"),
    ],
    ids=["unwritable-archive", "bad-setting", "no-database", "not-a-zip"],
)
def test_a_failing_command_prints_one_line_and_exits_non_zero(
    tmp_path: Path, args: list[str], env: dict[str, str], expected: str
) -> None:
    (tmp_path / "notes.txt").write_text("not a backup\n")
    args = [arg.replace("{tmp}", str(tmp_path)) for arg in args]
    expected = expected.replace("{tmp}", str(tmp_path))
    result = allcare(tmp_path, *args, **env)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    *opened, line = result.stderr.strip().splitlines()
    assert line.startswith(expected), line
    # Before it fails, a command that got as far as its data says which data (and nothing else).
    assert len(opened) <= 1
    assert all(o.startswith("Using database ") for o in opened), opened
    assert all(o.endswith(f"storage root {tmp_path / 'storage'}") for o in opened), opened


def test_a_command_names_the_database_and_storage_root_it_opened(tmp_path: Path) -> None:
    """Without STORAGE_ROOT the data is ./storage: the line shows where that is."""
    environment = {
        k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "STORAGE_ROOT")
    } | {"JWT_SECRET_KEY": TEST_JWT_SECRET}
    result = subprocess.run(
        [sys.executable, "-m", "allcare", "users", "list"],
        env=environment,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    root = tmp_path.resolve() / "storage"
    assert result.stderr.splitlines()[0] == (
        f"Using database {root / 'allcare.db'} (SQLite) and storage root {root}"
    )
    assert "Using database" not in result.stdout  # stdout stays the command's answer
