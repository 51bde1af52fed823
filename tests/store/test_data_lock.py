"""One writer per data directory: a second ``allcare serve`` (or a restore) on the same data is
refused with the holder's pid; a killed server leaves no stale lock."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from allcare.core.config import Settings
from allcare.store.data_lock import DataDirectoryInUse, lock_paths, single_writer
from tests.models import tiny_torchscript
from tests.ports import free_port
from tests.servers import Server


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite, the embedded default: where the lock also covers the database file."""
    return f"sqlite:///{tmp_path / 'storage' / 'allcare.db'}"


def test_a_second_server_on_the_same_data_is_refused_naming_the_first(
    make_server: Callable[..., Server], tmp_path: Path
) -> None:
    server = make_server(tiny_torchscript(tmp_path / "tiny.pt"), {"gp1": "gp"})
    server.start()
    second = server.env | {"BACKSERVER_HOST": "127.0.0.1", "BACKSERVER_PORT": str(free_port())}
    refused = subprocess.run(
        [sys.executable, "-m", "allcare", "serve"],
        env=second,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert refused.returncode == 1
    assert f"pid {server.pid}, serving" in refused.stderr
    assert "is in use by another AllCare process" in refused.stderr
    assert httpx.get(f"{server.url}/health", timeout=10).status_code == 200

    server.kill()  # the kernel drops the lock with its holder: no stale lock to clear by hand
    server.start()
    assert httpx.get(f"{server.url}/health", timeout=10).status_code == 200


def test_a_sqlite_database_outside_the_data_directory_is_locked_too(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'elsewhere' / 'clinic.db'}"
    first = make_settings(storage_root=tmp_path / "one", database_url=url)
    other_root = make_settings(storage_root=tmp_path / "two", database_url=url)
    assert [p.name for p in lock_paths(first)] == [".allcare.lock", "clinic.db.lock"]
    with (
        single_writer(first, "serving"),
        pytest.raises(DataDirectoryInUse, match=r"elsewhere is in use .*serving"),
        single_writer(other_root, "serving"),
    ):
        pass
    with single_writer(other_root, "serving"):  # released with the first holder
        pass


def test_restore_is_refused_while_a_server_holds_the_data(
    make_settings: Callable[..., Settings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from allcare.cli import app

    settings = make_settings()
    archive = tmp_path / "backup.zip"
    archive.write_bytes(b"PK\x05\x06" + bytes(18))  # an empty zip: never reached
    monkeypatch.setenv("STORAGE_ROOT", str(settings.storage_root))
    monkeypatch.setenv("DATABASE_URL", settings.sqlalchemy_url)
    with single_writer(settings, "serving"):
        result = CliRunner().invoke(app, ["restore", str(archive)])
    assert result.exit_code == 1
    assert "stop it before restoring a backup" in result.output
