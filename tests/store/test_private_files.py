"""Patient data is owner-only: the database, photos and backups are 0600, model files 0400,
their folders 0700; a data directory with wider files gets a warning at start."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from allcare.cli import app
from allcare.core.config import Settings
from allcare.store.private_files import wider_than_private
from tests.conftest import Api
from tests.models import tiny_torchscript
from tests.uploads import camera, upload


@pytest.fixture
def clinic(
    make_api: Callable[..., Api], make_settings: Callable[..., Settings], tmp_path: Path
) -> Callable[[], Api]:
    settings = make_settings(
        model_path=tiny_torchscript(tmp_path / "tiny.pt"), inference_runtime="torch"
    )

    return lambda: make_api(settings)


def modes(root: Path) -> dict[str, int]:
    return {
        str(path.relative_to(root)): stat.S_IMODE(path.lstat().st_mode)
        for path in [root, *root.rglob("*")]
    }


def test_everything_the_server_writes_is_owner_only(
    clinic: Callable[[], Api], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = clinic()
    api.add_user("gp1", "gp")
    assert upload(api.client, camera("gp1")).status_code == 200
    root = api.container.settings.storage_root
    written = modes(root)
    assert any(name.startswith("blobs/") for name in written)
    assert any(name.startswith("models/") and name.endswith(".pt") for name in written)
    if api.container.settings.sqlalchemy_url.startswith("sqlite"):
        assert "allcare.db" in written
    wider = {name: oct(mode) for name, mode in written.items() if mode & 0o077}
    assert wider == {}
    folders = {n for n in written if (root / n).is_dir() and not (root / n).is_symlink()}
    assert {written[n] for n in folders} == {0o700}
    files = set(written) - folders
    models = {n for n in files if n.startswith("models/")}
    assert {written[n] for n in models} == {0o400}  # registered files are also read-only
    assert {written[n] for n in files - models} == {0o600}

    monkeypatch.setenv("STORAGE_ROOT", str(root))
    monkeypatch.setenv("DATABASE_URL", api.container.settings.sqlalchemy_url)
    archive = tmp_path / "backup.zip"
    archive.write_bytes(b"")
    archive.chmod(0o644)  # an archive that existed, world-readable, is made private too
    done = CliRunner().invoke(app, ["backup", "--out", str(archive)])
    assert done.exit_code == 0, done.output
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600


def test_a_start_on_wider_files_warns_with_the_fix(
    clinic: Callable[[], Api], caplog: pytest.LogCaptureFixture
) -> None:
    api = clinic()
    root = api.container.settings.storage_root
    api.client.__exit__(None, None, None)
    model = next(p for p in (root / "models").rglob("*.pt"))
    os.chmod(root, 0o755)  # noqa: S103 - as an older server, or a copy with cp -r, left them
    os.chmod(model, 0o644)
    assert wider_than_private(root).count == 2
    with caplog.at_level(logging.WARNING, logger="allcare.container.store"):
        clinic()
    [warning] = [r.getMessage() for r in caplog.records if "can be read by other" in r.getMessage()]
    assert warning.startswith(f"2 files or folders under {root} can be read by other users")
    assert str(model) in warning
    assert warning.endswith(f"chmod -R go-rwx {root}")
