"""scripts/bootstrap.sh installs only when it must: a restart needs no package index."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Every pip call would fail: nothing listens on port 9 and no other index is configured.
OFFLINE = os.environ | {
    "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
    "PIP_EXTRA_INDEX_URL": "",
    "PIP_FIND_LINKS": "",
    "PIP_CONFIG_FILE": os.devnull,
    "PIP_RETRIES": "0",
    "PIP_TIMEOUT": "1",
}


def _bootstrap(root: Path, *extras: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(root / "scripts" / "bootstrap.sh"), *extras],
        env=OFFLINE,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_a_complete_venv_starts_offline_and_unchanged() -> None:
    stamp = ROOT / ".venv" / ".allcare-install-stamp"
    if not stamp.exists():
        pytest.skip("this checkout's venv was not made by scripts/bootstrap.sh")
    before = stamp.read_text(), stamp.stat().st_mtime_ns
    # scripts/test.sh installed train,test; scripts/serve.sh's train, one of them, or none (the
    # serving-only set) is part of that install.
    for extras in (("train,test",), ("train",), ("test",), ("test,train",), ()):
        done = _bootstrap(ROOT, *extras)
        assert done.returncode == 0, done.stderr
        assert "Installing" not in done.stderr
    assert (stamp.read_text(), stamp.stat().st_mtime_ns) == before


def test_a_changed_project_installs_again(tmp_path: Path) -> None:
    """A venv whose stamp names another pyproject.toml is brought up to date (here: it fails,
    because the package index is unreachable, and says so rather than starting a stale venv)."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "bootstrap.sh", tmp_path / "scripts")
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(tmp_path / ".venv")], check=True
    )
    (tmp_path / ".venv" / ".allcare-install-stamp").write_text("0" * 64 + " extras=\n")
    done = _bootstrap(tmp_path)
    assert done.returncode != 0
    assert "Installing AllCare Server" in done.stderr


def test_an_extra_never_installed_is_installed(tmp_path: Path) -> None:
    """A serving-only venv (no extras) asked for training installs the [train] extra."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "bootstrap.sh", tmp_path / "scripts")
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(tmp_path / ".venv")], check=True
    )
    project = subprocess.run(
        ["sha256sum", str(tmp_path / "pyproject.toml")], capture_output=True, text=True, check=True
    ).stdout.split()[0]
    (tmp_path / ".venv" / ".allcare-install-stamp").write_text(f"{project} extras=\n")
    assert _bootstrap(tmp_path).returncode == 0
    done = _bootstrap(tmp_path, "train")
    assert done.returncode != 0
    assert "Installing AllCare Server" in done.stderr
